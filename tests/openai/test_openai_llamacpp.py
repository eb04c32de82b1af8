"""The openai backend against a REAL llama.cpp server: llama-cpp-python's, managed by the backend,
on the tiny model converted to GGUF (``--llm-server llamacpp``)."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path

import pytest
from openai_fakes import make_backend

from pytest_llmbench import compat
from pytest_llmbench.backends.base import BackendSpec
from pytest_llmbench.backends.llamacpp.backend import LlamacppBackend
from pytest_llmbench.backends.openai.backend import OpenAIBackend
from pytest_llmbench.config.schema import ExperimentConfig
from pytest_llmbench.workload.prompts import Workload, build_requests
from pytest_llmbench.workload.tokenizer import load_tokenizer

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("uvicorn") is None,
    reason="llama-cpp-python's server is not installed: pip install pytest-llmbench[llamacpp]",
)

MAX_TOKENS = 12


@pytest.fixture(scope="module")
def server_backend(tiny_model: Path) -> Iterator[OpenAIBackend]:
    backend = make_backend(
        tiny_model, ExperimentConfig(max_output_tokens=MAX_TOKENS), server="llamacpp"
    )
    backend.start()
    yield backend
    backend.close()


def work(tiny_model: Path) -> list:
    tokenizer = load_tokenizer(str(tiny_model))
    workload = Workload("w", num_prompts=4, input_tokens=24, output_tokens=MAX_TOKENS)
    return build_requests(workload, tokenizer, tokenizer.vocab_ids())


def test_the_managed_server_serves_forced_lengths(
    server_backend: OpenAIBackend, tiny_model: Path
) -> None:
    out = server_backend.generate(work(tiny_model))
    assert [c.error for c in out] == [None] * 4
    assert [c.output_tokens for c in out] == [MAX_TOKENS] * 4
    assert all(c.first_token_s is not None and c.first_token_s <= c.end_s for c in out)
    details = server_backend.info().details
    assert details["output_tokens_counted_by"] == "finish_reason=length"
    # Recognised from its FastAPI schema (it has no /version): never "server unknown".
    assert server_backend.info().version == f"llama-cpp-python {llama_cpp_version()}"


def llama_cpp_version() -> str:
    import llama_cpp

    return str(llama_cpp.__version__)


def test_served_and_in_process_llama_cpp_write_the_same_text(
    server_backend: OpenAIBackend, tiny_model: Path
) -> None:
    """The server tokenises the prompt text with the GGUF's vocabulary: the same tokens as ours,
    hence the same greedy continuation as the in-process backend on the same file."""
    config = ExperimentConfig(max_output_tokens=MAX_TOKENS)
    local = LlamacppBackend(
        BackendSpec(str(tiny_model), config, compat.translate(config, "llamacpp"), "cpu")
    )
    local.start()
    try:
        requests = work(tiny_model)
        want = [local.decode(c.output_token_ids) for c in local.generate(requests)]
    finally:
        local.close()
    got = [c.text for c in server_backend.generate(requests)]
    # Where a continuation holds a byte that is not valid UTF-8 alone, the server drops or holds
    # it and we decode it to U+FFFD: those texts are not comparable as text. The others are.
    comparable = [(g, w) for g, w in zip(got, want, strict=True) if "\ufffd" not in w]
    assert comparable and all(g == w for g, w in comparable), (got, want)


def test_quality_on_a_text_only_server_is_unavailable_with_the_reason(
    server_backend: OpenAIBackend,
) -> None:
    """llama-cpp-python's server takes no token-id prompts: the probe and perplexity say so in one
    line instead of passing on the server's validation errors, and never make up a number."""
    from pytest_llmbench.errors import QualityUnavailable

    with pytest.raises(QualityUnavailable, match="takes text prompts only"):
        server_backend.greedy_token_ids([[5, 6, 7]], 4)
    with pytest.raises(QualityUnavailable, match="takes text prompts only"):
        server_backend.token_logprobs([5, 6, 7], [8, 9])
