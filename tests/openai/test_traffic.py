"""Arrival schedules (statistics with fixed seeds) and the async driver that keeps to them."""

from __future__ import annotations

import asyncio
import math
import selectors
import statistics
import time
from collections.abc import Callable, Iterator
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_llmbench.backends.base import Completion, GenerationRequest, Schedule
from pytest_llmbench.config.schema import TrafficConfig
from pytest_llmbench.errors import ConfigError
from pytest_llmbench.workload.traffic import (
    concurrency_schedule,
    gamma_offsets,
    gamma_schedule,
    poisson_schedule,
    run_schedule,
    schedules_for,
)


def intervals(offsets: tuple[float, ...]) -> list[float]:
    return [b - a for a, b in zip(offsets, offsets[1:], strict=False)]


def ks_exponential(samples: list[float], rate: float) -> float:
    """Kolmogorov-Smirnov statistic of ``samples`` against Exp(rate)."""
    xs = sorted(samples)
    n = len(xs)
    d = 0.0
    for i, x in enumerate(xs):
        cdf = 1.0 - math.exp(-rate * x)
        d = max(d, (i + 1) / n - cdf, cdf - i / n)
    return d


def ks_critical(n: int, alpha_coefficient: float = 1.63) -> float:
    return alpha_coefficient / math.sqrt(n)  # alpha = 0.01


def cv(xs: list[float]) -> float:
    return statistics.pstdev(xs) / statistics.fmean(xs)


def test_poisson_mean_interval_and_ks() -> None:
    rate = 5.0
    gaps = intervals(poisson_schedule(4001, rate, seed=123).arrival_offsets_s or ())
    assert len(gaps) == 4000
    assert statistics.fmean(gaps) == pytest.approx(1 / rate, rel=0.05)
    assert ks_exponential(gaps, rate) < ks_critical(len(gaps))
    assert cv(gaps) == pytest.approx(1.0, rel=0.1)


def test_ks_check_has_power_against_regular_arrivals() -> None:
    # Without this, the KS test above could pass on anything.
    gaps = intervals(gamma_offsets(4001, 5.0, burstiness=20.0, seed=123))
    assert ks_exponential(gaps, 5.0) > ks_critical(len(gaps))


@pytest.mark.parametrize("shape", [0.25, 0.5, 2.0, 4.0])
def test_gamma_burstiness_sets_the_coefficient_of_variation(shape: float) -> None:
    gaps = intervals(gamma_schedule(8001, 2.0, shape, seed=7).arrival_offsets_s or ())
    assert statistics.fmean(gaps) == pytest.approx(0.5, rel=0.08)  # mean stays 1/rate
    assert cv(gaps) == pytest.approx(1 / math.sqrt(shape), rel=0.12)


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(0, 200),
    rate=st.floats(0.01, 1000),
    shape=st.floats(0.05, 50),
    seed=st.integers(0, 2**32),
)
def test_offsets_are_sorted_start_at_zero_and_repeat_with_the_seed(
    n: int, rate: float, shape: float, seed: int
) -> None:
    offsets = gamma_offsets(n, rate, shape, seed)
    assert len(offsets) == n
    assert list(offsets) == sorted(offsets)
    assert not offsets or offsets[0] == 0.0
    assert offsets == gamma_offsets(n, rate, shape, seed)


def test_rate_sweep_gives_one_time_scaled_schedule_per_rate() -> None:
    traffic = TrafficConfig(mode="gamma", rate_sweep=[1.0, 2.0, 8.0], burstiness=0.5, seed=3)
    out = schedules_for(traffic, 50)
    assert [s.rate for s in out] == [1.0, 2.0, 8.0]
    assert [s.label for s in out] == ["1rps", "2rps", "8rps"]
    base = out[0].schedule.arrival_offsets_s or ()
    for rated in out[1:]:
        scaled = [o * (rated.rate or 0) for o in rated.schedule.arrival_offsets_s or ()]
        assert scaled == pytest.approx(list(base))  # same seed: common random numbers


def test_schedules_for_each_mode() -> None:
    assert schedules_for(TrafficConfig(), 4)[0].schedule.offline
    [c] = schedules_for(TrafficConfig(mode="concurrency", concurrency=3), 4)
    assert c.schedule == Schedule(max_concurrency=3) and c.label == "c3"
    [p] = schedules_for(TrafficConfig(mode="poisson", request_rate=2.5), 4)
    assert p.rate == 2.5 and len(p.schedule.arrival_offsets_s or ()) == 4


def test_invalid_rates_name_the_config_key() -> None:
    with pytest.raises(ConfigError, match="traffic_simulation.request_rate"):
        gamma_offsets(3, 0.0)
    with pytest.raises(ConfigError, match="traffic_simulation.burstiness"):
        gamma_offsets(3, 1.0, burstiness=-1)
    with pytest.raises(ConfigError, match="traffic_simulation.concurrency"):
        concurrency_schedule(0)


# -- the driver ---------------------------------------------------------------------------------


def reqs(n: int) -> list[GenerationRequest]:
    return [GenerationRequest(f"q{i}", (1, 2), 2, 2) for i in range(n)]


