"""Which server the openai backend talks to: recognised from what each server exposes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from openai_fakes import FakeServer, make_backend

from pytest_llmbench.backends.openai.identity import server_label
from pytest_llmbench.report.terminal import backend_label

# What llama-cpp-python 0.3's server titles its FastAPI schema.
LLAMA_CPP_PYTHON = {
    "/openapi.json": {"info": {"title": "\N{LLAMA} llama.cpp Python API", "version": "0.3.36"}}
}


def models(owned_by: str) -> dict[str, Any]:
    return {"object": "list", "data": [{"id": "m", "object": "model", "owned_by": owned_by}]}


@pytest.mark.parametrize(
    ("answers", "owned_by", "label"),
    [
        ({"/version": {"version": "0.11.0"}}, "vllm", "vLLM 0.11.0"),
        ({"/props": {"build_info": "b6123-1a2b3c4"}}, "llamacpp", "llama.cpp b6123"),
        ({}, "llamacpp", "llama.cpp, version unknown"),
        (LLAMA_CPP_PYTHON, "me", "llama-cpp-python 0.3.36"),
        ({"/version": {"version": "0.5.1"}}, "sglang", "SGLang 0.5.1"),
        ({}, "tensorrt_llm", "TensorRT-LLM, version unknown"),
        ({"/version": {"version": "fake-1.0"}}, "me", "fake-1.0"),
        ({"/openapi.json": {"info": {"title": "Some API", "version": "1"}}}, "me", "unknown"),
        ({}, "me", "unknown"),
    ],
)
def test_the_server_is_recognised_by_its_own_marks(
    answers: dict[str, Any], owned_by: str, label: str
) -> None:
    asked: list[str] = []

    def get(path: str) -> dict[str, Any] | None:
        asked.append(path)
        return answers.get(path)

    assert server_label(get, models(owned_by)) == label
    assert "/v1/models" not in asked  # given, not asked again


def test_llama_cpp_pythons_server_is_labelled_not_unknown(
    tiny_model: Path, fake_server: FakeServer
) -> None:
    """The endpoints llama-cpp-python 0.3's server answers: no /version, no /props, owned_by
    "me" and its FastAPI schema's title."""
    fake_server.state.identity = dict(LLAMA_CPP_PYTHON)
    fake_server.state.owned_by = "me"
    backend = make_backend(tiny_model, server_url=fake_server.url)
    backend.start()
    version = backend.info().version
    assert version == "llama-cpp-python 0.3.36"
    assert backend_label("openai", version) == "openai (server llama-cpp-python 0.3.36)"
