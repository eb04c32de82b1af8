"""SGLang's offline engine, in its own process."""

from pytest_llmbench.backends.sglang.backend import SglangBackend

__all__ = ["SglangBackend"]
