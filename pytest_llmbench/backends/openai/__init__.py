"""any OpenAI-compatible server, streamed over HTTP; managed vLLM/SGLang/TensorRT-LLM servers."""

from pytest_llmbench.backends.openai.backend import OpenAIBackend

__all__ = ["OpenAIBackend"]
