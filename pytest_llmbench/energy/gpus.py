"""Opening NVML and finding the GPUs a backend uses, by UUID, refusing MIG.

``pynvml`` (package nvidia-ml-py) is imported here, inside :func:`open_nvml`, never at import time.
Tests pass a fake module with the same names instead.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from pytest_llmbench.energy.base import DeviceInfo, NotReadable
from pytest_llmbench.energy.visible import (
    map_cuda_ordinals,
    normalise_uuid,
    parse_visible_devices,
    visible_gpus,
)


class Nvml(Protocol):
    """The part of ``pynvml`` the meters use; handles are opaque objects."""

    @property
    def NVMLError(self) -> type[Exception]: ...  # noqa: N802 - pynvml's names
    @property
    def NVMLError_NotSupported(self) -> type[Exception]: ...  # noqa: N802
    @property
    def NVML_DEVICE_MIG_ENABLE(self) -> int: ...  # noqa: N802

    def nvmlInit(self) -> None: ...
    def nvmlShutdown(self) -> None: ...
    def nvmlDeviceGetCount(self) -> int: ...
    def nvmlDeviceGetHandleByIndex(self, index: int) -> object: ...
    def nvmlDeviceGetUUID(self, handle: object) -> str | bytes: ...
    def nvmlDeviceGetName(self, handle: object) -> str | bytes: ...
    def nvmlDeviceGetMigMode(self, handle: object) -> Sequence[int]: ...
    def nvmlDeviceIsMigDeviceHandle(self, handle: object) -> object: ...  # a truthy c_uint
    def nvmlDeviceGetTotalEnergyConsumption(self, handle: object) -> int: ...
    def nvmlDeviceGetPowerUsage(self, handle: object) -> int: ...


class NoVisibleGpu(NotReadable):
    """CUDA sees no GPU here: the work runs on the CPU, whatever NVML lists."""


@dataclass(frozen=True)
class NvmlGpu:
    """A GPU a backend uses: its NVML handle and its identity (``info.index`` = CUDA ordinal)."""

    handle: object
    info: DeviceInfo


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def open_nvml(module: Nvml | None = None) -> Nvml:
    """Import ``pynvml`` lazily (unless given) and initialise NVML; NotReadable says why not."""
    if module is None:
        try:
            import pynvml
        except ImportError as exc:
            raise NotReadable(f"pynvml is not importable ({exc}); install nvidia-ml-py") from exc
        module = pynvml
    try:
        module.nvmlInit()
    except module.NVMLError as exc:
        raise NotReadable(f"nvmlInit failed: {exc}") from exc
    return module


def _mig_enabled(nvml: Nvml, handle: object) -> bool:
    try:
        if bool(nvml.nvmlDeviceIsMigDeviceHandle(handle)):
            return True
        return nvml.nvmlDeviceGetMigMode(handle)[0] == nvml.NVML_DEVICE_MIG_ENABLE
    except nvml.NVMLError_NotSupported:  # GPUs without MIG support
        return False


def resolve_gpus(
    nvml: Nvml,
    cuda_devices: Sequence[int] | None,
    *,
    environ: Mapping[str, str] | None = None,
    cuda_uuids: Sequence[str] | None = None,
) -> tuple[NvmlGpu, ...]:
    """The NVML GPUs behind CUDA ordinals ``cuda_devices`` (deduplicated, in order).

    ``None`` means every GPU CUDA can see (NoVisibleGpu when there is none).
    ``cuda_uuids[i]`` is CUDA's own UUID of ordinal ``i`` (e.g. from
    ``torch.cuda.get_device_properties(i).uuid``); when given it is exact and wins over
    CUDA_VISIBLE_DEVICES. Raises NotReadable with the reason for unknown devices and MIG.
    """
    env = os.environ if environ is None else environ
    try:
        handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(nvml.nvmlDeviceGetCount())]
        uuids = [_text(nvml.nvmlDeviceGetUUID(h)) for h in handles]
        names = [_text(nvml.nvmlDeviceGetName(h)) for h in handles]
    except nvml.NVMLError as exc:
        raise NotReadable(f"NVML could not list the GPUs: {exc}") from exc
    visible_value = env.get("CUDA_VISIBLE_DEVICES")
    if cuda_devices is None:
        count = (
            len(cuda_uuids)
            if cuda_uuids is not None
            else len(visible_gpus(parse_visible_devices(visible_value), uuids))
        )
        if count == 0:
            shown = "unset" if visible_value is None else repr(visible_value)
            raise NoVisibleGpu(
                f"CUDA sees no GPU (NVML lists {len(handles)}, CUDA_VISIBLE_DEVICES={shown})"
            )
        cuda_devices = range(count)
    ordinals = list(dict.fromkeys(cuda_devices))
    if cuda_uuids is not None:
        indices = [_index_of_uuid(ordinal, cuda_uuids, uuids) for ordinal in ordinals]
    else:
        indices = map_cuda_ordinals(
            ordinals,
            visible_value,
            uuids,
            names,
            env.get("CUDA_DEVICE_ORDER"),
        )
    gpus = []
    for ordinal, index in zip(ordinals, indices, strict=True):
        handle = handles[index]
        if _mig_enabled(nvml, handle):
            raise NotReadable(
                f"CUDA device {ordinal} ({names[index]}, {uuids[index]}) has MIG mode enabled: "
                "NVML cannot measure the energy of a MIG slice (the GPU's counters cover all "
                "slices)"
            )
        gpus.append(NvmlGpu(handle, DeviceInfo(ordinal, names[index], uuids[index])))
    return tuple(gpus)


def count_visible_gpus(
    nvml: Nvml | None = None, environ: Mapping[str, str] | None = None
) -> int | None:
    """How many GPUs CUDA would number here (NVML's list through CUDA_VISIBLE_DEVICES), without
    initialising CUDA; None when NVML is not readable (no driver: no GPU we can count)."""
    env = os.environ if environ is None else environ
    try:
        module = open_nvml(nvml)
    except NotReadable:
        return None
    try:
        count = module.nvmlDeviceGetCount()
        uuids = [
            _text(module.nvmlDeviceGetUUID(module.nvmlDeviceGetHandleByIndex(i)))
            for i in range(count)
        ]
    except module.NVMLError:
        return None
    finally:
        module.nvmlShutdown()
    return len(visible_gpus(parse_visible_devices(env.get("CUDA_VISIBLE_DEVICES")), uuids))


def _index_of_uuid(ordinal: int, cuda_uuids: Sequence[str], nvml_uuids: Sequence[str]) -> int:
    if not 0 <= ordinal < len(cuda_uuids):
        raise NotReadable(f"CUDA device {ordinal} does not exist ({len(cuda_uuids)} visible)")
    wanted = normalise_uuid(cuda_uuids[ordinal])
    if wanted.startswith("mig-"):
        raise NotReadable(
            f"CUDA device {ordinal} is MIG instance {cuda_uuids[ordinal]}: NVML cannot measure "
            "the energy of a MIG slice"
        )
    for index, uuid in enumerate(nvml_uuids):
        if normalise_uuid(uuid) == wanted:
            return index
    raise NotReadable(
        f"CUDA device {ordinal} has UUID {cuda_uuids[ordinal]}, which NVML does not list"
    )


def describe_gpus(gpus: Sequence[NvmlGpu]) -> str:
    """``1 GPU (NVIDIA H100 80GB HBM3, GPU-...)`` for choice notes and summaries."""
    plural = "" if len(gpus) == 1 else "s"
    inner = "; ".join(f"{g.info.name}, {g.info.uuid}" for g in gpus)
    return f"{len(gpus)} GPU{plural} ({inner})"
