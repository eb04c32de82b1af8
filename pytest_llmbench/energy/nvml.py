"""The NVML total-energy counter (Volta and newer): millijoules since the driver loaded.

The counter is the most accurate number NVML gives: it integrates power on the GPU itself, where
power sampling from the host misses what happens between samples. It only changes about every
100 ms, hence the minimum-window rule (``min_updates``) and the background poll that counts changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pytest_llmbench.energy.base import DEFAULT_MIN_UPDATES, DeviceInfo, NotReadable
from pytest_llmbench.energy.counter import CounterMeter
from pytest_llmbench.energy.gpus import Nvml, NvmlGpu

METHOD = "nvml-counter"
# The counter changes ~every 100 ms; polling 4x faster sees each change (one read costs ~4 ms).
DEFAULT_POLL_INTERVAL_S = 0.025


@dataclass(frozen=True)
class NvmlEnergyChannel:
    """One GPU's total-energy counter, in millijoules; never wraps (64 bits)."""

    nvml: Nvml
    gpu: NvmlGpu
    unit_j: float = 1e-3
    wrap: int | None = None

    @property
    def device(self) -> DeviceInfo:
        return self.gpu.info

    def read(self) -> int:
        try:
            return int(self.nvml.nvmlDeviceGetTotalEnergyConsumption(self.gpu.handle))
        except self.nvml.NVMLError as exc:
            info = self.gpu.info
            raise NotReadable(
                f"nvmlDeviceGetTotalEnergyConsumption failed on CUDA device {info.index} "
                f"({info.name}, {info.uuid}): {exc}"
            ) from exc


def nvml_counter_meter(
    nvml: Nvml,
    gpus: Sequence[NvmlGpu],
    *,
    min_updates: int = DEFAULT_MIN_UPDATES,
    poll_interval_s: float = DEFAULT_POLL_INTERVAL_S,
    background: bool = True,
) -> CounterMeter:
    """A counter meter over ``gpus``; NotReadable when a GPU lacks the counter.

    Every GPU is read once here, so an unsupported counter (pre-Volta, some vGPUs) is found now
    (``NVMLError_NotSupported`` is the cause of the NotReadable) rather than in the first window.
    """
    channels = [NvmlEnergyChannel(nvml, gpu) for gpu in gpus]
    for channel in channels:
        channel.read()
    return CounterMeter(
        METHOD,
        channels,
        min_updates=min_updates,
        interval_s=poll_interval_s,
        background=background,
        on_close=nvml.nvmlShutdown,
    )
