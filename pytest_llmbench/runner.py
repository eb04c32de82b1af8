"""Warm-up, repetitions and energy windows around a backend's work.

Each repetition is one energy window. When the meter needs more counter updates than one pass of
the workload gives (an NVML counter updates ~10 times a second), the workload is repeated inside
the same window until it is long enough, and the result records how many passes it took.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pytest_llmbench.backends.base import Backend, Completion, GenerationRequest, Schedule
from pytest_llmbench.energy.base import EnergyMeter
from pytest_llmbench.errors import EngineError
from pytest_llmbench.goodput import SLO
from pytest_llmbench.results import Repetition


@dataclass(frozen=True)
class RunSettings:
    repetitions: int = 3
    warmup: int = 1
    max_iterations: int = 1000  # a cap on passes per window, against an idle, never-updating meter
    slo: SLO | None = None  # count the requests that meet it (goodput)


def _check(
    completions: Sequence[Completion], requests: Sequence[GenerationRequest], backend: str
) -> None:
    if len(completions) != len(requests):
        raise EngineError(
            f"{backend} returned {len(completions)} completions for {len(requests)} requests"
        )


def run_repetition(
    backend: Backend,
    requests: Sequence[GenerationRequest],
    schedule: Schedule,
    meter: EnergyMeter,
    max_iterations: int = 1000,
    clock: Callable[[], float] = time.perf_counter,
    slo: SLO | None = None,
) -> Repetition:
    """One energy window holding one or more passes of the workload."""
    completions: list[Completion] = []
    window = meter.start()
    started = clock()
    iterations = 0
    try:
        while True:
            batch = backend.serve(requests, schedule)
            _check(batch, requests, backend.name)
            completions.extend(batch)
            iterations += 1
            if iterations >= max_iterations or window.updates() >= meter.min_updates:
                break
    finally:
        elapsed = clock() - started
        reading = window.stop()
    return Repetition.from_completions(completions, elapsed, iterations, reading, slo)


def run_benchmark(
    backend: Backend,
    requests: Sequence[GenerationRequest],
    schedule: Schedule,
    meter: EnergyMeter,
    settings: RunSettings,
) -> list[Repetition]:
    """Warm up (unmeasured), then ``settings.repetitions`` measured repetitions."""
    for _ in range(settings.warmup):
        _check(backend.serve(requests, schedule), requests, backend.name)
    return [
        run_repetition(
            backend, requests, schedule, meter, settings.max_iterations, slo=settings.slo
        )
        for _ in range(settings.repetitions)
    ]
