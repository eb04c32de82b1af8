"""How much throughput the harness costs: an engine's own call against the plugin's path.

Both paths run in the engine's process on the engine the backend already holds, so they see the
same weights, caches and warm state. Each engine package supplies its *direct* path (what a user
would write by hand, inputs built once, only the engine call timed); this module times the two
interleaved, so that drift (clocks, thermals, caches) hits both alike, and reports medians.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

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
