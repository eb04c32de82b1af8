"""What every energy meter returns, and the meter protocol the runner drives.

Energy is measured, never invented: a meter that cannot read anything is an
:class:`UnavailableMeter` whose reason travels into every result instead of a number.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from pytest_llmbench.energy.trace import MAX_TRACE_POINTS, TracePoints
from pytest_llmbench.plain import as_text, plain_float, plain_int, plain_str


@dataclass(frozen=True)
class DeviceInfo:
    """One measured device: a GPU (index = CUDA ordinal) or a RAPL domain."""

    index: int
    name: str
    uuid: str = ""

    def __post_init__(self) -> None:
        # Names and ordinals come from drivers (NVML, sysfs): keep builtin types (plain.py).
        object.__setattr__(self, "index", plain_int(self.index, "device index"))
        object.__setattr__(self, "name", as_text(self.name))
        object.__setattr__(self, "uuid", as_text(self.uuid))


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
    update_interval_s: float | None = None  # median time between counter updates seen (cadence)
    # Power over the window (energy.trace): device uuid -> (seconds since the window opened,
    # watts), at most trace.MAX_TRACE_POINTS points. A meter that keeps a trace gives every
    # device an entry (empty: too few updates to say); {} means no trace was kept.
    power_trace: dict[str, TracePoints] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Readings travel inside results (json, xdist): builtin numbers only, see plain.py.
        set_ = object.__setattr__
        set_(self, "method", plain_str(self.method, "energy method"))
        set_(self, "window_s", plain_float(self.window_s, "energy window_s"))
        set_(self, "energy_j", plain_float(self.energy_j, "energy_j"))
        set_(
            self,
            "per_device_j",
            {as_text(k): plain_float(v, f"per_device_j.{k}") for k, v in self.per_device_j.items()},
        )
        set_(self, "devices", tuple(self.devices))
        set_(self, "updates", plain_int(self.updates, "energy updates"))
        set_(self, "short_window", bool(self.short_window))
        set_(self, "power_trace", _plain_trace(self.power_trace))
        for name in ("idle_power_w", "sample_interval_s", "update_interval_s"):
            value = getattr(self, name)
            if value is not None:
                set_(self, name, plain_float(value, name))

    @property
    def dynamic_energy_j(self) -> float | None:
        """Energy above idle: total minus idle power x window (None without a baseline)."""
        if self.idle_power_w is None:
            return None
        return self.energy_j - self.idle_power_w * self.window_s

    @property
    def average_power_w(self) -> float:
        return self.energy_j / self.window_s if self.window_s > 0 else 0.0


def _plain_trace(trace: dict[str, TracePoints]) -> dict[str, TracePoints]:
    """``trace`` with builtin floats, checked: finite numbers, the bound on points."""
    out = {}
    for device, points in trace.items():
        where = f"energy.power_trace.{device}"
        plain = tuple(
            (plain_float(t, f"{where} time"), plain_float(w, f"{where} watts")) for t, w in points
        )
        if len(plain) > MAX_TRACE_POINTS:
            raise ValueError(f"{where}: {len(plain)} points, at most {MAX_TRACE_POINTS}")
        if not all(math.isfinite(t) and math.isfinite(w) for t, w in plain):
            raise ValueError(f"{where}: times and watts must be finite")
        out[as_text(device)] = plain
    return out


# The minimum-window rule: a window needs this many counter updates (NVML: ~10/s, so ~2 s).
DEFAULT_MIN_UPDATES = 20
# Meters whose updates are polls or samples (power sampling, RAPL) need this much time instead.
MIN_WINDOW_S = 2.0


def min_polls(interval_s: float) -> int:
    """Polls (or samples) at ``interval_s`` that make a window of MIN_WINDOW_S."""
    return max(2, math.ceil(MIN_WINDOW_S / interval_s))


class NotReadable(Exception):
    """Raised while building or reading a meter; the message is the reason users see."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True)
class IdleBaseline:
    """Idle power per device, keyed like ``EnergyReading.per_device_j``. Watts."""

    per_device_w: dict[str, float]
    source: str  # how it was obtained, e.g. "measured over 5.0 s" or "cache ~/x.json, age 2.1 h"

    def total_w(self, devices: tuple[DeviceInfo, ...]) -> float | None:
        """Idle watts summed over ``devices``; None when one of them has no baseline."""
        try:
            return sum(self.per_device_w[device.uuid] for device in devices)
        except KeyError:
            return None


def describe_meter(
    method: str,
    devices: tuple[DeviceInfo, ...],
    min_updates: int,
    idle: IdleBaseline | None,
    detail: str = "",
) -> str:
    """The one-line summary every meter's ``describe()`` gives."""
    names = "; ".join(f"{d.name} {d.uuid}".strip() for d in devices)
    idle_w = idle.total_w(devices) if idle else None
    idle_text = f"idle {idle_w:.1f} W ({idle.source})" if idle and idle_w is not None else "no idle"
    extra = f", {detail}" if detail else ""
    return (
        f"energy: {method} on {len(devices)} device(s) [{names}]{extra}, "
        f"min {min_updates} updates/window, {idle_text}"
    )


@dataclass(frozen=True)
class EnergyUnavailable:
    """No number: why energy could not be measured."""

    reason: str
    method: str = "none"

    def __post_init__(self) -> None:
        object.__setattr__(self, "reason", as_text(self.reason))
        object.__setattr__(self, "method", as_text(self.method))


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

    # Read-only properties, so that frozen dataclasses (UnavailableMeter) satisfy the protocol.
    @property
    def method(self) -> str: ...

    @property
    def min_updates(self) -> int:
        """Fewer counter updates than this make a window too short."""
        ...

    def start(self) -> EnergyWindow: ...

    def describe(self) -> str:
        """One line for the terminal summary: method, devices, idle baseline."""
        ...


@runtime_checkable
class DeviceMeter(EnergyMeter, Protocol):
    """A meter that reads real devices: it carries their idle baseline and holds a library open."""

    idle: IdleBaseline | None  # set by idle.establish_idle; readings then give dynamic joules

    @property
    def devices(self) -> tuple[DeviceInfo, ...]: ...

    def close(self) -> None:
        """Release what the meter holds (NVML); call once at session end."""
        ...


@dataclass
class _UnavailableWindow:
    reason: str
    started_s: float = field(default_factory=time.perf_counter)

    def elapsed_s(self) -> float:
        return time.perf_counter() - self.started_s

    def updates(self) -> int:
        """As many as any meter asks for: no update will ever come, so the runner must not
        repeat the workload waiting for one (e.g. a GPU lost before the window opened)."""
        return sys.maxsize

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

    def close(self) -> None:
        """Nothing to release; here so the session can close any meter."""
