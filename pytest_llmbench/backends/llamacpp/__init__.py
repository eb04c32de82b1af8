"""llama.cpp in process through llama-cpp-python; GGUF files written locally."""

from pytest_llmbench.backends.llamacpp.backend import LlamacppBackend

__all__ = ["LlamacppBackend"]
