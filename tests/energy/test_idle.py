"""The idle baseline: measured with the meter, cached by device UUID, expiring with age."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from pytest_llmbench.energy.base import EnergyReading, EnergyUnavailable, IdleBaseline
from pytest_llmbench.energy.counter import CounterMeter, CounterWindow
from pytest_llmbench.energy.gpus import resolve_gpus
from pytest_llmbench.energy.idle import establish_idle, load_idle, measure_idle
from pytest_llmbench.energy.nvml import METHOD, NvmlEnergyChannel

from .fake_nvml import FakeClock, FakeGpu, FakeNvml, uuid

NOW = 1_700_000_000.0


class Gpus:
    """Two GPUs whose counters follow a settable power (watts) on a fake clock."""

    def __init__(self, idle_w: tuple[float, float] = (60.0, 90.0)) -> None:
        self.clock = FakeClock()
        self.power_w = list(idle_w)
        self.energy_mj = [0.0, 0.0]
        fakes = [FakeGpu(uuid(n), energy_mj=self._reader(n)) for n in range(2)]
        self.nvml = FakeNvml(fakes)
        channels = [
            NvmlEnergyChannel(self.nvml, g) for g in resolve_gpus(self.nvml, [0, 1], environ={})
        ]
        self.meter = CounterMeter(
            METHOD, channels, min_updates=1, interval_s=0.1, clock=self.clock, background=False
        )
        self.slept: list[float] = []

    def _reader(self, n: int) -> Callable[[], int]:
        return lambda: round(self.energy_mj[n])

    def run(self, dt_s: float) -> None:
        for n, power_w in enumerate(self.power_w):
            self.energy_mj[n] += power_w * dt_s * 1e3
        self.clock.advance(dt_s)

    def sleep(self, dt_s: float) -> None:
        self.slept.append(dt_s)
        self.run(dt_s)


def test_idle_is_measured_per_device_in_watts() -> None:
    gpus = Gpus()
    measured = measure_idle(gpus.meter, 5.0, sleep=gpus.sleep)
    assert not isinstance(measured, EnergyUnavailable)
    baseline, reading = measured
    assert baseline.per_device_w == {uuid(0): pytest.approx(60.0), uuid(1): pytest.approx(90.0)}
    assert baseline.total_w(gpus.meter.devices) == pytest.approx(150.0)
    assert "measured over 5.0 s" in baseline.source
    assert gpus.slept == [5.0]


def test_readings_carry_total_and_dynamic_energy() -> None:
    gpus = Gpus()
    establish_idle(gpus.meter, duration_s=5.0, sleep=gpus.sleep)
    gpus.power_w = [300.0, 250.0]
    window = gpus.meter.start()
    assert isinstance(window, CounterWindow)
    gpus.run(2.0)
    reading = window.stop()
    assert isinstance(reading, EnergyReading)
    assert reading.energy_j == pytest.approx(1100.0)
    assert reading.idle_power_w == pytest.approx(150.0)
    assert reading.dynamic_energy_j == pytest.approx(1100.0 - 150.0 * 2.0)
    assert "idle 150.0 W" in gpus.meter.describe()


def test_cache_is_written_then_used_while_fresh(tmp_path: Path) -> None:
    cache = tmp_path / "idle.json"
    first = Gpus()
    establish_idle(first.meter, cache_path=cache, sleep=first.sleep, now=NOW)
    stored = json.loads(cache.read_text())["devices"]
    assert stored[uuid(0)]["idle_w"] == pytest.approx(60.0)
    assert stored[uuid(1)]["method"] == "nvml-counter"

    second = Gpus(idle_w=(999.0, 999.0))  # would measure differently: the cache must win
    baseline = establish_idle(
        second.meter, cache_path=cache, max_age_s=3600, sleep=second.sleep, now=NOW + 1800
    )
    assert isinstance(baseline, IdleBaseline)
    assert second.slept == []
    assert baseline.per_device_w[uuid(1)] == pytest.approx(90.0)
    assert baseline.source == f"cache {cache}, age 30 min"
    assert second.meter.idle is baseline


def test_expired_cache_is_measured_again(tmp_path: Path) -> None:
    cache = tmp_path / "idle.json"
    first = Gpus()
    establish_idle(first.meter, cache_path=cache, sleep=first.sleep, now=NOW)
    assert load_idle(cache, first.meter.devices, max_age_s=3600, now=NOW + 3601) is None

    second = Gpus(idle_w=(70.0, 80.0))
    baseline = establish_idle(
        second.meter, cache_path=cache, max_age_s=3600, sleep=second.sleep, now=NOW + 3601
    )
    assert isinstance(baseline, IdleBaseline)
    assert second.slept == [5.0]
    assert baseline.per_device_w[uuid(0)] == pytest.approx(70.0)
    assert json.loads(cache.read_text())["devices"][uuid(0)]["measured_at"] == NOW + 3601


def test_cache_missing_a_device_or_from_the_future_is_not_used(tmp_path: Path) -> None:
    cache = tmp_path / "idle.json"
    gpus = Gpus()
    entry = {"idle_w": 50.0, "measured_at": NOW, "window_s": 5.0, "method": "nvml-counter"}
    cache.write_text(json.dumps({"version": 1, "devices": {uuid(0): entry}}))
    assert load_idle(cache, gpus.meter.devices, now=NOW) is None
    cache.write_text(json.dumps({"version": 1, "devices": {uuid(0): entry, uuid(1): entry}}))
    assert load_idle(cache, gpus.meter.devices, now=NOW) is not None
    assert load_idle(cache, gpus.meter.devices, now=NOW - 10) is None  # clock went back


def test_corrupt_cache_is_measured_and_rewritten(tmp_path: Path) -> None:
    cache = tmp_path / "idle.json"
    cache.write_text("{not json")
    gpus = Gpus()
    assert isinstance(establish_idle(gpus.meter, cache_path=cache, sleep=gpus.sleep), IdleBaseline)
    assert gpus.slept == [5.0]
    assert set(json.loads(cache.read_text())["devices"]) == {uuid(0), uuid(1)}


def test_other_devices_stay_in_the_cache(tmp_path: Path) -> None:
    cache = tmp_path / "idle.json"
    other = {"idle_w": 40.0, "measured_at": NOW, "window_s": 5.0, "method": "rapl"}
    cache.write_text(json.dumps({"version": 1, "devices": {"rapl:host:intel-rapl:0": other}}))
    gpus = Gpus()
    establish_idle(gpus.meter, cache_path=cache, sleep=gpus.sleep, now=NOW)
    assert set(json.loads(cache.read_text())["devices"]) == {
        "rapl:host:intel-rapl:0",
        uuid(0),
        uuid(1),
    }


def test_unreadable_meter_gives_no_baseline() -> None:
    from pytest_llmbench.energy.base import UnavailableMeter

    result = measure_idle(UnavailableMeter("no GPU"), 5.0, sleep=lambda s: None)
    assert isinstance(result, EnergyUnavailable) and result.reason == "no GPU"


def test_baseline_total_covers_only_the_meters_devices() -> None:
    """One session-wide baseline serves engines that use a subset of the GPUs."""
    from pytest_llmbench.energy.base import DeviceInfo

    baseline = IdleBaseline({uuid(0): 60.0, uuid(1): 90.0, uuid(2): 50.0}, "measured")
    tp2 = (DeviceInfo(0, "H100", uuid(2)), DeviceInfo(1, "H100", uuid(0)))
    assert baseline.total_w(tp2) == pytest.approx(110.0)
    assert baseline.total_w((DeviceInfo(0, "H100", uuid(7)),)) is None
