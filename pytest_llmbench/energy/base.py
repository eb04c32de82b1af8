"""What every energy meter returns, and the meter protocol the runner drives.

Energy is measured, never invented: a meter that cannot read anything is an
:class:`UnavailableMeter` whose reason travels into every result instead of a number.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class DeviceInfo:
    """One measured device: a GPU (index = CUDA ordinal) or a RAPL domain."""

    index: int
    name: str
    uuid: str = ""


@dataclass(frozen=True)
class EnergyReading:
    """Energy over one window. Joules; seconds; watts."""

    method: str  # "nvml-counter", "nvml-power", "rapl"
    window_s: float
    energy_j: float  # total over all devices
    per_device_j: dict[str, float]  # device uuid (or domain name) -> joules
    devices: tuple[DeviceInfo, ...]
    updates: int  # counter changes or power samples seen inside the window
    idle_power_w: float | None = None  # sum over devices; None when no idle baseline was taken
    short_window: bool = False  # fewer counter updates than the meter's minimum
    sample_interval_s: float | None = None  # power sampling only

    @property
    def dynamic_energy_j(self) -> float | None:
        """Energy above idle: total minus idle power x window (None without a baseline)."""
        if self.idle_power_w is None:
            return None
        return self.energy_j - self.idle_power_w * self.window_s

    @property
    def average_power_w(self) -> float:
        return self.energy_j / self.window_s if self.window_s > 0 else 0.0


@dataclass(frozen=True)
class EnergyUnavailable:
    """No number: why energy could not be measured."""

    reason: str
    method: str = "none"


@runtime_checkable
class EnergyWindow(Protocol):
    """A running measurement; ``stop()`` ends it."""

    def elapsed_s(self) -> float: ...

    def updates(self) -> int:
        """Counter updates (or samples) seen so far: lets the runner extend short windows."""
        ...

    def stop(self) -> EnergyReading | EnergyUnavailable: ...


@runtime_checkable
class EnergyMeter(Protocol):
    """Measures the energy of a set of devices over windows of time."""

    method: str
    min_updates: int  # fewer counter updates than this make a window too short

    def start(self) -> EnergyWindow: ...

    def describe(self) -> str:
        """One line for the terminal summary: method, devices, idle baseline."""
        ...


@dataclass
class _UnavailableWindow:
    reason: str
    started_s: float = field(default_factory=time.perf_counter)

    def elapsed_s(self) -> float:
        return time.perf_counter() - self.started_s

    def updates(self) -> int:
        return 0

    def stop(self) -> EnergyUnavailable:
        return EnergyUnavailable(self.reason)


@dataclass(frozen=True)
class UnavailableMeter:
    """The meter used when nothing is readable; every window reports the reason."""

    reason: str
    method: str = "none"
    min_updates: int = 0

    def start(self) -> EnergyWindow:
        return _UnavailableWindow(self.reason)

    def describe(self) -> str:
        return f"energy: unavailable ({self.reason})"
