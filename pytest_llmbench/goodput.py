"""Goodput: completed requests per second that met every service-level objective.

The method of ``vllm bench serve --goodput``: a request is good when it succeeded and each set
threshold holds (value <= threshold) for TTFT, TPOT and end-to-end latency. TPOT is
``(e2e - ttft) / (output_tokens - 1)``, and 0 for a request of at most one output token (vLLM
treats it the same way). Differences: thresholds are in seconds, not milliseconds, and a TTFT
or TPOT threshold on a request without a first-token time (no streaming) fails it, because the
objective cannot be shown to hold.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

from pytest_llmbench.backends.base import Completion
from pytest_llmbench.errors import ConfigError

SLO_KEYS = ("ttft", "tpot", "e2e")


@dataclass(frozen=True)
class SLO:
    """Upper bounds in seconds; None leaves a metric unconstrained."""

    ttft_s: float | None = None
    tpot_s: float | None = None
    e2e_s: float | None = None

    def __post_init__(self) -> None:
        for key, value in zip(SLO_KEYS, (self.ttft_s, self.tpot_s, self.e2e_s), strict=True):
            if value is not None and not value > 0:
                raise ConfigError(f"slo.{key}", f"{value} is not > 0 (seconds)")


def slo_to_dict(slo: SLO | None) -> dict[str, float] | None:
    """The thresholds that were set, in seconds (for the report), or None without an SLO."""
    if slo is None:
        return None
    return {k: v for k, v in asdict(slo).items() if v is not None}


def parse_slo(text: str) -> SLO:
    """``"ttft:0.2,tpot:0.05,e2e:2"`` (seconds) -> SLO; errors name the bad part."""
    values: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, raw = part.partition(":")
        key = key.strip()
        if not sep or key not in SLO_KEYS:
            raise ConfigError("slo", f"{part!r} is not KEY:SECONDS with KEY one of {SLO_KEYS}")
        try:
            values[f"{key}_s"] = float(raw)
        except ValueError:
            raise ConfigError("slo", f"{part!r}: {raw.strip()!r} is not a number") from None
    return SLO(**values)


def tpot_s(completion: Completion) -> float | None:
    """Time per output token after the first, seconds; None without a first-token time."""
    if completion.ttft_s is None:
        return None
    if completion.output_tokens <= 1:
        return 0.0
    return (completion.latency_s - completion.ttft_s) / (completion.output_tokens - 1)


def meets_slo(completion: Completion, slo: SLO) -> bool:
    """True when the request succeeded and every threshold of ``slo`` holds."""
    if completion.error is not None:
        return False
    checks = (
        (slo.ttft_s, completion.ttft_s),
        (slo.tpot_s, tpot_s(completion)),
        (slo.e2e_s, completion.latency_s),
    )
    for limit, value in checks:
        if limit is not None and (value is None or value > limit):
            return False
    return True


def span_s(completions: Sequence[Completion]) -> float:
    """Seconds from the first request's start to the last one's end (0 for none)."""
    if not completions:
        return 0.0
    return max(c.end_s for c in completions) - min(c.start_s for c in completions)


def goodput(completions: Sequence[Completion], slo: SLO, duration_s: float | None = None) -> float:
    """Good requests per second over ``duration_s`` (default: the completions' span).

    The runner should pass the traffic run's wall time, as vLLM divides by the benchmark's
    duration; with no thresholds set this is the throughput of successful requests.
    """
    duration = span_s(completions) if duration_s is None else duration_s
    if duration <= 0:
        return 0.0
    return sum(meets_slo(c, slo) for c in completions) / duration
