"""RAPL through a fake /sys/class/powercap: domains, wrap-around, permissions."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_llmbench.energy.base import EnergyReading, NotReadable
from pytest_llmbench.energy.counter import CounterMeter, CounterWindow, counter_delta
from pytest_llmbench.energy.rapl import rapl_channels, rapl_meter

from .fake_nvml import FakeClock

MAX_UJ = 262_143_328_850  # a real package max_energy_range_uj


def zone(root: Path, name: str, label: str, energy_uj: int, max_uj: int = MAX_UJ) -> Path:
    path = root / name
    path.mkdir()
    (path / "name").write_text(f"{label}\n")
    (path / "energy_uj").write_text(f"{energy_uj}\n")
    (path / "max_energy_range_uj").write_text(f"{max_uj}\n")
    return path


@pytest.fixture
def powercap(tmp_path: Path) -> Path:
    """Two sockets with core and dram subdomains, and a psys zone: all flat, as sysfs links them."""
    zone(tmp_path, "intel-rapl:0", "package-0", 1_000_000)
    zone(tmp_path, "intel-rapl:0:0", "core", 5)
    zone(tmp_path, "intel-rapl:0:1", "dram", 2_000_000)
    zone(tmp_path, "intel-rapl:1", "package-1", 3_000_000)
    zone(tmp_path, "intel-rapl:1:0", "dram", 4_000_000)
    zone(tmp_path, "intel-rapl:2", "psys", 9)
    (tmp_path / "dtpm").mkdir()  # other powercap control types are ignored
    return tmp_path


def set_uj(path: Path, value: int) -> None:
    (path / "energy_uj").write_text(f"{value}\n")


def manual(root: Path, clock: FakeClock, min_updates: int = 20) -> CounterMeter:
    return rapl_meter(root, min_updates=min_updates, clock=clock, background=False)


def test_package_and_dram_domains_are_counted_core_and_psys_not(powercap: Path) -> None:
    labels = [c.device.name for c in rapl_channels(powercap)]
    assert labels == ["package-0", "package-0/dram", "package-1", "package-1/dram"]
    assert all(c.wrap == MAX_UJ + 1 for c in rapl_channels(powercap))


def test_window_sums_the_domains_in_joules(powercap: Path) -> None:
    clock = FakeClock()
    meter = manual(powercap, clock)
    window = meter.start()
    assert isinstance(window, CounterWindow)
    clock.advance(2.0)
    set_uj(powercap / "intel-rapl:0", 1_000_000 + 150_000_000)  # 150 J
    set_uj(powercap / "intel-rapl:0:1", 2_000_000 + 20_000_000)  # 20 J
    set_uj(powercap / "intel-rapl:0:0", 999_999_999)  # core: inside the package, not added
    reading = window.stop()
    assert isinstance(reading, EnergyReading)
    assert reading.energy_j == pytest.approx(170.0)
    assert reading.window_s == pytest.approx(2.0)
    assert reading.method == "rapl"


def test_wrap_around_is_unwrapped(powercap: Path) -> None:
    package = powercap / "intel-rapl:0"
    set_uj(package, MAX_UJ - 1_000_000)
    clock = FakeClock()
    window = manual(powercap, clock).start()
    assert isinstance(window, CounterWindow)
    set_uj(package, 4_000_000)  # 1 J to the top, wrap, then 4 J more (+1 uJ at the wrap itself)
    reading = window.stop()
    assert isinstance(reading, EnergyReading)
    assert reading.energy_j == pytest.approx(5.0, abs=1e-5)


def test_several_wraps_in_a_long_window_are_all_counted(powercap: Path) -> None:
    package = powercap / "intel-rapl:0"
    clock = FakeClock()
    window = manual(powercap, clock).start()
    assert isinstance(window, CounterWindow)
    value = 1_000_000
    for _ in range(7):  # 7 polls of 0.4 x range each: the counter wraps twice
        value = (value + 4 * MAX_UJ // 10) % (MAX_UJ + 1)
        set_uj(package, value)
        window.poll()
    reading = window.stop()
    assert isinstance(reading, EnergyReading)
    assert reading.per_device_j[window._meter.devices[0].uuid] == pytest.approx(
        7 * (4 * MAX_UJ // 10) * 1e-6
    )


@given(
    st.integers(min_value=1, max_value=2**40),
    st.data(),
)
def test_counter_delta_recovers_any_advance_below_the_range(wrap: int, data: st.DataObject) -> None:
    start = data.draw(st.integers(min_value=0, max_value=wrap - 1))
    advance = data.draw(st.integers(min_value=0, max_value=wrap - 1))
    assert counter_delta(start, (start + advance) % wrap, wrap) == advance


@given(st.integers(min_value=0, max_value=2**63), st.integers(min_value=0, max_value=2**20))
def test_counter_delta_without_wrap_is_the_difference(start: int, advance: int) -> None:
    assert counter_delta(start, start + advance, None) == advance


def test_permission_denied_names_the_file(powercap: Path) -> None:
    def root_only(path: Path) -> str:
        if path.name == "energy_uj":
            raise PermissionError(13, "Permission denied", str(path))
        return path.read_text()

    with pytest.raises(NotReadable) as caught:
        rapl_meter(powercap, read_text=root_only)
    assert caught.value.reason.startswith(
        f"permission denied on {powercap / 'intel-rapl:0' / 'energy_uj'}"
    )
    assert "CVE-2020-8694" in caught.value.reason


def test_no_zones_is_not_readable(tmp_path: Path) -> None:
    with pytest.raises(NotReadable, match="no intel-rapl zones under"):
        rapl_meter(tmp_path / "missing")


def test_garbage_in_energy_file_is_not_readable(powercap: Path) -> None:
    (powercap / "intel-rapl:1" / "energy_uj").write_text("n/a\n")
    with pytest.raises(NotReadable, match="not microjoules"):
        rapl_meter(powercap)


def test_minimum_window_is_two_seconds_of_polls(powercap: Path) -> None:
    assert rapl_meter(powercap, poll_interval_s=0.1).min_updates == 20
    assert rapl_meter(powercap, poll_interval_s=0.5).min_updates == 4
