"""NVML power sampling, integrated over time: the fallback for GPUs without the energy counter.

``nvmlDeviceGetPowerUsage`` (milliwatts) is sampled in a daemon thread and integrated with the
trapezoid rule on the timestamps actually observed (a busy host delays samples; assuming the
nominal interval would then misweight them). It only sees the instants it samples, so it is less
exact than the counter; docs/energy.md says by how much on which GPUs. The samples also give the
window's power trace (:func:`~pytest_llmbench.energy.trace.sampled_trace`).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from pytest_llmbench.energy.base import (
    DeviceInfo,
    EnergyReading,
    EnergyWindow,
    NotReadable,
    min_polls,
)
from pytest_llmbench.energy.gpus import Nvml, NvmlGpu
from pytest_llmbench.energy.poller import PolledMeter, PolledWindow
from pytest_llmbench.energy.trace import sampled_trace

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


class PowerWindow(PolledWindow[PowerChannel]):
    """One running window of samples; thread-safe against its own poller."""

    def __init__(self, meter: PowerMeter) -> None:
        super().__init__(meter)
        self._times_s: list[list[float]] = [[] for _ in meter.channels]
        self._power_w: list[list[float]] = [[] for _ in meter.channels]
        self._samples = 0
        self.poll()  # the first sample marks the start
        self._started_s = self._times_s[0][0]
        self._start_polling()

    def poll(self) -> None:
        """Take one sample of every device, each stamped with the midpoint of its own read."""
        sweep = []
        for channel in self._meter.channels:
            before = self._clock()
            power_w = channel.read_w()
            sweep.append(((before + self._clock()) / 2, power_w))
        with self._lock:
            for i, (t_s, power_w) in enumerate(sweep):
                self._times_s[i].append(t_s)
                self._power_w[i].append(power_w)
            self._samples += 1

    def elapsed_s(self) -> float:
        return self._clock() - self._started_s

    def updates(self) -> int:
        """Samples taken so far (the start sample included)."""
        if self._read_failed():
            return self._meter.min_updates
        with self._lock:
            return self._samples

    def _reading(self) -> EnergyReading:
        per_device_j = {
            channel.device.uuid: trapezoid_j(times_s, power_w)
            for channel, times_s, power_w in zip(
                self._meter.channels, self._times_s, self._power_w, strict=True
            )
        }
        window_s = self._times_s[0][-1] - self._times_s[0][0]
        trace = {
            channel.device.uuid: sampled_trace(times_s, power_w, self._started_s)
            for channel, times_s, power_w in zip(
                self._meter.channels, self._times_s, self._power_w, strict=True
            )
        }
        return self._meter.reading(
            per_device_j,
            window_s,
            self._samples,
            sample_interval_s=window_s / (self._samples - 1),
            power_trace=trace,
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
