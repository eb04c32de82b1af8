"""Runner arithmetic: repetitions, warm-up, the minimum energy window, derived metrics."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pytest

from pytest_llmbench.backends.base import (
    Backend,
    Completion,
    EngineInfo,
    GenerationRequest,
    Schedule,
)
from pytest_llmbench.energy.base import DeviceInfo, EnergyReading, UnavailableMeter
from pytest_llmbench.errors import EngineError
from pytest_llmbench.results import BenchmarkResult, Repetition
from pytest_llmbench.runner import RunSettings, run_benchmark, run_repetition


class CountingBackend(Backend):
    """Deterministic timestamps: request i of a call starts at 0 and emits a token every 10 ms."""

    name = "counting"
    extra = "counting"

    def __init__(self, drop: int = 0) -> None:
        self.calls = 0
        self.drop = drop

    @classmethod
    def check_available(cls) -> str | None:
        return None

    def start(self) -> None:
        pass

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        self.calls += 1
        out = []
        for r in requests[: len(requests) - self.drop]:
            times = tuple(0.1 + 0.01 * k for k in range(r.max_output_tokens))
            out.append(
                Completion(
                    r.request_id,
                    r.input_tokens,
                    r.max_output_tokens,
                    0.0,
                    times[-1],
                    times[0],
                    times,
                )
            )
        return out

    def info(self) -> EngineInfo:
        return EngineInfo("counting", "0", "m", "cpu")


@dataclass
class FakeCounterWindow:
    """Stands in for an NVML counter: one update per workload pass, 2 J per update."""

    meter: FakeCounterMeter

    def elapsed_s(self) -> float:
        return 0.0

    def updates(self) -> int:
        return self.meter.backend.calls - self.meter.calls_at_start

    def stop(self) -> EnergyReading:
        n = self.updates()
        return EnergyReading(
            "nvml-counter",
            1.0,
            2.0 * n,
            {"GPU-0": 2.0 * n},
            (DeviceInfo(0, "fake", "GPU-0"),),
            n,
            idle_power_w=0.5,
            short_window=n < self.meter.min_updates,
        )


@dataclass
class FakeCounterMeter:
    backend: CountingBackend
    min_updates: int
    method: str = "nvml-counter"
    calls_at_start: int = 0

    def start(self) -> FakeCounterWindow:
        self.calls_at_start = self.backend.calls
        return FakeCounterWindow(self)

    def describe(self) -> str:
        return "fake"


def requests(n: int, out: int = 4) -> list[GenerationRequest]:
    return [GenerationRequest(f"r{i}", (1, 2, 3), out, out) for i in range(n)]


def test_warmup_and_repetitions_call_the_backend_that_often() -> None:
    backend = CountingBackend()
    reps = run_benchmark(
        backend,
        requests(2),
        Schedule(),
        UnavailableMeter("none here"),
        RunSettings(repetitions=3, warmup=2),
    )
    assert backend.calls == 5
    assert len(reps) == 3
    assert all(r.iterations == 1 and r.requests == 2 and r.output_tokens == 8 for r in reps)


def test_short_window_repeats_the_workload_inside_it() -> None:
    backend = CountingBackend()
    meter = FakeCounterMeter(backend, min_updates=5)
    rep = run_repetition(backend, requests(3), Schedule(), meter)
    assert rep.iterations == 5
    assert rep.requests == 15 and rep.output_tokens == 60
    assert isinstance(rep.energy, EnergyReading) and not rep.energy.short_window
    metrics = rep.metrics()
    assert metrics["energy_per_output_token"] == pytest.approx(10.0 / 60)
    assert metrics["energy_per_request"] == pytest.approx(10.0 / 15)


def test_iteration_cap_flags_a_window_still_too_short() -> None:
    backend = CountingBackend()
    rep = run_repetition(
        backend,
        requests(1),
        Schedule(),
        FakeCounterMeter(backend, min_updates=50),
        max_iterations=3,
    )
    assert rep.iterations == 3
    assert isinstance(rep.energy, EnergyReading) and rep.energy.short_window


def test_lost_completions_are_an_engine_error() -> None:
    with pytest.raises(EngineError, match="returned 1 completions for 2 requests"):
        run_benchmark(
            CountingBackend(drop=1),
            requests(2),
            Schedule(),
            UnavailableMeter("x"),
            RunSettings(1, 0),
        )


def test_latency_metrics_from_timestamps() -> None:
    backend = CountingBackend()
    rep = run_repetition(backend, requests(2, out=5), Schedule(), UnavailableMeter("no meter"))
    m = rep.metrics()
    assert m["ttft_s_p50"] == pytest.approx(0.1)
    assert m["e2e_latency_s_p50"] == pytest.approx(0.14)
    assert m["itl_s_p50"] == pytest.approx(0.01)
    assert len(rep.itl_s) == 2 * 4
    assert "energy_j" not in m  # never a number without a meter


def test_result_round_trips_through_a_dict() -> None:
    backend = CountingBackend()
    meter = FakeCounterMeter(backend, min_updates=2)
    reps = tuple(run_benchmark(backend, requests(2), Schedule(), meter, RunSettings(2, 0)))
    result = BenchmarkResult(
        "t::x",
        "counting",
        "0",
        "m",
        "cpu",
        "abc",
        {},
        {"name": "w"},
        {},
        reps,
        "nvml-counter",
        "a",
        "b",
    )
    again = BenchmarkResult.from_dict(result.to_dict())
    assert again == result
    assert again.aggregate() == result.aggregate()
    assert Repetition.from_dict(reps[0].to_dict()) == reps[0]


def test_unavailable_energy_round_trips_with_its_reason() -> None:
    rep = run_repetition(
        CountingBackend(), requests(1), Schedule(), UnavailableMeter("no NVML, no RAPL")
    )
    data = rep.to_dict()
    assert data["energy"] == {"available": False, "reason": "no NVML, no RAPL", "method": "none"}
    assert Repetition.from_dict(data) == rep
