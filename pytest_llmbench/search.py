"""The peak load that still meets an SLO: a search over request rate or concurrency.

A load *meets* the SLO (``--llm-slo``) when the fraction of its requests that met every
threshold, its *attainment*, is at least the target (``--llm-slo-attainment``, default 0.9, as
DistServe defines SLO attainment). Attainment is a proportion measured on a finite number of
requests, so each load is judged with its sampling noise: the Wilson score interval (95%) of
good/all requests. A load whose interval lies above the target meets it, one whose interval
lies below fails it; an interval that holds the target asks for another repetition at that load
(up to :attr:`SearchSettings.max_repetitions`), after which the point estimate decides and the
point is marked ``decided_by: "estimate"``.

The search starts at ``start`` and doubles the load until a load fails (or ``max_load`` is
reached), then bisects between the highest load that met and the lowest that failed until they
are within ``tolerance`` of each other (rates) or adjacent (concurrency), at most ``max_steps``
loads in all. Rates reuse one arrival seed, so every load sends the same pattern, time-scaled
(common random numbers). Goodput is assumed to fall, once it falls, with more load: where it
does not, bisection finds *a* boundary, not necessarily the highest.

A short run hides overload: a burst of 16 requests at five times what the server sustains
drains within a 1 s SLO and "meets" it (measured on the CPU development machine). So at each
rate the search sends at least enough requests for their arrivals to span
:data:`SPAN_FACTOR` (10) times the SLO's longest threshold (the TPOT threshold counts times the
output length): long enough that the queue a 10% overload builds passes the threshold within
the run (its wait grows by about span x (load / capacity - 1)).

The peak is the highest load that met the SLO; ``peak_goodput`` is the goodput measured there
(good requests per second of its windows), 0 when no load met it (the outcome says so and
names the lowest load tried).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pytest_llmbench.errors import ConfigError
from pytest_llmbench.results import Repetition

OVER = ("rate", "concurrency")
SPAN_FACTOR = 10.0
CONFIDENCE = 0.95
DEFAULT_ATTAINMENT = 0.9


@dataclass(frozen=True)
class SearchSettings:
    """How the search runs. Loads are requests per second (``rate``) or requests in flight."""

    over: Literal["rate", "concurrency"] = "rate"
    start: float = 1.0
    max_load: float | None = None
    tolerance: float = 0.1  # rates: stop when (fail - met) / met <= this
    max_steps: int = 10
    attainment: float = DEFAULT_ATTAINMENT
    max_repetitions: int = 6  # at one load, while its interval holds the target

    def __post_init__(self) -> None:
        where = "peak_goodput"
        if self.over not in OVER:
            raise ConfigError(f"{where}.over", f"{self.over!r} is not one of {', '.join(OVER)}")
        if not self.start > 0 or (self.over == "concurrency" and self.start < 1):
            raise ConfigError(f"{where}.start", f"{self.start} is not a load > 0 (>= 1 in flight)")
        if self.max_load is not None and self.max_load < self.start:
            raise ConfigError(f"{where}.max_load", f"{self.max_load} is not >= start")
        if not 0 < self.tolerance < 1:
            raise ConfigError(f"{where}.tolerance", f"{self.tolerance} is not within (0, 1)")
        if self.max_steps < 1:
            raise ConfigError(f"{where}.max_steps", f"{self.max_steps} is not >= 1")
        if not 0 < self.attainment <= 1:
            raise ConfigError("--llm-slo-attainment", f"{self.attainment} is not within (0, 1]")


def horizon_s(
    ttft_s: float | None, tpot_s: float | None, e2e_s: float | None, tokens: int
) -> float:
    """The longest time an SLO allows a request (seconds): its largest threshold."""
    return max(ttft_s or 0.0, (tpot_s or 0.0) * tokens, e2e_s or 0.0)


def requests_at_rate(rate: float, minimum: int, horizon: float) -> int:
    """Requests to send at ``rate`` so their arrivals span SPAN_FACTOR x ``horizon`` seconds."""
    return max(minimum, math.ceil(SPAN_FACTOR * horizon * rate))


def wilson_interval(good: int, total: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Wilson score interval of a proportion ``good / total``; (0, 1) for no requests."""
    if total == 0:
        return 0.0, 1.0
    z = statistics.NormalDist().inv_cdf(0.5 + confidence / 2)
    p = good / total
    scale = 1 + z * z / total
    center = (p + z * z / (2 * total)) / scale
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / scale
    # The bounds are exactly 0 and 1 at the ends (rounding would leave them a hair inside).
    low = 0.0 if good == 0 else max(0.0, min(p, center - half))
    high = 1.0 if good == total else min(1.0, max(p, center + half))
    return low, high


