"""Pinning pytest-xdist workers to their own GPUs (``--llm-gpus-per-worker K``).

Worker ``gwN`` gets the N-th slice of K devices of what the controller could see, through
CUDA_VISIBLE_DEVICES. The slice is set in ``pytest_load_initial_conftests``, before conftest files
are imported, so nothing in the worker (a conftest calling ``torch.cuda.is_available()``, an
engine) has initialised CUDA with the whole device list: CUDA reads the variable once, at its
first initialisation.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass

from pytest_llmbench.energy.visible import parse_visible_devices
from pytest_llmbench.errors import ConfigError

OPTION = "--llm-gpus-per-worker"
DEST = "llm_gpus_per_worker"


def worker_index(worker_id: str) -> int:
    """``"gw3"`` -> 3."""
    if not worker_id.startswith("gw") or not worker_id[2:].isdigit():
        raise ValueError(f"not an xdist worker id: {worker_id!r}")
    return int(worker_id[2:])


def visible_devices(env: Mapping[str, str], count_devices: int) -> list[str]:
    """The devices this process may use, as CUDA_VISIBLE_DEVICES entries; else 0..count-1.

    CUDA's reading of the variable: entries up to the first invalid one (``-1``, text that is
    neither an index nor a ``GPU-``/``MIG-`` UUID, an index past the ``count_devices`` NVML
    lists, a repeated index) count, and the rest is hidden. UUIDs are kept as written (they are
    checked against NVML where the energy meter maps them).
    """
    entries = parse_visible_devices(env.get("CUDA_VISIBLE_DEVICES"))
    if entries is None:
        return [str(i) for i in range(count_devices)]
    devices: list[str] = []
    for entry in entries:
        if isinstance(entry, int) and (
            (count_devices > 0 and entry >= count_devices) or str(entry) in devices
        ):
            break
        devices.append(str(entry))
    return devices


def pin_worker(
    env: MutableMapping[str, str], worker_id: str, per_worker: int, count_devices: int
) -> list[str]:
    """Set CUDA_VISIBLE_DEVICES in ``env`` to this worker's slice and return it.

    When the slice is made of NVML indices (CUDA_VISIBLE_DEVICES was unset) and
    CUDA_DEVICE_ORDER is unset, it is set to ``PCI_BUS_ID``: the indices are NVML's, and CUDA's
    default order (fastest first) differs from NVML's on a machine of mixed GPU models.
    """
    numbered = env.get("CUDA_VISIBLE_DEVICES") is None
    devices = visible_devices(env, count_devices)
    index = worker_index(worker_id)
    chosen = devices[index * per_worker : (index + 1) * per_worker]
    if len(chosen) < per_worker:
        raise ConfigError(
            OPTION,
            f"worker {worker_id} needs devices {index * per_worker}.."
            f"{(index + 1) * per_worker - 1} but only {len(devices)} are visible "
            f"({','.join(devices) or 'none'}); use fewer -n workers",
        )
    env["CUDA_VISIBLE_DEVICES"] = ",".join(chosen)
    if numbered:
        env.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
    return chosen


def check_workers(
    env: Mapping[str, str], workers: int, per_worker: int, count_devices: int
) -> None:
    """ConfigError unless ``workers`` slices of ``per_worker`` devices fit what is visible.

    Checked once in the controller: a worker that found no devices would crash at start, and
    pytest-xdist would replace it again and again.
    """
    devices = visible_devices(env, count_devices)
    if workers * per_worker > len(devices):
        raise ConfigError(
            OPTION,
            f"{workers} workers x {per_worker} GPUs need {workers * per_worker} devices but only "
            f"{len(devices)} are visible ({','.join(devices) or 'none'}); "
            f"use -n {len(devices) // per_worker} or fewer",
        )


def auto_workers(env: Mapping[str, str], per_worker: int, count_devices: int) -> int:
    """``-n auto`` with K GPUs per worker: as many workers as full slices fit (at least one, so
    that a machine without enough GPUs gets the controller's error rather than no workers)."""
    return max(1, len(visible_devices(env, count_devices)) // per_worker)


def nvml_device_count() -> int:
    """GPUs NVML lists (0 without a driver); NVML does not initialise CUDA."""
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


_PINNED_VARIABLES = ("CUDA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER")


@dataclass(frozen=True)
class EarlyPin:
    """A slice set before pytest knew whether this process is an xdist worker, and the variables
    as they were, so that a process that turns out not to be one (a pytest session started from
    inside a worker inherits ``PYTEST_XDIST_WORKER``) gets them back."""

    worker_id: str
    devices: tuple[str, ...]
    previous: tuple[tuple[str, str | None], ...]

    def undo(self, env: MutableMapping[str, str]) -> None:
        for name, value in self.previous:
            if value is None:
                env.pop(name, None)
            else:
                env[name] = value


def pin_early(
    env: MutableMapping[str, str], per_worker: int, count_devices: int
) -> EarlyPin | None:
    """Pin the worker named by ``PYTEST_XDIST_WORKER`` before conftest files load; None when
    this is no worker or its slice does not fit (``pytest_configure`` decides and says why)."""
    worker_id = env.get("PYTEST_XDIST_WORKER")
    if worker_id is None:
        return None
    previous = tuple((name, env.get(name)) for name in _PINNED_VARIABLES)
    try:
        devices = pin_worker(env, worker_id, per_worker, count_devices)
    except (ConfigError, ValueError):
        return None
    return EarlyPin(worker_id, tuple(devices), previous)


def check_controller(workers: object, per_worker: int) -> None:
    """In the xdist controller (``-n N``, an int by now): ConfigError unless N slices fit."""
    if isinstance(workers, int) and workers > 0:
        check_workers(os.environ, workers, per_worker, nvml_device_count())


def pin_current_worker_early(cli_value: object, ini_value: object) -> EarlyPin | None:
    """In ``pytest_load_initial_conftests``: this process's slice, if it is a worker and
    ``--llm-gpus-per-worker`` is set; a bad value is left for ``pytest_configure`` to report."""
    try:
        per_worker = early_gpus_per_worker(cli_value, ini_value)
    except ConfigError:
        return None
    if not per_worker:
        return None
    return pin_early(os.environ, per_worker, nvml_device_count())


def settle_workers(
    early: EarlyPin | None, worker_id: str | None, per_worker: int | None, workers: object
) -> int | None:
    """At ``pytest_configure``, when pytest knows what this process is (``worker_id``: its
    xdist id, None in the controller or a plain session; ``workers``: ``-n``).

    A worker keeps its early slice, or takes one now. Anything else gets back the variables an
    early pin changed (a session started inside a worker inherits ``PYTEST_XDIST_WORKER``); the
    controller checks that every worker's slice fits and returns the GPUs each worker gets
    (None without workers or pinning). ConfigError naming ``--llm-gpus-per-worker`` otherwise.
    """
    if worker_id is not None and per_worker:
        if early is None or early.worker_id != worker_id:
            if early is not None:
                early.undo(os.environ)
            pin_current_worker(worker_id, per_worker)
        return None
    if early is not None:
        early.undo(os.environ)
    if per_worker and isinstance(workers, int) and workers > 0:
        check_controller(workers, per_worker)
        return per_worker
    return None


def early_gpus_per_worker(cli_value: object, ini_value: object) -> int | None:
    """``--llm-gpus-per-worker`` before pytest has parsed its options (the command line wins
    over the ini file; unset, empty or 0 mean no pinning)."""
    value = cli_value if cli_value is not None else ini_value
    if value in (None, "", []):
        return None
    if isinstance(value, Sequence) and not isinstance(value, str):
        value = value[-1]
    try:
        number = int(str(value))
    except ValueError:
        raise ConfigError(OPTION, f"{value!r} is not an integer") from None
    if number < 0:
        raise ConfigError(OPTION, f"{number} is not >= 0")
    return number or None
