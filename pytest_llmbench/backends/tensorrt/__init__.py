"""TensorRT-LLM's LLM API, in its own process."""

from pytest_llmbench.backends.tensorrt.backend import TensorrtBackend

__all__ = ["TensorrtBackend"]
