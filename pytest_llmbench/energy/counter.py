"""Windows over cumulative energy counters (NVML total energy, RAPL ``energy_uj``).

Energy is the sum of successive counter deltas: start read, background polls, stop read. Polling
serves four ends: every counter update is seen (``updates()`` drives the minimum-window rule and
the cadence), counters that wrap (RAPL, ~every 10-60 min) are unwrapped however long the window,
a device that disappears mid-window is noticed, and the energy between updates gives the
window's power trace (:func:`~pytest_llmbench.energy.trace.counter_trace`).
"""

from __future__ import annotations

import itertools
import statistics
from typing import Protocol

from pytest_llmbench.energy.base import (
    DeviceInfo,
    EnergyReading,
    EnergyWindow,
    NotReadable,
)
from pytest_llmbench.energy.poller import PolledMeter, PolledWindow
from pytest_llmbench.energy.trace import counter_trace


class CounterChannel(Protocol):
    """One cumulative counter in integer units; ``read`` raises NotReadable on failure."""

    @property
    def device(self) -> DeviceInfo: ...

    @property
    def unit_j(self) -> float:
        """Joules per counter unit (NVML: 1e-3, RAPL: 1e-6)."""
        ...

    @property
    def wrap(self) -> int | None:
        """The counter counts modulo this many units; None when it never wraps."""
        ...

    def read(self) -> int: ...


def counter_delta(start: int, end: int, wrap: int | None) -> int:
    """Units counted from ``start`` to ``end``, unwrapping once at ``wrap``."""
    if wrap is None:
        if end < start:
            raise NotReadable(f"energy counter went backwards ({start} -> {end}): driver reset?")
        return end - start
    return (end - start) % wrap


class CounterMeter(PolledMeter[CounterChannel]):
    """Windows over one or more counters, summed (e.g. the GPUs of a tensor-parallel engine)."""

    def _open(self) -> EnergyWindow:
        return CounterWindow(self)


class CounterWindow(PolledWindow[CounterChannel]):
    """One running window over counters; thread-safe against its own poller."""

    def __init__(self, meter: CounterMeter) -> None:
        super().__init__(meter)
        self._started_s, self._last = self._read_all()
        self._units = [0] * len(meter.channels)
        self._changes = [0] * len(meter.channels)
        # per channel, (time, joules counted) at each update seen: the power trace, and (first
        # channel) the cadence
        self._updates: list[list[tuple[float, float]]] = [[] for _ in meter.channels]
        self._ended_s = self._started_s
        self._start_polling()

    def _read_all(self) -> tuple[float, list[int]]:
        before = self._clock()
        values = [channel.read() for channel in self._meter.channels]
        return (before + self._clock()) / 2, values  # midpoint of a read of ~4 ms per GPU

    def poll(self) -> None:
        """Read every counter once and account the deltas (the poller calls this)."""
        now_s, values = self._read_all()
        with self._lock:
            for i, (channel, value) in enumerate(zip(self._meter.channels, values, strict=True)):
                delta = counter_delta(self._last[i], value, channel.wrap)
                if delta:
                    self._changes[i] += 1
                    self._updates[i].append((now_s, delta * channel.unit_j))
                self._units[i] += delta
            self._last = values
            self._ended_s = now_s

    def elapsed_s(self) -> float:
        return self._clock() - self._started_s

    def updates(self) -> int:
        """Counter updates seen so far by the device that updated least."""
        if self._read_failed():
            return self._meter.min_updates
        with self._lock:
            return min(self._changes)

    def _reading(self) -> EnergyReading:
        channels = self._meter.channels
        per_device_j = {
            channel.device.uuid: units * channel.unit_j
            for channel, units in zip(channels, self._units, strict=True)
        }
        gaps = [b[0] - a[0] for a, b in itertools.pairwise(self._updates[0])]
        trace = {
            channel.device.uuid: counter_trace(
                [t for t, _ in updates], [j for _, j in updates], self._started_s
            )
            for channel, updates in zip(channels, self._updates, strict=True)
        }
        return self._meter.reading(
            per_device_j,
            self._ended_s - self._started_s,
            min(self._changes),
            update_interval_s=statistics.median(gaps) if gaps else None,
            power_trace=trace,
        )
