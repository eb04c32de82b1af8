"""The object behind the ``energy`` fixture, used directly."""

from __future__ import annotations

import threading
import time

import pytest

from pytest_llmbench.energy.base import EnergyReading, EnergyUnavailable, UnavailableMeter
from pytest_llmbench.energy.counter import CounterMeter
from pytest_llmbench.energy.gpus import resolve_gpus
from pytest_llmbench.energy.nvml import METHOD, NvmlEnergyChannel
from pytest_llmbench.energy.probe import EnergyProbe, EnergyUnavailableError

from .fake_nvml import FakeClock, FakeGpu, FakeNvml, uuid


class Busy:
    """One GPU at ``power_w``; ``work(dt)`` advances the fake clock and the counter together."""

    def __init__(self, power_w: float = 400.0, min_updates: int = 3) -> None:
        self.clock = FakeClock()
        self.energy_mj = 0.0
        self.power_w = power_w
        self.gpu = FakeGpu(uuid(0), energy_mj=lambda: round(self.energy_mj))
        nvml = FakeNvml([self.gpu])
        channels = [NvmlEnergyChannel(nvml, g) for g in resolve_gpus(nvml, [0], environ={})]
        self.meter = CounterMeter(
            METHOD, channels, min_updates=min_updates, interval_s=0.002, clock=self.clock
        )

    def work(self, dt_s: float = 0.1) -> None:
        self.energy_mj += self.power_w * dt_s * 1e3
        self.clock.advance(dt_s)

    def seen(self) -> None:
        """Wait until the running window's poller has read the counter since the last ``work``:
        a read that began after this call has finished once a second one begins."""
        target = self.gpu.reads + 2
        deadline = time.monotonic() + 60
        while self.gpu.reads < target:
            assert time.monotonic() < deadline, "the poller stopped reading the counter"
            time.sleep(0.001)


def test_measure_gives_joules_of_the_block() -> None:
    busy = Busy()
    probe = EnergyProbe(busy.meter)
    with probe.measure() as m:
        busy.work(0.5)
    assert m.available and m.reason is None
    assert isinstance(m.reading, EnergyReading)
    assert m.joules == pytest.approx(200.0)
    assert m.window_s == pytest.approx(0.5)
    assert m.dynamic_joules is None  # no idle baseline was taken


def test_reading_inside_the_block_is_an_error() -> None:
    probe = EnergyProbe(Busy().meter)
    with probe.measure() as m, pytest.raises(RuntimeError, match="still running"):
        _ = m.reading


def test_unavailable_meter_raises_its_reason_on_joules() -> None:
    probe = EnergyProbe(UnavailableMeter("auto: no meter readable: NVML: no driver"))
    assert not probe.available
    with probe.measure() as m:
        pass
    assert not m.available
    assert m.reason == probe.reason == "auto: no meter readable: NVML: no driver"
    assert isinstance(m.reading, EnergyUnavailable)
    with pytest.raises(EnergyUnavailableError) as caught:
        _ = m.joules
    assert caught.value.reason == "auto: no meter readable: NVML: no driver"


def test_require_skips_with_the_reason_only_when_unavailable() -> None:
    EnergyProbe(Busy().meter).require()  # does not skip
    probe = EnergyProbe(UnavailableMeter("energy measurement is off (--llm-energy none)"))
    with pytest.raises(pytest.skip.Exception, match=r"energy unavailable: .*--llm-energy none"):
        probe.require()


def test_window_is_closed_when_the_block_raises() -> None:
    busy = Busy()
    probe = EnergyProbe(busy.meter)
    with pytest.raises(ZeroDivisionError), probe.measure() as m:
        busy.work()
        _ = 1 / 0
    assert m.joules == pytest.approx(40.0)
    assert not [t for t in threading.enumerate() if t.name.startswith("llmbench-")]


def test_repeat_runs_until_the_window_is_long_enough() -> None:
    """Each call is one counter update of 40 J; min 3 updates -> 3 calls in one window."""
    busy = Busy(min_updates=3)
    probe = EnergyProbe(busy.meter)

    def step() -> None:
        busy.work(0.1)
        busy.seen()  # the poller sees the update before the probe asks, however busy the machine

    m = probe.repeat(step)
    assert m.iterations == 3
    assert m.joules == pytest.approx(120.0)
    assert m.joules_per_iteration == pytest.approx(40.0)
    assert not m.short_window


def test_repeat_stops_at_max_iterations_and_flags_the_short_window() -> None:
    busy = Busy(min_updates=1000)
    m = EnergyProbe(busy.meter).repeat(busy.work, max_iterations=4)
    assert m.iterations == 4
    assert m.short_window
    assert m.joules == pytest.approx(160.0)
