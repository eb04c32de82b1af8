"""Runner arithmetic: repetitions, warm-up, the minimum energy window, derived metrics."""

from __future__ import annotations

import json
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
from pytest_llmbench.runner import RunSettings, run_benchmark, run_repetition, settled, warm_up


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
    warmup, reps = run_benchmark(
        backend,
        requests(2),
        Schedule(),
        UnavailableMeter("none here"),
        RunSettings(repetitions=3, warmup=2, warmup_tolerance=0),
    )
    assert warmup.to_dict()["passes"] == 2 and warmup.settled
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
    _, reps = run_benchmark(backend, requests(2), Schedule(), meter, RunSettings(2, 0))
    reps = tuple(reps)
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


class SlowingBackend(CountingBackend):
    """Each pass takes the next of ``pass_s`` seconds on a fake clock (compile, then steady)."""

    def __init__(self, pass_s: list[float], clock: list[float]) -> None:
        super().__init__()
        self.pass_s = pass_s
        self.clock = clock

    def serve(self, reqs, schedule):  # type: ignore[no-untyped-def]
        self.clock[0] += self.pass_s[min(self.calls, len(self.pass_s) - 1)]
        return super().serve(reqs, schedule)


def test_warmup_goes_on_until_two_passes_agree() -> None:
    now = [0.0]
    backend = SlowingBackend([30.0, 1.4, 1.1, 1.02, 1.0, 1.0], now)
    settings = RunSettings(repetitions=1, warmup=1, warmup_max=10, warmup_tolerance=0.05)
    warmup = warm_up(backend, requests(1), Schedule(), settings, clock=lambda: now[0])
    assert warmup.pass_s == pytest.approx((30.0, 1.4, 1.1, 1.02, 1.0))
    assert warmup.settled


def test_warmup_is_bounded_and_says_it_did_not_settle() -> None:
    now = [0.0]
    backend = SlowingBackend([1.0, 2.0, 1.0, 2.0, 1.0, 2.0], now)
    settings = RunSettings(repetitions=1, warmup=1, warmup_max=4, warmup_tolerance=0.05)
    warmup = warm_up(backend, requests(1), Schedule(), settings, clock=lambda: now[0])
    assert len(warmup.pass_s) == 4 and not warmup.settled


def test_settled_compares_the_last_two_passes() -> None:
    assert settled([9.0, 1.0, 1.04], 0.05)
    assert not settled([1.0, 1.1], 0.05)
    assert not settled([1.0], 0.05)


def test_telemetry_is_read_outside_the_window_and_flags_throttling() -> None:
    backend = CountingBackend()
    meter = FakeCounterMeter(backend, min_updates=1)
    events: list[str] = []

    class Probe:
        def __init__(self) -> None:
            self.reads = 0

        def snapshot(self) -> list[dict[str, object]]:
            events.append(f"snapshot at call {backend.calls}")
            self.reads += 1
            throttled_mask = 0x4 if self.reads == 2 else 0x0  # sw_power_cap at the end
            return [
                {
                    "index": 0,
                    "sm_clock_mhz": 1980 - 300 * (self.reads - 1),
                    "temperature_c": 40 + self.reads,
                    "power_limit_w": 700.0,
                    "reasons": throttled_mask,
                    "violation_ns": {"power": 5_000_000_000 * self.reads, "thermal": None},
                }
            ]

    rep = run_repetition(backend, requests(1), Schedule(), meter, telemetry=Probe())
    assert events == ["snapshot at call 0", f"snapshot at call {backend.calls}"]
    gpu = rep.telemetry["gpus"][0]  # type: ignore[index]
    assert gpu["sm_clock_mhz"] == [1980, 1680]
    assert gpu["clock_event_reasons"] == ["sw_power_cap"]
    assert gpu["violation_s"] == {"power": 5.0, "thermal": None}
    assert rep.throttled and json.loads(json.dumps(rep.to_dict()))["telemetry"]["throttled"]


def test_warmup_zero_means_none() -> None:
    backend = CountingBackend()
    warmup = warm_up(backend, requests(1), Schedule(), RunSettings(warmup=0, warmup_max=10))
    assert warmup.pass_s == () and backend.calls == 0


def test_progress_is_reported_between_passes_and_never_inside_a_window() -> None:
    from pytest_llmbench.progress import Progress

    backend = CountingBackend()
    meter = FakeCounterMeter(backend, min_updates=2)
    open_windows: list[bool] = []
    starts: list[int] = []
    original_start = meter.start

    def start() -> FakeCounterWindow:
        window = original_start()
        starts.append(backend.calls)
        stop = window.stop

        def stopped() -> EnergyReading:
            open_windows.append(False)
            return stop()

        window.stop = stopped  # type: ignore[method-assign]
        open_windows.append(True)
        return window

    meter.start = start  # type: ignore[method-assign]
    seen: list[tuple[Progress, bool]] = []

    def sink(p: Progress) -> None:
        seen.append((p, bool(open_windows) and open_windows[-1]))

    run_benchmark(
        backend,
        requests(2, out=4),
        Schedule(),
        meter,  # type: ignore[arg-type]
        RunSettings(repetitions=3, warmup=2, warmup_tolerance=0),
        progress=sink,
    )
    assert [(p.phase, p.done, p.total) for p, _ in seen] == [
        ("warm-up", 1, 2),
        ("warm-up", 2, 2),
        ("repetition", 1, 3),
        ("repetition", 2, 3),
        ("repetition", 3, 3),
    ]
    assert not any(inside for _, inside in seen)
    last = seen[-1][0]
    assert last.output_tokens == 3 * 2 * 8  # 3 windows of 2 passes of 2 requests x 4 tokens
    assert last.tok_s is not None and last.elapsed_s >= 0
    assert "repetition 3/3" in last.describe("t") and "tok/s" in last.describe("t")


class HeapWatchingBackend(CountingBackend):
    """Records, per call, how many objects were frozen (gc.freeze) while it ran."""

    def __init__(self) -> None:
        super().__init__()
        self.frozen: list[int] = []

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        import gc

        self.frozen.append(gc.get_freeze_count())
        return super().generate(requests)


@pytest.mark.parametrize("freeze", [True, False])
def test_repetitions_run_with_the_heap_frozen_and_warm_up_and_after_without(freeze: bool) -> None:
    import gc

    backend = HeapWatchingBackend()
    settings = RunSettings(repetitions=2, warmup=1, warmup_tolerance=0, freeze_gc=freeze)
    run_benchmark(backend, requests(1), Schedule(), UnavailableMeter("none"), settings)
    warm, *measured = backend.frozen
    assert warm == 0 and len(measured) == 2
    assert all(n > 0 for n in measured) if freeze else all(n == 0 for n in measured)
    assert gc.get_freeze_count() == 0
