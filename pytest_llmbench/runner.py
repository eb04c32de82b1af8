"""Warm-up, repetitions and energy windows around a backend's work.

Each repetition is one energy window. When the meter needs more counter updates than one pass of
the workload gives (an NVML counter updates ~10 times a second), the workload is repeated inside
the same window until it is long enough, and the result records how many passes it took.

Warm-up runs at least ``warmup`` passes, then goes on until two passes in a row take the same
time within ``warmup_tolerance`` (compilation, autotuning, clock ramp-up and caches are done),
at most ``warmup_max`` passes; the result records how many it took and whether it settled.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pytest_llmbench.backends.base import Backend, Completion, GenerationRequest, Schedule
from pytest_llmbench.energy.base import EnergyMeter
from pytest_llmbench.errors import EngineError
from pytest_llmbench.goodput import SLO
from pytest_llmbench.progress import Progress, ProgressSink
from pytest_llmbench.results import Repetition


class Telemetry(Protocol):
    """GPU state around a window (see :mod:`pytest_llmbench.energy.telemetry`)."""

    def snapshot(self) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class RunSettings:
    repetitions: int = 3
    warmup: int = 1
    warmup_max: int = 10
    warmup_tolerance: float = 0.05  # 0: exactly ``warmup`` passes
    max_iterations: int = 1000  # a cap on passes per window, against an idle, never-updating meter
    slo: SLO | None = None  # count the requests that meet it (goodput)
    freeze_gc: bool = True  # repetitions run with the heap frozen (pytest_llmbench.heap)


@dataclass(frozen=True)
class Warmup:
    """How warm-up went: pass times (seconds) and whether throughput settled."""

    pass_s: tuple[float, ...]
    settled: bool

    def to_dict(self) -> dict[str, Any]:
        return {"passes": len(self.pass_s), "settled": self.settled, "pass_s": list(self.pass_s)}


def _check(
    completions: Sequence[Completion], requests: Sequence[GenerationRequest], backend: str
) -> None:
    if len(completions) != len(requests):
        raise EngineError(
            f"{backend} returned {len(completions)} completions for {len(requests)} requests"
        )


def settled(pass_s: Sequence[float], tolerance: float) -> bool:
    """True when the last two passes took the same time within ``tolerance`` (a fraction)."""
    if len(pass_s) < 2:
        return False
    a, b = pass_s[-2], pass_s[-1]
    return abs(a - b) <= tolerance * min(a, b)


def warm_up(
    backend: Backend,
    requests: Sequence[GenerationRequest],
    schedule: Schedule,
    settings: RunSettings,
    clock: Callable[[], float] = time.perf_counter,
    progress: ProgressSink | None = None,
    began: float | None = None,
) -> Warmup:
    """Unmeasured passes until throughput settles (see the module docstring); ``warmup=0``
    asks for no warm-up at all. ``progress`` hears after each pass (``began``: the clock's
    reading when the benchmark started)."""
    if settings.warmup == 0:
        return Warmup((), False)
    began = clock() if began is None else began
    adaptive = settings.warmup_tolerance > 0
    most = max(settings.warmup, settings.warmup_max) if adaptive else settings.warmup
    pass_s: list[float] = []
    tokens = 0
    while len(pass_s) < most:
        started = clock()
        batch = backend.serve(requests, schedule)
        pass_s.append(clock() - started)
        _check(batch, requests, backend.name)
        tokens += sum(c.output_tokens for c in batch if c.error is None)
        if progress is not None:
            progress(Progress("warm-up", len(pass_s), most, clock() - began, tokens, sum(pass_s)))
        if (
            adaptive
            and len(pass_s) >= settings.warmup
            and settled(pass_s, settings.warmup_tolerance)
        ):
            break
    done = settled(pass_s, settings.warmup_tolerance) if adaptive else True
    return Warmup(tuple(pass_s), done)


def run_repetition(
    backend: Backend,
    requests: Sequence[GenerationRequest],
    schedule: Schedule,
    meter: EnergyMeter,
    max_iterations: int = 1000,
    clock: Callable[[], float] = time.perf_counter,
    slo: SLO | None = None,
    telemetry: Telemetry | None = None,
    keep: list[Completion] | None = None,
) -> Repetition:
    """One energy window holding one or more passes of the workload; GPU telemetry is read
    just outside the window, so its cost never lands inside. ``keep`` receives the window's
    completions (a multi-turn run builds the next turn from them)."""
    from pytest_llmbench.energy.telemetry import window_telemetry
    from pytest_llmbench.loadgen import ClientLoad, add_runs

    before = telemetry.snapshot() if telemetry is not None else None
    completions: list[Completion] = []
    loads: tuple[ClientLoad, ...] = ()
    probe = backend.window_probe()
    if probe is not None:
        probe.start()  # outside the window, like the telemetry
    window = meter.start()
    started = clock()
    iterations = 0
    try:
        while True:
            batch = backend.serve(requests, schedule)
            _check(batch, requests, backend.name)
            completions.extend(batch)
            loads = add_runs(loads, backend.client_load() or ())
            iterations += 1
            if iterations >= max_iterations or window.updates() >= meter.min_updates:
                break
    finally:
        elapsed = clock() - started
        reading = window.stop()
        server = probe.stop() if probe is not None else None
    state = None
    if telemetry is not None and before is not None:
        state = window_telemetry(before, telemetry.snapshot())
    if keep is not None:
        keep.extend(completions)
    rep = Repetition.from_completions(
        completions, elapsed, iterations, reading, slo, telemetry=state, client_loads=loads
    )
    return rep if server is None else dataclasses.replace(rep, server=server)


def run_benchmark(
    backend: Backend,
    requests: Sequence[GenerationRequest],
    schedule: Schedule,
    meter: EnergyMeter,
    settings: RunSettings,
    telemetry: Telemetry | None = None,
    progress: ProgressSink | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> tuple[Warmup, list[Repetition]]:
    """Warm up (unmeasured, until settled), then ``settings.repetitions`` measured repetitions.

    ``progress`` hears after each warm-up pass and each repetition, never inside a window."""
    from pytest_llmbench.heap import frozen_heap

    began = clock()
    warmup = warm_up(backend, requests, schedule, settings, clock, progress, began)
    repetitions: list[Repetition] = []
    with frozen_heap(settings.freeze_gc):  # no full collection pauses a window
        for _ in range(settings.repetitions):
            repetitions.append(
                run_repetition(
                    backend,
                    requests,
                    schedule,
                    meter,
                    settings.max_iterations,
                    slo=settings.slo,
                    telemetry=telemetry,
                )
            )
            # The window has closed: reporting costs the measurement nothing.
            if progress is not None:
                progress(
                    Progress(
                        "repetition",
                        len(repetitions),
                        settings.repetitions,
                        clock() - began,
                        sum(r.output_tokens for r in repetitions),
                        sum(r.window_s for r in repetitions),
                    )
                )
    return warmup, repetitions
