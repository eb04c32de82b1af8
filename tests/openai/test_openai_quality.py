"""The openai backend's quality calls: token ids and prompt log-probs from a server's replies."""

from __future__ import annotations

import pytest

from pytest_llmbench.backends.openai.quality import generated_ids
from pytest_llmbench.errors import QualityUnavailable


def test_token_ids_come_from_vllm_extensions_or_not_at_all() -> None:
    assert generated_ids({"token_ids": [5, 6]}) == [5, 6]
    logprobs = {"tokens": ["token_id:7", "token_id:8"], "token_logprobs": [-1.0, -2.0]}
    assert generated_ids({"text": "ab", "logprobs": logprobs}) == [7, 8]
    # plain OpenAI: text tokens only, which re-tokenising could not map back exactly
    assert generated_ids({"text": "ab", "logprobs": {"tokens": ["a", "b"]}}) is None


def test_a_server_that_refuses_gives_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_llmbench.backends.openai import quality

    client = quality.ServerClient("http://127.0.0.1:9", "m", {}, 2.0)  # discard port: refused
    with pytest.raises(QualityUnavailable, match="POST /v1/completions"):
        quality.token_logprobs(client, [1], [2, 3])

    def echo_without_scores(path: str, body: dict) -> dict:
        return {"choices": [{"text": "", "logprobs": {"token_logprobs": [None, None, None]}}]}

    monkeypatch.setattr(quality.ServerClient, "post", lambda self, p, b: echo_without_scores(p, b))
    with pytest.raises(QualityUnavailable, match="without log-probabilities"):
        quality.token_logprobs(client, [1], [2, 3])
