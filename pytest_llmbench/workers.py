"""Pinning pytest-xdist workers to their own GPUs (``--llm-gpus-per-worker K``).

Worker ``gwN`` gets the N-th slice of K devices of what the controller could see, through
CUDA_VISIBLE_DEVICES, before anything in the worker initialises CUDA.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

from pytest_llmbench.errors import ConfigError


def worker_index(worker_id: str) -> int:
    """``"gw3"`` -> 3."""
    if not worker_id.startswith("gw") or not worker_id[2:].isdigit():
        raise ValueError(f"not an xdist worker id: {worker_id!r}")
    return int(worker_id[2:])


def visible_devices(env: MutableMapping[str, str], count_devices: int) -> list[str]:
    """The devices this process may use: CUDA_VISIBLE_DEVICES entries, else 0..count-1."""
    raw = env.get("CUDA_VISIBLE_DEVICES")
    if raw is not None:
        return [d.strip() for d in raw.split(",") if d.strip()]
    return [str(i) for i in range(count_devices)]


def pin_worker(
    env: MutableMapping[str, str], worker_id: str, per_worker: int, count_devices: int
) -> list[str]:
    """Set CUDA_VISIBLE_DEVICES in ``env`` to this worker's slice and return it."""
    devices = visible_devices(env, count_devices)
    index = worker_index(worker_id)
    chosen = devices[index * per_worker : (index + 1) * per_worker]
    if len(chosen) < per_worker:
        raise ConfigError(
            "--llm-gpus-per-worker",
            f"worker {worker_id} needs devices {index * per_worker}.."
            f"{(index + 1) * per_worker - 1} but only {len(devices)} are visible "
            f"({','.join(devices) or 'none'}); use fewer -n workers",
        )
    env["CUDA_VISIBLE_DEVICES"] = ",".join(chosen)
    return chosen


def check_workers(
    env: MutableMapping[str, str], workers: int, per_worker: int, count_devices: int
) -> None:
    """ConfigError unless ``workers`` slices of ``per_worker`` devices fit what is visible.

    Checked once in the controller: a worker that found no devices would crash at start, and
    pytest-xdist would replace it again and again.
    """
    devices = visible_devices(env, count_devices)
    if workers * per_worker > len(devices):
        raise ConfigError(
            "--llm-gpus-per-worker",
            f"{workers} workers x {per_worker} GPUs need {workers * per_worker} devices but only "
            f"{len(devices)} are visible ({','.join(devices) or 'none'}); "
            f"use -n {len(devices) // per_worker} or fewer",
        )


def nvml_device_count() -> int:
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            return int(pynvml.nvmlDeviceGetCount())
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # no driver or library: no GPUs to hand out
        return 0


def pin_current_worker(worker_id: str, per_worker: int) -> list[str]:
    return pin_worker(os.environ, worker_id, per_worker, nvml_device_count())


def check_controller(workers: object, per_worker: int) -> None:
    """In the xdist controller (``-n N``, an int by now): ConfigError unless N slices fit."""
    if isinstance(workers, int) and workers > 0:
        check_workers(os.environ, workers, per_worker, nvml_device_count())
