"""Perplexity of the shipped reference text, from a backend's prompt log-probabilities."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, Protocol

REFERENCE_TEXT = "reference-v1"
"""Name of the shipped text (``quality/reference.txt``); change it when the text changes, so a
baseline measured on another text is never compared with this one."""
MAX_TOKENS = 256  # a prefix of the text: fits any context (a small max_model_len too), quick on CPU


class Encoder(Protocol):
    def encode(self, text: str) -> list[int]: ...


class Scorer(Protocol):
    def token_logprobs(
        self, prompt_ids: Sequence[int], response_ids: Sequence[int]
    ) -> list[float]: ...


def reference_text() -> str:
    return resources.files("pytest_llmbench.quality").joinpath("reference.txt").read_text("utf-8")


def reference_ids(tokenizer: Encoder, max_tokens: int = MAX_TOKENS) -> list[int]:
    """The reference text's token ids under the model's tokenizer, at most ``max_tokens``."""
    return tokenizer.encode(reference_text())[:max_tokens]


@dataclass(frozen=True)
class Perplexity:
    """exp(-mean log-prob) of the reference text's tokens after its first; or why it is missing."""

    value: float | None
    tokens: int  # tokens scored (the text's length minus the first, which has no context)
    reason: str | None = None  # set when value is None: "unavailable (reason)"

    @classmethod
    def of(cls, logprobs: Sequence[float]) -> Perplexity:
        if not logprobs:
            return cls(None, 0, "no tokens were scored")
        if any(not math.isfinite(lp) for lp in logprobs):
            return cls(None, len(logprobs), "the backend returned non-finite log-probabilities")
        return cls(math.exp(-sum(logprobs) / len(logprobs)), len(logprobs))

    def describe(self) -> str:
        if self.value is None:
            return f"unavailable ({self.reason})"
        return f"{self.value:.4g}"


def measure_perplexity(scorer: Scorer, ids: Sequence[int]) -> Perplexity:
    """Score ``ids[1:]`` given ``ids[0]``; the backend's QualityUnavailable becomes the reason."""
    from pytest_llmbench.errors import QualityUnavailable

    if len(ids) < 2:
        return Perplexity(None, 0, "the reference text has fewer than 2 tokens")
    try:
        logprobs = scorer.token_logprobs(list(ids[:1]), list(ids[1:]))
    except QualityUnavailable as exc:
        return Perplexity(None, 0, str(exc))
    return Perplexity.of([float(x) for x in logprobs])


def quality_section(perplexity: Perplexity, dtype: str) -> dict[str, Any]:
    """What a result carries as ``quality``."""
    return {
        "perplexity": perplexity.value,
        "perplexity_tokens": perplexity.tokens,
        "text": REFERENCE_TEXT,
        "dtype": dtype,
        "unavailable": perplexity.reason,
    }
