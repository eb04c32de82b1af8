"""Power over a window: bounded traces from power samples and from energy-counter updates."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_llmbench.energy.trace import MAX_TRACE_POINTS, counter_trace, sampled_trace

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
