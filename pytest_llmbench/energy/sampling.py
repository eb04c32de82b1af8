"""NVML power sampling, integrated over time: the fallback for GPUs without the energy counter.

``nvmlDeviceGetPowerUsage`` (milliwatts) is sampled in a daemon thread and integrated with the
trapezoid rule on the timestamps actually observed (a busy host delays samples; assuming the
nominal interval would then misweight them). It only sees the instants it samples, so it is less
exact than the counter; docs/energy.md says by how much on which GPUs.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from pytest_llmbench.energy.base import (
    DeviceInfo,
    EnergyReading,
    EnergyUnavailable,
    EnergyWindow,
    NotReadable,
    min_polls,
)
from pytest_llmbench.energy.gpus import Nvml, NvmlGpu
from pytest_llmbench.energy.poller import PolledMeter

METHOD = "nvml-power"
DEFAULT_SAMPLE_INTERVAL_S = 0.05


class PowerChannel(Protocol):
    """One power sensor; ``read_w`` raises NotReadable on failure."""

    @property
    def device(self) -> DeviceInfo: ...

    def read_w(self) -> float: ...


def trapezoid_j(times_s: Sequence[float], power_w: Sequence[float]) -> float:
    """Energy in joules of power samples ``power_w`` taken at ``times_s`` (trapezoid rule)."""
    if len(times_s) != len(power_w):
        raise ValueError("one timestamp per power sample")
    return sum(
        (t1 - t0) * (p0 + p1) / 2
        for (t0, t1), (p0, p1) in zip(
            itertools.pairwise(times_s), itertools.pairwise(power_w), strict=True
        )
    )


@dataclass(frozen=True)
class NvmlPowerChannel:
    """One GPU's board power from ``nvmlDeviceGetPowerUsage`` (milliwatts)."""

    nvml: Nvml
    gpu: NvmlGpu

    @property
    def device(self) -> DeviceInfo:
        return self.gpu.info

    def read_w(self) -> float:
        try:
            return self.nvml.nvmlDeviceGetPowerUsage(self.gpu.handle) / 1e3
        except self.nvml.NVMLError as exc:
            info = self.gpu.info
            raise NotReadable(
                f"nvmlDeviceGetPowerUsage failed on CUDA device {info.index} "
                f"({info.name}, {info.uuid}): {exc}"
            ) from exc


class PowerMeter(PolledMeter[PowerChannel]):
    """Samples power of one or more devices every ``interval_s`` and integrates each."""

    polling = "sampled"

    def _open(self) -> EnergyWindow:
        return PowerWindow(self)


class PowerWindow:
    """One running window of samples; thread-safe against its own poller."""

    def __init__(self, meter: PowerMeter) -> None:
        self._meter = meter
        self._lock = threading.Lock()
        self._times_s: list[list[float]] = [[] for _ in meter.channels]
        self._power_w: list[list[float]] = [[] for _ in meter.channels]
        self._samples = 0
        self._result: EnergyReading | EnergyUnavailable | None = None
        self.poll()  # the first sample marks the start
        self._started_s = self._times_s[0][0]
        self._poller = meter.poller(self.poll)

    def poll(self) -> None:
        """Take one sample of every device, each stamped with the midpoint of its own read."""
        sweep = []
        for channel in self._meter.channels:
            before = self._meter.clock()
            power_w = channel.read_w()
            sweep.append(((before + self._meter.clock()) / 2, power_w))
        with self._lock:
            for i, (t_s, power_w) in enumerate(sweep):
                self._times_s[i].append(t_s)
                self._power_w[i].append(power_w)
            self._samples += 1

    def elapsed_s(self) -> float:
        return self._meter.clock() - self._started_s

    def updates(self) -> int:
        """Samples taken so far (the start sample included)."""
        with self._lock:
            return self._samples

    def stop(self) -> EnergyReading | EnergyUnavailable:
        """End the window (idempotent: a second call returns the same reading)."""
        if self._result is None:
            self._result = self._finish()
        return self._result

    def _finish(self) -> EnergyReading | EnergyUnavailable:
        meter = self._meter
        failed = self._poller.finish() if self._poller is not None else None
        if failed is not None:
            return EnergyUnavailable(failed, meter.method)
        try:
            self.poll()  # the last sample marks the end
        except NotReadable as exc:
            return EnergyUnavailable(exc.reason, meter.method)
        per_device_j = {
            channel.device.uuid: trapezoid_j(times_s, power_w)
            for channel, times_s, power_w in zip(
                meter.channels, self._times_s, self._power_w, strict=True
            )
        }
        times_s = self._times_s[0]
        window_s = times_s[-1] - times_s[0]
        return EnergyReading(
            method=meter.method,
            window_s=window_s,
            energy_j=sum(per_device_j.values()),
            per_device_j=per_device_j,
            devices=meter.devices,
            updates=self._samples,
            idle_power_w=meter.idle.total_w(meter.devices) if meter.idle else None,
            short_window=self._samples < meter.min_updates,
            sample_interval_s=window_s / (self._samples - 1),
        )


def nvml_power_meter(
    nvml: Nvml,
    gpus: Sequence[NvmlGpu],
    *,
    sample_interval_s: float = DEFAULT_SAMPLE_INTERVAL_S,
    min_updates: int | None = None,
    background: bool = True,
) -> PowerMeter:
    """A sampling meter over ``gpus``; NotReadable when a GPU reports no power.

    ``min_updates`` counts samples; by default those that make base.MIN_WINDOW_S.
    """
    channels = [NvmlPowerChannel(nvml, gpu) for gpu in gpus]
    for channel in channels:
        channel.read_w()
    return PowerMeter(
        METHOD,
        channels,
        interval_s=sample_interval_s,
        min_updates=min_polls(sample_interval_s) if min_updates is None else min_updates,
        background=background,
        on_close=nvml.nvmlShutdown,
    )
