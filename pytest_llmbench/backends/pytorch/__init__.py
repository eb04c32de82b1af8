"""HuggingFace transformers (PyTorch) in process."""

from pytest_llmbench.backends.pytorch.backend import PytorchBackend

__all__ = ["PytorchBackend"]
