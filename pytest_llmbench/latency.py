"""Latency samples summarised where they are measured, so a report's size does not grow with them.

A 64-prompt x 64-token run has ~4000 inter-token latencies per repetition; keeping them all made
reports hundreds of kilobytes. :class:`LatencySummary` keeps what every reader needs instead:
count, mean, min, max and the exact percentiles (:data:`PERCENTILES`, computed from the full
samples with :func:`pytest_llmbench.stats.percentile`, so gate metrics are the same as from the
samples), plus a histogram on fixed, log-spaced bin edges for CDF plots. Fixed edges make
histograms of different repetitions, runs and machines add up exactly.
"""

from __future__ import annotations

import bisect
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pytest_llmbench.plain import plain_float, plain_int
from pytest_llmbench.stats import percentile

PERCENTILES: tuple[int, ...] = (50, 90, 99)  # the metrics catalogue's p50 / p90 / p99
HIST_MIN_S = 1e-6
HIST_MAX_S = 1e3
BINS_PER_DECADE = 10
_DECADES = round(math.log10(HIST_MAX_S / HIST_MIN_S))
# EDGES_S[i] .. EDGES_S[i + 1] is bin i + 1; bin 0 holds values below 1 us (and zeros), the last
# bin values from 1000 s up.
EDGES_S: tuple[float, ...] = tuple(
    10.0 ** (math.log10(HIST_MIN_S) + i / BINS_PER_DECADE)
    for i in range(_DECADES * BINS_PER_DECADE + 1)
)
NUM_BINS = len(EDGES_S) + 1


def bin_index(value_s: float) -> int:
    """The histogram bin of ``value_s`` (seconds): 0 below the first edge, NUM_BINS-1 above."""
    return bisect.bisect_right(EDGES_S, value_s)


def bin_bounds_s(index: int) -> tuple[float, float]:
    """Lower and upper edge (seconds) of bin ``index``; 0 and inf for the open end bins."""
    lower = 0.0 if index == 0 else EDGES_S[index - 1]
    upper = math.inf if index >= len(EDGES_S) else EDGES_S[index]
    return lower, upper


@dataclass(frozen=True)
class Histogram:
    """Counts on the fixed edges, stored from the first to the last non-empty bin."""

    offset: int
    counts: tuple[int, ...]

    @classmethod
    def of(cls, values: Iterable[float]) -> Histogram:
        full = [0] * NUM_BINS
        for v in values:
            full[bin_index(v)] += 1
        return cls.from_full(full)

    @classmethod
    def from_full(cls, full: Sequence[int]) -> Histogram:
        used = [i for i, c in enumerate(full) if c]
        if not used:
            return cls(0, ())
        return cls(used[0], tuple(full[used[0] : used[-1] + 1]))

    def full(self) -> list[int]:
        out = [0] * NUM_BINS
        out[self.offset : self.offset + len(self.counts)] = self.counts
        return out

    @property
    def total(self) -> int:
        return sum(self.counts)

    def __add__(self, other: Histogram) -> Histogram:
        return Histogram.from_full([a + b for a, b in zip(self.full(), other.full(), strict=True)])

    def cdf(self) -> tuple[list[float], list[float]]:
        """(upper edge in seconds, fraction of values below it) per non-empty bin, for plots,
        after (lower edge of the first non-empty bin, 0): no value lies below it, so the curve
        starts at 0 as a CDF does instead of at the first bin's share."""
        total = self.total
        xs: list[float] = []
        ys: list[float] = []
        running = 0
        for i, count in enumerate(self.counts, start=self.offset):
            running += count
            if count:
                lower, upper = bin_bounds_s(i)
                if not xs and lower > 0:
                    xs.append(lower)
                    ys.append(0.0)
                xs.append(upper if math.isfinite(upper) else lower)
                ys.append(running / total)
        return xs, ys

    def to_dict(self) -> dict[str, Any]:
        return {"offset": self.offset, "counts": list(self.counts)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Histogram:
        offset = plain_int(data["offset"], "histogram.offset")
        counts = tuple(plain_int(c, "histogram.counts") for c in data["counts"])
        if offset < 0 or offset + len(counts) > NUM_BINS or any(c < 0 for c in counts):
            raise ValueError(f"histogram: bins {offset}..{offset + len(counts)} out of range")
        return cls.from_full(cls(offset, counts).full())


@dataclass(frozen=True)
class LatencySummary:
    """Count, mean, extremes, exact percentiles (seconds) and a histogram of some latencies.

    ``percentiles`` maps each of :data:`PERCENTILES` to its value; all statistics are None
    when ``count`` is 0.
    """

    count: int
    mean: float | None
    min: float | None
    max: float | None
    percentiles: Mapping[int, float | None]
    histogram: Histogram

    @classmethod
    def of(cls, values: Sequence[float]) -> LatencySummary:
        """Summarise ``values`` (seconds); exact, so metrics match those from the samples."""
        if not values:
            return cls(0, None, None, None, dict.fromkeys(PERCENTILES), Histogram(0, ()))
        ordered = sorted(values)
        return cls(
            count=len(values),
            mean=statistics.fmean(values),
            min=ordered[0],
            max=ordered[-1],
            percentiles={q: percentile(ordered, q) for q in PERCENTILES},
            histogram=Histogram.of(ordered),
        )

    def stats(self) -> dict[str, float | None]:
        """``mean``, ``p50``, ``p90``, ``p99``: the per-repetition latency metrics' statistics."""
        out: dict[str, float | None] = {"mean": self.mean}
        out.update({f"p{q}": self.percentiles.get(q) for q in PERCENTILES})
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "mean": self.mean,
            "min": self.min,
            "max": self.max,
            **{f"p{q}": self.percentiles.get(q) for q in PERCENTILES},
            "histogram": self.histogram.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "latency") -> LatencySummary:
        def number(key: str) -> float | None:
            value = data.get(key)
            return None if value is None else plain_float(value, f"{where}.{key}")

        summary = cls(
            count=plain_int(data["count"], f"{where}.count"),
            mean=number("mean"),
            min=number("min"),
            max=number("max"),
            percentiles={q: number(f"p{q}") for q in PERCENTILES},
            histogram=Histogram.from_dict(data["histogram"]),
        )
        if summary.histogram.total != summary.count:
            raise ValueError(
                f"{where}: histogram counts sum to {summary.histogram.total}, "
                f"not count {summary.count}"
            )
        return summary


def pooled_summary(parts: Sequence[LatencySummary]) -> LatencySummary:
    """What summaries of several repetitions tell exactly about their samples pooled: count,
    mean, min, max and the histogram. Percentiles of pooled samples cannot be recovered from
    per-repetition percentiles; they are None unless there is one part."""
    present = [p for p in parts if p.count]
    if len(present) <= 1:
        return present[0] if present else LatencySummary.of(())
    count = sum(p.count for p in present)
    histogram = present[0].histogram
    for p in present[1:]:
        histogram = histogram + p.histogram
    return LatencySummary(
        count=count,
        mean=sum(p.count * (p.mean or 0.0) for p in present) / count,
        min=min(p.min for p in present if p.min is not None),
        max=max(p.max for p in present if p.max is not None),
        percentiles=dict.fromkeys(PERCENTILES),
        histogram=histogram,
    )
