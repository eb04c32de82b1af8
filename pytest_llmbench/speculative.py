"""Speculative decoding as measured: how many drafted tokens the target model accepted.

Counters follow vLLM's spec-decode metrics (``vllm:spec_decode_num_drafts``,
``..._num_draft_tokens``, ``..._num_accepted_tokens``), so numbers from HF assisted generation,
the vLLM engine and a vLLM server mean the same thing:

- acceptance rate = accepted tokens / draft tokens;
- mean accepted length = 1 + accepted tokens / drafts (tokens emitted per verification step that
  had a draft, the bonus token included);
- draft tokens per step = draft tokens / drafts.

A step in which the proposer found nothing to draft (prompt lookup without a match) is no draft.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

VLLM_COUNTERS = {
    "vllm:spec_decode_num_drafts": "drafts",
    "vllm:spec_decode_num_draft_tokens": "draft_tokens",
    "vllm:spec_decode_num_accepted_tokens": "accepted_tokens",
}


@dataclass(frozen=True)
class SpeculativeCounters:
    """Cumulative counts since the engine started; subtract two snapshots for one run."""

    method: str  # "prompt_lookup", "draft_model", "ngram", ... as configured
    source: str  # where the counts come from, e.g. "vllm metrics", "transformers candidates"
    drafts: int = 0
    draft_tokens: int = 0
    accepted_tokens: int = 0

    def __sub__(self, earlier: SpeculativeCounters) -> SpeculativeCounters:
        return SpeculativeCounters(
            self.method,
            self.source,
            self.drafts - earlier.drafts,
            self.draft_tokens - earlier.draft_tokens,
            self.accepted_tokens - earlier.accepted_tokens,
        )

    @property
    def acceptance_rate(self) -> float | None:
        return self.accepted_tokens / self.draft_tokens if self.draft_tokens else None

    @property
    def mean_accepted_length(self) -> float | None:
        return 1.0 + self.accepted_tokens / self.drafts if self.drafts else None

    @property
    def draft_tokens_per_step(self) -> float | None:
        return self.draft_tokens / self.drafts if self.drafts else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "source": self.source,
            "drafts": self.drafts,
            "draft_tokens": self.draft_tokens,
            "accepted_tokens": self.accepted_tokens,
            "acceptance_rate": self.acceptance_rate,
            "mean_accepted_length": self.mean_accepted_length,
            "draft_tokens_per_step": self.draft_tokens_per_step,
        }


def from_vllm_metrics(metrics: Iterable[Any], method: str) -> SpeculativeCounters | None:
    """Counters from ``LLM.get_metrics()`` (``vllm.v1.metrics.reader`` Counter objects with
    ``name`` and ``value``), summed over engines; None when vLLM reports no spec decoding."""
    totals: dict[str, int] = {}
    for metric in metrics:
        key = VLLM_COUNTERS.get(getattr(metric, "name", ""))
        value = getattr(metric, "value", None)
        if key is not None and isinstance(value, (int, float)):
            totals[key] = totals.get(key, 0) + int(value)
    return _counters(totals, method, "vllm metrics")


def from_prometheus_text(text: str, method: str) -> SpeculativeCounters | None:
    """Counters from a vLLM server's ``/metrics`` page (Prometheus text format, counters with
    the ``_total`` suffix and labels), summed over label sets; None when absent."""
    totals: dict[str, int] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name_part, _, value_text = line.rpartition(" ")
        name = name_part.split("{", 1)[0].strip().removesuffix("_total")
        key = VLLM_COUNTERS.get(name)
        if key is None:
            continue
        try:
            totals[key] = totals.get(key, 0) + int(float(value_text))
        except ValueError:
            continue
    return _counters(totals, method, "vllm /metrics")


def _counters(totals: Mapping[str, int], method: str, source: str) -> SpeculativeCounters | None:
    if not totals:
        return None
    return SpeculativeCounters(
        method,
        source,
        totals.get("drafts", 0),
        totals.get("draft_tokens", 0),
        totals.get("accepted_tokens", 0),
    )
