"""The agreement probe: a few fixed prompts, greedy, forced length, on every selected backend.

Run once per started engine (``LLMBenchSession.quality``), recorded on the first test that uses
the engine (test-report ``user_properties``, so pytest-xdist carries it to the controller) and
compared pairwise at the end of the session (:mod:`pytest_llmbench.quality.agreement`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pytest_llmbench.quality.perplexity import REFERENCE_TEXT

PROBE_PROPERTY = "llmbench_probe"  # key under which a probe rides on the test report
PROMPTS = 4
PROMPT_TOKENS = 32
OUTPUT_TOKENS = 32
STRIDE = 64  # prompts are slices of the reference prefix this many tokens apart
PROBE_ID = f"{REFERENCE_TEXT}:{PROMPTS}x{PROMPT_TOKENS}->{OUTPUT_TOKENS}"


class Prober(Protocol):
    def greedy_token_ids(
        self, prompts: Sequence[Sequence[int]], output_tokens: int
    ) -> list[tuple[int, ...]]: ...


def probe_prompts(reference: Sequence[int]) -> list[list[int]]:
    """``PROMPTS`` prompts of ``PROMPT_TOKENS`` tokens from the reference text (wrapping round a
    short text, so any tokenizer gives the same count)."""
    if not reference:
        raise ValueError("the reference text encodes to no tokens")
    out = []
    for i in range(PROMPTS):
        start = i * STRIDE
        out.append([reference[(start + j) % len(reference)] for j in range(PROMPT_TOKENS)])
    return out


@dataclass(frozen=True)
class ProbeOutput:
    """One backend's greedy continuations of the probe prompts, or why there are none."""

    backend: str
    model: str
    dtype: str
    outputs: tuple[tuple[int, ...], ...] | None
    reason: str | None = None
    probe: str = PROBE_ID

    def to_dict(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "model": self.model,
            "dtype": self.dtype,
            "probe": self.probe,
            "outputs": None if self.outputs is None else [list(o) for o in self.outputs],
            "unavailable": self.reason,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ProbeOutput:
        outputs = data.get("outputs")
        return cls(
            backend=str(data["backend"]),
            model=str(data["model"]),
            dtype=str(data.get("dtype") or "unknown"),
            outputs=None if outputs is None else tuple(tuple(int(t) for t in o) for o in outputs),
            reason=data.get("unavailable"),
            probe=str(data.get("probe") or PROBE_ID),
        )


def run_probe(
    prober: Prober, reference: Sequence[int], *, backend: str, model: str, dtype: str
) -> ProbeOutput:
    """Greedy continuations of the probe prompts; QualityUnavailable becomes the reason."""
    from pytest_llmbench.errors import QualityUnavailable

    try:
        outputs = prober.greedy_token_ids(probe_prompts(reference), OUTPUT_TOKENS)
    except QualityUnavailable as exc:
        return ProbeOutput(backend, model, dtype, None, str(exc))
    bad = [len(o) for o in outputs if len(o) != OUTPUT_TOKENS]
    if len(outputs) != PROMPTS or bad:
        reason = f"expected {PROMPTS} continuations of {OUTPUT_TOKENS} tokens, got " + ", ".join(
            str(len(o)) for o in outputs
        )
        return ProbeOutput(backend, model, dtype, None, reason)
    return ProbeOutput(backend, model, dtype, tuple(tuple(int(t) for t in o) for o in outputs))
