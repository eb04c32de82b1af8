"""vLLM, offline and async engines, in its own process."""

from pytest_llmbench.backends.vllm.backend import VllmBackend

__all__ = ["VllmBackend"]
