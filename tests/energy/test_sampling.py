"""NVML power sampling: trapezoid integration on actual timestamps, sample counts, the thread."""

from __future__ import annotations

import math
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_llmbench.energy.base import EnergyReading, EnergyUnavailable, NotReadable
from pytest_llmbench.energy.gpus import resolve_gpus
from pytest_llmbench.energy.sampling import (
    METHOD,
    NvmlPowerChannel,
    PowerMeter,
    PowerWindow,
    nvml_power_meter,
    trapezoid_j,
)

from .fake_nvml import FakeClock, FakeGpu, FakeNvml, NVMLError_GpuIsLost, uuid

steps = st.lists(st.floats(min_value=1e-3, max_value=1.0), min_size=1, max_size=40)


@given(steps, st.floats(min_value=0, max_value=700), st.floats(min_value=-100, max_value=100))
def test_trapezoid_is_exact_for_linear_power(dts: list[float], p0: float, slope: float) -> None:
    times = [0.0]
    for dt in dts:
        times.append(times[-1] + dt)
    power = [p0 + slope * t for t in times]
    end = times[-1]
    assert trapezoid_j(times, power) == pytest.approx(p0 * end + slope * end**2 / 2, abs=1e-6)


@given(steps, steps, st.floats(min_value=0, max_value=700))
def test_trapezoid_is_additive_over_adjacent_windows(
    a: list[float], b: list[float], p: float
) -> None:
    times = [0.0]
    for dt in a + b:
        times.append(times[-1] + dt)
    power = [p + 10 * math.sin(t) for t in times]
    k = len(a)
    whole = trapezoid_j(times, power)
    split = trapezoid_j(times[: k + 1], power[: k + 1]) + trapezoid_j(times[k:], power[k:])
    assert whole == pytest.approx(split)


def test_trapezoid_needs_one_time_per_sample() -> None:
    with pytest.raises(ValueError):
        trapezoid_j([0.0, 1.0], [1.0])


def sampled_meter(
    power_w: object,
    clock: FakeClock,
    interval_s: float = 0.05,
    min_updates: int = 40,
    gpus: int = 1,
) -> PowerMeter:
    def mw() -> int:
        return round(power_w(clock()) * 1e3)  # type: ignore[operator]

    nvml = FakeNvml([FakeGpu(uuid(n), power_mw=mw) for n in range(gpus)])
    channels = [NvmlPowerChannel(nvml, g) for g in resolve_gpus(nvml, range(gpus), environ={})]
    return PowerMeter(
        METHOD,
        channels,
        interval_s=interval_s,
        min_updates=min_updates,
        clock=clock,
        background=False,
    )


def run(meter: PowerMeter, clock: FakeClock, dts: list[float]) -> EnergyReading:
    window = meter.start()
    assert isinstance(window, PowerWindow)
    for dt in dts[:-1]:
        clock.advance(dt)
        window.poll()
    clock.advance(dts[-1])
    reading = window.stop()
    assert isinstance(reading, EnergyReading)
    return reading


def test_integral_of_a_known_curve_on_irregular_samples() -> None:
    """3 s of 200 W + 100 W sine (period 1 s): exactly 600 J. The samples are irregular, so
    an integrator that assumed the nominal interval, or summed rectangles, would miss it."""
    clock = FakeClock(start_s=0.0)
    meter = sampled_meter(lambda t: 200 + 100 * math.sin(2 * math.pi * t), clock)
    dts = [0.01 if i % 3 else 0.04 for i in range(150)]  # sums to 3.0 s
    reading = run(meter, clock, dts)
    assert reading.window_s == pytest.approx(3.0)
    assert reading.energy_j == pytest.approx(600.0, rel=2e-3)
    assert reading.updates == 151  # the start sample plus one per poll (the last at stop)
    assert reading.sample_interval_s == pytest.approx(3.0 / 150)


def test_ramp_is_integrated_on_actual_timestamps() -> None:
    clock = FakeClock(start_s=0.0)
    meter = sampled_meter(lambda t: 100 + 50 * t, clock)  # 0..2 s: 200 J + 100 J
    dts = [0.3, 0.01, 0.01, 0.68, 0.5, 0.5]
    reading = run(meter, clock, dts)
    assert reading.energy_j == pytest.approx(300.0, abs=0.01)


def test_devices_are_integrated_separately_and_summed() -> None:
    clock = FakeClock(start_s=0.0)
    meter = sampled_meter(lambda t: 300.0, clock, gpus=2)
    reading = run(meter, clock, [0.5] * 4)
    assert reading.per_device_j == {uuid(0): pytest.approx(600.0), uuid(1): pytest.approx(600.0)}
    assert reading.energy_j == pytest.approx(1200.0)


def test_min_updates_counts_samples() -> None:
    clock = FakeClock()
    meter = sampled_meter(lambda t: 100.0, clock, min_updates=10)
    assert run(meter, clock, [0.05] * 8).short_window is True  # 9 samples
    assert run(meter, clock, [0.05] * 9).short_window is False  # 10 samples


def test_default_minimum_makes_two_seconds() -> None:
    nvml = FakeNvml([FakeGpu(uuid(0), power_mw=lambda: 70_000)])
    meter = nvml_power_meter(nvml, resolve_gpus(nvml, [0], environ={}), sample_interval_s=0.05)
    assert meter.min_updates == 40
    assert "sampled every 50 ms" in meter.describe()
    meter.close()


def test_background_sampler_takes_samples_at_the_interval_and_joins() -> None:
    nvml = FakeNvml([FakeGpu(uuid(0), power_mw=lambda: 250_000)])
    meter = nvml_power_meter(
        nvml, resolve_gpus(nvml, [0], environ={}), sample_interval_s=0.005, min_updates=10
    )
    window = meter.start()
    deadline = time.monotonic() + 5
    while window.updates() < 10 and time.monotonic() < deadline:
        time.sleep(0.002)
    reading = window.stop()
    assert isinstance(reading, EnergyReading)
    assert reading.updates >= 11 and not reading.short_window
    assert reading.energy_j == pytest.approx(250.0 * reading.window_s, rel=1e-6)
    assert reading.sample_interval_s is not None and reading.sample_interval_s >= 0.004


def test_power_not_supported_is_unavailable_at_start() -> None:
    nvml = FakeNvml([FakeGpu(uuid(0))])
    gpus = resolve_gpus(nvml, [0], environ={})
    with pytest.raises(NotReadable, match="nvmlDeviceGetPowerUsage failed .* Not Supported"):
        nvml_power_meter(nvml, gpus)


def test_read_failure_at_stop_is_unavailable() -> None:
    clock = FakeClock()
    meter = sampled_meter(lambda t: 100.0, clock)
    window = meter.start()
    meter.channels[0].gpu.handle.power_mw = _lost  # type: ignore[attr-defined]
    reading = window.stop()
    assert isinstance(reading, EnergyUnavailable)
    assert "GPU is lost" in reading.reason and reading.method == "nvml-power"


def _lost() -> int:
    raise NVMLError_GpuIsLost()