class Recorder:
    """A send() that takes ``work_s`` and records starts and the peak number in flight."""

    def __init__(
        self,
        work_s: float = 0.05,
        fail: set[str] | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.work_s = work_s
        self.fail = fail or set()
        self.clock = clock
        self.in_flight = 0
        self.peak = 0

    async def __call__(self, request: GenerationRequest) -> Completion:
        start = self.clock()
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            await asyncio.sleep(self.work_s)
            if request.request_id in self.fail:
                raise ConnectionError("boom")
        finally:
            self.in_flight -= 1
        return Completion(request.request_id, 2, 2, start, self.clock())


class JumpingSelector(selectors.DefaultSelector):
    """Instead of waiting ``timeout`` for the next timer, moves the clock there at once."""

    def __init__(self) -> None:
        super().__init__()
        self.now_s = 0.0

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is not None and timeout > 0:
            self.now_s += timeout
        return super().select(0 if timeout is not None else None)


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop on a virtual clock: sleeps take no wall time and end exactly when due, so
    the driver's timing is checked exactly, however busy the machine is."""

    def __init__(self) -> None:
        self.selector = JumpingSelector()
        super().__init__(self.selector)

    def time(self) -> float:
        return self.selector.now_s


@pytest.fixture
def virtual_loop(monkeypatch: pytest.MonkeyPatch) -> Iterator[VirtualTimeLoop]:
    """A virtual-time loop that the driver's clock follows."""
    loop = VirtualTimeLoop()
    monkeypatch.setattr(
        "pytest_llmbench.workload.traffic.time", SimpleNamespace(perf_counter=loop.time)
    )
    try:
        yield loop
    finally:
        loop.close()


def test_driver_launches_at_offsets(virtual_loop: VirtualTimeLoop) -> None:
    offsets = (0.0, 0.1, 0.25, 0.3)
    loop = virtual_loop
    send = Recorder(work_s=1.0, clock=loop.time)  # each outlasts the gaps: none waits for another
    out = loop.run_until_complete(run_schedule(Schedule(arrival_offsets_s=offsets), reqs(4), send))
    assert [c.request_id for c in out] == ["q0", "q1", "q2", "q3"]
    assert [c.start_s for c in out] == pytest.approx(offsets)  # the driver's start is time 0
    assert send.peak == 4


def test_a_requests_task_is_created_when_it_is_due_not_before(
    virtual_loop: VirtualTimeLoop,
) -> None:
    """20 requests a minute apart (virtual time): while the first is sent, the other 19 exist
    only as data, so a long schedule does not start with thousands of tasks to step."""
    loop = virtual_loop
    tasks_at_send: list[int] = []

    async def send(request: GenerationRequest) -> Completion:
        tasks_at_send.append(len(asyncio.all_tasks()))
        return Completion(request.request_id, 2, 2, loop.time(), loop.time())

    offsets = tuple(60.0 * i for i in range(20))
    out = loop.run_until_complete(run_schedule(Schedule(arrival_offsets_s=offsets), reqs(20), send))
    assert [c.start_s for c in out] == pytest.approx(offsets)
    assert max(tasks_at_send) == 2  # the run itself and the request being sent


def test_unsorted_offsets_are_sent_in_time_order_and_returned_in_request_order(
    virtual_loop: VirtualTimeLoop,
) -> None:
    loop = virtual_loop
    send = Recorder(work_s=0.01, clock=loop.time)
    offsets = (0.3, 0.0, 0.2, 0.1)
    out = loop.run_until_complete(run_schedule(Schedule(arrival_offsets_s=offsets), reqs(4), send))
    assert [c.request_id for c in out] == ["q0", "q1", "q2", "q3"]
    assert [c.start_s for c in out] == pytest.approx(offsets)
    assert [c.scheduled_s for c in out] == pytest.approx(offsets)


def test_under_a_cap_tasks_never_outnumber_the_slots() -> None:
    most: list[int] = []

    async def send(request: GenerationRequest) -> Completion:
        most.append(len(asyncio.all_tasks()))
        await asyncio.sleep(0)
        return Completion(request.request_id, 2, 2, 0.0, 0.0)

    asyncio.run(run_schedule(Schedule(max_concurrency=3), reqs(200), send))
    assert max(most) <= 1 + 3  # the run and one task per slot


def test_driver_caps_concurrency() -> None:
    send = Recorder(work_s=0.03)
    asyncio.run(run_schedule(Schedule(max_concurrency=3), reqs(10), send))
    assert send.peak == 3
    send = Recorder(work_s=0.03)
    asyncio.run(run_schedule(Schedule(), reqs(10), send))
    assert send.peak == 10  # offline: all at once


def test_driver_turns_exceptions_into_failed_completions() -> None:
    send = Recorder(work_s=0.01, fail={"q1"})
    out = asyncio.run(run_schedule(Schedule(), reqs(3), send))
    assert [c.error for c in out] == [None, "ConnectionError: boom", None]
    assert out[1].output_tokens == 0 and out[1].end_s >= out[1].start_s


def test_driver_refuses_a_schedule_shorter_than_the_requests() -> None:
    with pytest.raises(ValueError, match="2 arrival offsets for 3 requests"):
        asyncio.run(run_schedule(Schedule(arrival_offsets_s=(0.0, 0.1)), reqs(3), Recorder()))


def test_driver_refuses_a_schedule_longer_than_the_requests() -> None:
    send = Recorder()
    with pytest.raises(ValueError, match="3 arrival offsets for 2 requests"):
        asyncio.run(run_schedule(Schedule(arrival_offsets_s=(0.0, 0.1, 0.2)), reqs(2), send))
    assert send.peak == 0  # nothing was sent