@dataclass(frozen=True)
class Point:
    """One load tried: its repetitions and what they say about the SLO."""

    load: float
    repetitions: tuple[Repetition, ...]
    attainment_target: float

    @property
    def good(self) -> int:
        return sum(r.good_requests or 0 for r in self.repetitions)

    @property
    def total(self) -> int:
        return sum(r.requests + r.errors for r in self.repetitions)

    @property
    def attainment(self) -> float:
        return self.good / self.total if self.total else 0.0

    @property
    def interval(self) -> tuple[float, float]:
        return wilson_interval(self.good, self.total)

    @property
    def decided(self) -> bool:
        low, high = self.interval
        return low >= self.attainment_target or high < self.attainment_target

    @property
    def meets(self) -> bool:
        """Above the target beyond noise, or (undecided) by the point estimate."""
        low, high = self.interval
        if low >= self.attainment_target:
            return True
        if high < self.attainment_target:
            return False
        return self.attainment >= self.attainment_target

    @property
    def goodput(self) -> float:
        window = sum(r.window_s for r in self.repetitions)
        return self.good / window if window > 0 else 0.0

    @property
    def energy_per_good_request(self) -> float | None:
        joules = [r.metrics().get("energy_j") for r in self.repetitions]
        if not self.good or any(j is None for j in joules):
            return None
        return sum(j for j in joules if j is not None) / self.good

    def to_dict(self) -> dict[str, Any]:
        low, high = self.interval
        return {
            "load": self.load,
            "repetitions": len(self.repetitions),
            "requests": self.total,
            "good_requests": self.good,
            "attainment": self.attainment,
            "attainment_interval": [low, high],
            "meets": self.meets,
            "decided_by": "interval" if self.decided else "estimate",
            "goodput": self.goodput,
            "request_throughput": sum(r.requests for r in self.repetitions)
            / max(sum(r.window_s for r in self.repetitions), 1e-12),
            "energy_per_good_request": self.energy_per_good_request,
            # the load generator limited this load: its attainment describes the client
            "client_bound": any(r.client_bound for r in self.repetitions),
        }


Measure = Callable[[float, int], Sequence[Repetition]]
"""Runs ``n`` more repetitions at a load (a rate, or a concurrency as a whole number)."""


@dataclass(frozen=True)
class SearchOutcome:
    settings: SearchSettings
    points: tuple[Point, ...]  # in the order tried
    peak: Point | None  # the highest load that met the SLO
    lowest: Point  # the lowest load tried (what a search that met nothing reports)

    @property
    def peak_goodput(self) -> float:
        return self.peak.goodput if self.peak is not None else 0.0

    def describe(self) -> str:
        unit = "req/s" if self.settings.over == "rate" else "in flight"
        target = f"attainment >= {self.settings.attainment:g}"
        if self.peak is None:
            return (
                f"no load met the SLO ({target}); the lowest load tried, "
                f"{self.lowest.load:g} {unit}, reached {self.lowest.attainment:.3f}"
            )
        return (
            f"peak {self.peak.load:g} {unit}: goodput {self.peak.goodput:.4g} req/s, "
            f"attainment {self.peak.attainment:.3f} ({target})"
        )

    def to_dict(self) -> dict[str, Any]:
        peak = self.peak
        return {
            "over": self.settings.over,
            "attainment_target": self.settings.attainment,
            "tolerance": self.settings.tolerance,
            "max_load": self.settings.max_load,
            "peak_load": peak.load if peak is not None else None,
            "peak_goodput": self.peak_goodput,
            "energy_per_good_request": peak.energy_per_good_request if peak else None,
            "lowest_load": self.lowest.load,
            "outcome": self.describe(),
            "points": [p.to_dict() for p in self.points],
        }


def _as_load(settings: SearchSettings, value: float) -> float:
    return float(round(value)) if settings.over == "concurrency" else value


def search(measure: Measure, settings: SearchSettings, repetitions: int) -> SearchOutcome:
    """Find the highest load meeting the SLO; ``measure`` runs repetitions at a load."""
    points: list[Point] = []

    def trial(load: float) -> Point:
        reps = list(measure(load, repetitions))
        point = Point(load, tuple(reps), settings.attainment)
        while not point.decided and len(reps) < settings.max_repetitions:
            reps += measure(load, 1)
            point = Point(load, tuple(reps), settings.attainment)
        points.append(point)
        return point

    met: Point | None = None
    failed: Point | None = None
    load = _as_load(settings, settings.start)
    while len(points) < settings.max_steps:
        point = trial(load)
        if not point.meets:
            failed = point
            break
        met = point
        if settings.max_load is not None and load >= settings.max_load:
            break
        load = _as_load(settings, load * 2)
        if settings.max_load is not None:
            load = min(load, _as_load(settings, settings.max_load))
    while met is not None and failed is not None and len(points) < settings.max_steps:
        if settings.over == "concurrency":
            if failed.load - met.load <= 1:
                break
            mid = float(math.floor((met.load + failed.load) / 2))
        else:
            if (failed.load - met.load) / met.load <= settings.tolerance:
                break
            mid = (met.load + failed.load) / 2
        point = trial(mid)
        if point.meets:
            met = point
        else:
            failed = point
    lowest = min(points, key=lambda p: p.load)
    return SearchOutcome(settings, tuple(points), met, lowest)
