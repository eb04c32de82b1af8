"""How much throughput the harness costs: an engine's own call against the plugin's path.

Both paths run in the engine's process on the engine the backend already holds, so they see the
same weights, caches and warm state. Each engine package supplies its *direct* path (what a user
would write by hand, inputs built once, only the engine call timed); this module times the two
interleaved, so that drift (clocks, thermals, caches) hits both alike, and reports medians.
"""

from __future__ import annotations

import math
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pytest_llmbench.stats import t_quantile

#: A path to time: runs the workload once, returns the output tokens it produced.
Path = Callable[[], int]


@dataclass(frozen=True)
class OverheadComparison:
    """Output tokens per second of both paths (medians over ``repetitions``)."""

    engine: str  # which engine call the direct path makes, e.g. "LLM" or "generate"
    repetitions: int
    output_tokens: int  # per run, both paths
    direct_tok_s: float
    harness_tok_s: float

    @property
    def ratio(self) -> float:
        """harness / direct: 1.0 means the harness costs nothing measurable."""
        return self.harness_tok_s / self.direct_tok_s


def compare_paths(
    engine: str,
    direct: Path,
    harness: Path,
    expected_tokens: int,
    repetitions: int = 5,
    warmup: bool = True,
    harness_first: bool = False,
) -> OverheadComparison:
    """Time ``direct`` and ``harness`` alternately; each run must produce ``expected_tokens``.

    The order within a repetition alternates (``harness_first`` says how it starts). With a fixed
    order (direct first) an H100 run put the vLLM harness at 0.85 of direct while the same call
    made after both reached 0.99: order effects that a fixed order turns into bias.
    """
    if repetitions < 1:
        raise ValueError(f"repetitions must be >= 1, not {repetitions}")
    if warmup:
        direct(), harness()
    rates: dict[str, list[float]] = {"direct": [], "harness": []}
    pair = [("direct", direct), ("harness", harness)]
    for i in range(repetitions):
        order = pair[::-1] if (i % 2 == 0) == harness_first else pair
        for label, run in order:
            t0 = time.perf_counter()
            tokens = run()
            elapsed = time.perf_counter() - t0
            if tokens != expected_tokens:
                raise AssertionError(
                    f"the {label} path produced {tokens} tokens, expected {expected_tokens}"
                )
            rates[label].append(tokens / elapsed)
    return OverheadComparison(
        engine=engine,
        repetitions=repetitions,
        output_tokens=expected_tokens,
        direct_tok_s=statistics.median(rates["direct"]),
        harness_tok_s=statistics.median(rates["harness"]),
    )


#: One-sided confidence of :func:`ratio_upper_bound` as the benchmarks assert it by default: a
#: harness that costs nothing fails with probability 1 - this, however wide the rounds spread.
SLOWER_CONFIDENCE = 0.999


def ratio_upper_bound(ratios: Sequence[float], confidence: float = SLOWER_CONFIDENCE) -> float:
    """One-sided upper confidence bound of the typical paired ratio harness / direct.

    Each round times both paths back to back, so its ratio cancels what the round shares (clock,
    load at that moment); what load does differently from round to round is the spread. The
    bound is Student's t over the log ratios (ratios of rates multiply, so their logs add): the
    geometric mean's bound at ``confidence``. A bound below a floor means the rounds show the
    harness slower than the floor beyond their own spread. Load that swings whole rounds widens
    the interval instead of moving the bound down. Fewer than two rounds: +inf (no claim).
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence {confidence} is not within (0, 1)")
    if any(not (r > 0.0 and math.isfinite(r)) for r in ratios):
        raise ValueError(f"ratios must be positive and finite, got {list(ratios)}")
    if len(ratios) < 2:
        return math.inf
    logs = [math.log(r) for r in ratios]
    spread = statistics.stdev(logs) / math.sqrt(len(logs))
    upper = statistics.fmean(logs) + t_quantile(confidence, len(logs) - 1) * spread
    return math.exp(upper) if upper < math.log(sys.float_info.max) else math.inf
