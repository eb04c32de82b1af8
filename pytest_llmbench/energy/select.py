"""Choosing the energy meter for a backend from ``--llm-energy`` and the devices it uses.

``auto`` takes the best method that reads: the NVML energy counter, else NVML power sampling (GPU
backends), else RAPL (CPU backends), else an UnavailableMeter whose reason names each failure.
An explicit choice that cannot read is a usage error: the user asked for a number we cannot give.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

from pytest_llmbench.energy import rapl
from pytest_llmbench.energy.base import (
    DEFAULT_MIN_UPDATES,
    DeviceMeter,
    NotReadable,
    UnavailableMeter,
)
from pytest_llmbench.energy.gpus import (
    NoVisibleGpu,
    Nvml,
    NvmlGpu,
    describe_gpus,
    open_nvml,
    resolve_gpus,
)
from pytest_llmbench.energy.nvml import METHOD as COUNTER
from pytest_llmbench.energy.nvml import nvml_counter_meter
from pytest_llmbench.energy.rapl import rapl_meter
from pytest_llmbench.energy.sampling import DEFAULT_SAMPLE_INTERVAL_S, nvml_power_meter
from pytest_llmbench.energy.sampling import METHOD as POWER
from pytest_llmbench.errors import LLMBenchError

EnergyChoice = Literal["auto", "nvml", "nvml-power", "rapl", "none"]
CHOICES: tuple[str, ...] = get_args(EnergyChoice)
OPTION = "--llm-energy"

Selected = tuple[DeviceMeter | UnavailableMeter, str]
_LABELS = {COUNTER: "NVML counter", POWER: "NVML power"}


def select_meter(
    choice: EnergyChoice,
    cuda_devices: Sequence[int] | None,
    *,
    sample_interval_s: float = DEFAULT_SAMPLE_INTERVAL_S,
    min_updates: int | None = None,
    cuda_uuids: Sequence[str] | None = None,
    nvml: Nvml | None = None,
    environ: Mapping[str, str] | None = None,
    rapl_root: Path | None = None,
) -> Selected:
    """The meter for a backend and one line saying why it was chosen.

    ``cuda_devices``: CUDA ordinals the backend uses (all tensor-parallel ranks); ``()`` for a
    backend on the CPU; ``None`` for every GPU CUDA sees (the ``energy`` fixture, which cannot
    know what the test will use). ``min_updates`` defaults to 20 counter updates, or for
    sampling/RAPL the polls at ``sample_interval_s`` that make 2 s. ``cuda_uuids`` (CUDA's own
    UUID per ordinal, e.g. from torch) makes the NVML mapping exact; otherwise it follows
    CUDA_VISIBLE_DEVICES in ``environ``. ``nvml`` replaces ``pynvml`` and ``rapl_root`` the
    powercap tree (default ``rapl.POWERCAP``, read at call time) in tests.
    Raises LLMBenchError naming ``--llm-energy`` when an explicit choice cannot read.
    """
    if choice not in CHOICES:
        raise LLMBenchError(f"{OPTION}: {choice!r} is not one of {', '.join(CHOICES)}")
    if sample_interval_s <= 0:
        raise LLMBenchError(f"{OPTION}: the sample interval must be > 0 s, got {sample_interval_s}")
    if min_updates is not None and min_updates < 0:
        raise LLMBenchError(f"{OPTION}: min updates must be >= 0, got {min_updates}")
    if choice == "none":
        reason = f"energy measurement is off ({OPTION} none)"
        return UnavailableMeter(reason), reason
    settings = _Settings(sample_interval_s, min_updates, rapl_root or rapl.POWERCAP)
    gpu_methods = {"auto": (COUNTER, POWER), "nvml": (COUNTER,), "nvml-power": (POWER,)}
    try:
        if choice == "rapl":
            meter = _rapl(settings)
            return meter, f"{OPTION} rapl: {meter.method} on {_names(meter)}"
        if cuda_devices is not None and not cuda_devices:
            raise NoVisibleGpu("the backend runs on the CPU")
        meter, note = _gpu_meter(
            gpu_methods[choice], settings, nvml, cuda_devices, environ, cuda_uuids
        )
        prefix = "auto chose" if choice == "auto" else f"{OPTION} {choice}:"
        return meter, f"{prefix} {note}"
    except NoVisibleGpu as exc:
        if choice != "auto":
            raise LLMBenchError(f"{OPTION} {choice}: {exc.reason}") from exc
        nvml_reason = f"not used, {exc.reason}"
    except NotReadable as exc:
        if choice != "auto":
            raise LLMBenchError(f"{OPTION} {choice}: {exc.reason}") from exc
        return _nothing(f"{exc.reason}; RAPL: not used, the backend runs on GPUs")
    try:  # auto, and CUDA sees no GPU: the CPU does the work
        meter = _rapl(settings)
    except NotReadable as exc:
        return _nothing(f"NVML: {nvml_reason}; RAPL: {exc.reason}")
    return meter, f"auto chose rapl on {_names(meter)} (NVML: {nvml_reason})"


@dataclass(frozen=True)
class _Settings:
    sample_interval_s: float
    min_updates: int | None
    rapl_root: Path


def _rapl(settings: _Settings) -> DeviceMeter:
    return rapl_meter(
        settings.rapl_root,
        poll_interval_s=settings.sample_interval_s,
        min_updates=settings.min_updates,
    )


def _gpu_meter(
    methods: Sequence[str],
    settings: _Settings,
    nvml: Nvml | None,
    cuda_devices: Sequence[int] | None,
    environ: Mapping[str, str] | None,
    cuda_uuids: Sequence[str] | None,
) -> tuple[DeviceMeter, str]:
    """The first of ``methods`` that reads; NotReadable naming each failure otherwise.

    The meter returned owns the NVML session (``close()`` shuts it down); failures shut it here.
    """
    try:
        module = open_nvml(nvml)
    except NotReadable as exc:
        if cuda_devices is None:  # "whatever GPUs there are", and NVML finds none: a CPU machine
            raise NoVisibleGpu(f"NVML is not readable ({exc.reason})") from exc
        raise NotReadable(f"NVML: {exc.reason}") from exc
    try:
        gpus = resolve_gpus(module, cuda_devices, environ=environ, cuda_uuids=cuda_uuids)
    except NotReadable as exc:
        module.nvmlShutdown()
        if isinstance(exc, NoVisibleGpu):
            raise
        raise NotReadable(f"NVML: {exc.reason}") from exc
    failures: list[str] = []
    for method in methods:
        try:
            meter = _nvml_meter(method, module, gpus, settings)
        except NotReadable as exc:
            failures.append(f"{_LABELS[method]}: {exc.reason}")
            continue
        note = f"{method} on {describe_gpus(gpus)}"
        return meter, note + (f" ({'; '.join(failures)})" if failures else "")
    module.nvmlShutdown()
    raise NotReadable("; ".join(failures))


def _nvml_meter(
    method: str, module: Nvml, gpus: Sequence[NvmlGpu], settings: _Settings
) -> DeviceMeter:
    if method == COUNTER:
        updates = DEFAULT_MIN_UPDATES if settings.min_updates is None else settings.min_updates
        return nvml_counter_meter(module, gpus, min_updates=updates)
    return nvml_power_meter(
        module,
        gpus,
        sample_interval_s=settings.sample_interval_s,
        min_updates=settings.min_updates,
    )


def _nothing(reasons: str) -> Selected:
    reason = f"auto: no meter readable: {reasons}"
    return UnavailableMeter(reason), reason


def _names(meter: DeviceMeter) -> str:
    return ", ".join(device.name for device in meter.devices)
