"""Power over a window: bounded traces from power samples and from energy-counter updates, and
the traces the meters put in their readings (fake NVML, fake powercap)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_llmbench.energy.base import DeviceInfo, EnergyReading
from pytest_llmbench.energy.counter import CounterWindow
from pytest_llmbench.energy.trace import MAX_TRACE_POINTS, counter_trace, sampled_trace

from .fake_nvml import FakeClock, FakeGpu, FakeNvml, uuid
from .test_nvml import Counter, counter_meter, window
from .test_rapl import manual, set_uj, zone
from .test_sampling import run, sampled_meter

# Points are rounded to 1 mW and 0.1 ms (trace.POWER_DIGITS, TIME_DIGITS).
W_TOL = 1e-3 / 2 + 1e-9
S_TOL = 1e-4 / 2 + 1e-9

steps = st.lists(st.floats(min_value=1e-3, max_value=0.5), min_size=1, max_size=400)


@given(steps, st.floats(min_value=0.0, max_value=700.0), st.integers(min_value=1, max_value=64))
def test_counter_trace_of_constant_power_is_that_power_with_bounded_points(
    dts: list[float], watts: float, most: int
) -> None:
    times = [0.0]
    for dt in dts:
        times.append(times[-1] + dt)
    joules = [watts * dt for dt in [123.0, *dts]]  # the first update's energy is not used
    trace = counter_trace(times, joules, start_s=0.0, max_points=most)
    assert len(trace) == min(len(dts), most)
    assert all(w == pytest.approx(watts, abs=W_TOL) for _, w in trace)
    assert all(0.0 < t < times[-1] + S_TOL for t, _ in trace)


def test_counter_trace_leaves_out_the_energy_before_the_first_update() -> None:
    # updates at 0.1 s intervals; the first one (999 J) covers time before the window
    trace = counter_trace([10.1, 10.2, 10.3], [999.0, 20.0, 30.0], start_s=10.0)
    assert trace == ((0.15, 200.0), (0.25, 300.0))


def test_counter_trace_of_fewer_than_two_updates_is_empty() -> None:
    assert counter_trace([], [], start_s=0.0) == ()
    assert counter_trace([1.0], [5.0], start_s=0.0) == ()


def test_counter_trace_downsampling_keeps_the_energy_of_each_run() -> None:
    # 128 intervals of 0.1 s alternating 100 W and 300 W: pairs average to 200 W over 0.2 s
    times = [i * 0.1 for i in range(129)]
    joules = [0.0] + [10.0 if i % 2 else 30.0 for i in range(128)]
    trace = counter_trace(times, joules, start_s=0.0)
    assert len(trace) == MAX_TRACE_POINTS
    assert all(w == pytest.approx(200.0) for _, w in trace)
    assert trace[0][0] == pytest.approx(0.1) and trace[-1][0] == pytest.approx(12.7)


@given(st.lists(st.floats(min_value=0, max_value=700), max_size=500), st.integers(1, 64))
def test_sampled_trace_is_bounded_and_within_the_samples(power: list[float], most: int) -> None:
    times = [i * 0.05 for i in range(len(power))]
    trace = sampled_trace(times, power, start_s=0.0, max_points=most)
    assert len(trace) == min(len(power), most)
    if power:
        assert min(power) - W_TOL <= min(w for _, w in trace)
        assert max(w for _, w in trace) <= max(power) + W_TOL
        assert [t for t, _ in trace] == sorted(t for t, _ in trace)


def test_few_samples_are_kept_as_read_relative_to_the_window_start() -> None:
    trace = sampled_trace([5.0, 5.5, 6.0], [100.0, 150.25, 300.0], start_s=5.0)
    assert trace == ((0.0, 100.0), (0.5, 150.25), (1.0, 300.0))


def test_a_trace_needs_one_time_per_value_and_room_for_a_point() -> None:
    with pytest.raises(ValueError, match="one timestamp"):
        sampled_trace([0.0, 1.0], [1.0], start_s=0.0)
    with pytest.raises(ValueError, match="one timestamp"):
        counter_trace([0.0], [], start_s=0.0)
    with pytest.raises(ValueError, match="max_points"):
        sampled_trace([0.0], [1.0], start_s=0.0, max_points=0)


# -- the meters' readings --------------------------------------------------------------------------
def test_a_few_power_samples_are_kept_as_they_were_read() -> None:
    clock = FakeClock(start_s=10.0)
    power = {0.0: 100.0, 0.5: 150.0, 1.0: 300.0, 1.5: 250.0}
    meter = sampled_meter(lambda t: power[round(t - 10.0, 3)], clock)
    reading = run(meter, clock, [0.5, 0.5, 0.5])
    assert reading.power_trace == {
        uuid(0): ((0.0, 100.0), (0.5, 150.0), (1.0, 300.0), (1.5, 250.0))
    }


def test_a_long_sampled_window_is_bounded_and_each_point_is_a_mean_of_samples() -> None:
    clock = FakeClock(start_s=0.0)
    meter = sampled_meter(lambda t: 200.0 if t < 5.0 else 400.0, clock, gpus=2)
    reading = run(meter, clock, [0.01] * 1000)  # 1001 samples over 10 s
    assert set(reading.power_trace) == {uuid(0), uuid(1)}  # one line per device, never summed
    for points in reading.power_trace.values():
        assert len(points) == MAX_TRACE_POINTS
        assert points[0][0] == pytest.approx(0.07)  # mean time of the first 15 samples
        assert all(200.0 <= w <= 400.0 for _, w in points)
        assert points[0][1] == 200.0 and points[-1][1] == 400.0
        assert [t for t, _ in points] == sorted(t for t, _ in points)


def test_nvml_counter_updates_give_the_power_the_device_integrated() -> None:
    counter, clock = Counter(), FakeClock(start_s=50.0)
    nvml = FakeNvml([FakeGpu(uuid(0), energy_mj=counter)])
    w = window(counter_meter(nvml, [0], clock, min_updates=3))
    for watts in (999, 200, 300, 400):  # 100 ms per update; the first covers time before the window
        clock.advance(0.1)
        counter.add(watts * 100)
        w.poll()
    reading = w.stop()
    assert isinstance(reading, EnergyReading)
    assert reading.power_trace == {uuid(0): ((0.15, 200.0), (0.25, 300.0), (0.35, 400.0))}


def test_each_gpu_of_a_counter_window_has_its_own_trace() -> None:
    a, b, clock = Counter(), Counter(), FakeClock()
    nvml = FakeNvml([FakeGpu(uuid(0), energy_mj=a), FakeGpu(uuid(1), energy_mj=b)])
    w = window(counter_meter(nvml, [0, 1], clock, min_updates=3))
    for _ in range(3):
        clock.advance(0.1)
        a.add(10_000)  # 100 W
        b.add(30_000)  # 300 W
        w.poll()
    reading = w.stop()
    assert isinstance(reading, EnergyReading)
    assert [w for _, w in reading.power_trace[uuid(0)]] == [100.0, 100.0]
    assert [w for _, w in reading.power_trace[uuid(1)]] == [300.0, 300.0]


def test_a_counter_window_without_two_updates_has_an_empty_trace() -> None:
    counter, clock = Counter(), FakeClock()
    nvml = FakeNvml([FakeGpu(uuid(0), energy_mj=counter)])
    w = window(counter_meter(nvml, [0], clock, min_updates=1))
    clock.advance(0.1)
    counter.add(5000)
    w.poll()
    clock.advance(0.1)
    w.poll()  # no change: no update, so still only one
    reading = w.stop()
    assert isinstance(reading, EnergyReading)
    assert reading.energy_j == pytest.approx(5.0)
    assert reading.power_trace == {uuid(0): ()}  # the device is there; no point is invented


def test_rapl_windows_trace_the_energy_between_polls(tmp_path: Path) -> None:
    package = zone(tmp_path, "intel-rapl:0", "package-0", 1_000_000)
    clock = FakeClock(start_s=0.0)
    w = manual(tmp_path, clock, min_updates=2).start()
    assert isinstance(w, CounterWindow)
    energy_uj = 1_000_000
    for watts in (80, 60, 90):  # 0.1 s polls
        clock.advance(0.1)
        energy_uj += watts * 100_000
        set_uj(package, energy_uj)
        w.poll()
    reading = w.stop()
    assert isinstance(reading, EnergyReading)
    (points,) = reading.power_trace.values()
    assert points == ((0.15, 60.0), (0.25, 90.0))


def test_a_reading_refuses_an_unbounded_or_non_finite_trace() -> None:
    def reading(points: tuple[tuple[float, float], ...]) -> EnergyReading:
        return EnergyReading(
            "nvml-power", 1.0, 1.0, {"G": 1.0}, (DeviceInfo(0, "gpu", "G"),), 2,
            power_trace={"G": points},
        )  # fmt: skip

    assert reading(((0.0, 1.0),)).power_trace == {"G": ((0.0, 1.0),)}
    with pytest.raises(ValueError, match="energy.power_trace.G: 65 points, at most 64"):
        reading(tuple((float(i), 1.0) for i in range(MAX_TRACE_POINTS + 1)))
    with pytest.raises(ValueError, match="power_trace.G"):
        reading(((0.0, float("nan")),))
    with pytest.raises(TypeError, match="power_trace.G watts"):
        reading(((0.0, "1"),))  # type: ignore[arg-type]
