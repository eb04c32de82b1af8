"""The openai backend: a benchmark's prompt beyond the model's context fails that test in one line
before any request reaches the server; the server's model name is what results call the model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from openai_fakes import MODEL_ID, FakeServer


def test_a_prompt_beyond_the_context_never_reaches_the_server(
    pytester: pytest.Pytester, tiny_model: Path, fake_server: FakeServer
) -> None:
    pytester.makepyfile(
        """
        def test_fits(llm_bench):
            llm_bench(num_prompts=2, input_tokens=8, output_tokens=4)

        def test_too_long(llm_bench):
            llm_bench(num_prompts=2, input_tokens=5000, output_tokens=4)
        """
    )
    args = ["--llm-backend", "openai", "--llm-server-url", fake_server.url, "--llm-json", "r.json"]
    result = pytester.runpytest_inprocess(*args, "--llm-repeat", "1", "--llm-warmup", "0")
    result.assert_outcomes(passed=1, failed=1)
    assert (
        "::test_too_long[openai]: llm_bench(num_prompts=2, input_tokens=5000, output_tokens=4): "
        "5000 input + 4 output tokens = 5004 exceed the context of 2048 tokens on openai "
        "(max_position_embeddings of the embedded model); at most 2044 input tokens fit\n"
    ) in result.stdout.str()
    sent = [len(body.get("prompt", [])) for body in fake_server.state.bodies]
    assert sent and max(sent) < 5000  # the fitting test's requests only
    (r,) = json.loads((pytester.path / "r.json").read_text())["results"]
    assert r["model"] == MODEL_ID and r["model_source"]["kind"] == "embedded"
