"""Which physical GPU (NVML index) a CUDA ordinal names, following CUDA_VISIBLE_DEVICES.

NVML enumerates every GPU of the machine in PCI bus order; CUDA numbers only the visible ones, in
the order CUDA_VISIBLE_DEVICES lists them. The rules CUDA applies, mirrored here:

- entries are comma separated; an entry is an index into CUDA's enumeration or a (prefix of a)
  UUID ``GPU-...`` / ``MIG-...``;
- parsing stops at the first invalid entry (``-1``, unknown UUID, out-of-range index, a
  duplicate): that entry and all after it are invisible;
- an empty value hides every GPU; unset shows all of them;
- indices follow CUDA_DEVICE_ORDER: ``PCI_BUS_ID`` equals NVML's order, the default
  ``FASTEST_FIRST`` equals it only when all GPUs are the same model.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from pytest_llmbench.energy.base import NotReadable

_INDEX = re.compile(r"^\d+$")


@dataclass(frozen=True)
class MigEntry:
    """A MIG instance named in CUDA_VISIBLE_DEVICES: never measurable, so kept only to refuse it."""

    uuid: str


def parse_visible_devices(value: str | None) -> tuple[int | str, ...] | None:
    """Entries of CUDA_VISIBLE_DEVICES up to the first one CUDA rejects; None when unset."""
    if value is None:
        return None
    entries: list[int | str] = []
    for raw in value.split(","):
        entry = raw.strip()
        if _INDEX.match(entry):
            entries.append(int(entry))
        elif entry.upper().startswith(("GPU-", "MIG-")):
            entries.append(entry)
        else:
            break
    return tuple(entries)


def normalise_uuid(uuid: str) -> str:
    """Lower case, with the ``GPU-`` prefix NVML uses (torch reports UUIDs without it)."""
    uuid = uuid.strip().lower()
    return uuid if uuid.startswith(("gpu-", "mig-")) else f"gpu-{uuid}"


def _match_uuid(entry: str, nvml_uuids: Sequence[str]) -> int | None:
    prefix = normalise_uuid(entry)
    hits = [i for i, uuid in enumerate(nvml_uuids) if normalise_uuid(uuid).startswith(prefix)]
    return hits[0] if len(hits) == 1 else None


def visible_gpus(
    visible: tuple[int | str, ...] | None, nvml_uuids: Sequence[str]
) -> list[int | MigEntry]:
    """The devices CUDA numbers 0, 1, 2, ...: NVML indices, or MIG entries."""
    if visible is None:
        return list(range(len(nvml_uuids)))
    found: list[int | MigEntry] = []
    for entry in visible:
        if isinstance(entry, str) and entry.upper().startswith("MIG-"):
            found.append(MigEntry(entry))
            continue
        index = _match_uuid(entry, nvml_uuids) if isinstance(entry, str) else entry
        if index is None or index >= len(nvml_uuids) or index in found:
            break  # CUDA hides this entry and every one after it
        found.append(index)
    return found


def map_cuda_ordinals(
    ordinals: Sequence[int],
    visible_value: str | None,
    nvml_uuids: Sequence[str],
    nvml_names: Sequence[str],
    device_order: str | None,
) -> list[int]:
    """NVML indices of CUDA ordinals ``ordinals``; raises NotReadable with the reason otherwise.

    ``visible_value`` and ``device_order`` are the raw CUDA_VISIBLE_DEVICES and CUDA_DEVICE_ORDER.
    """
    visible = parse_visible_devices(visible_value)
    by_index = visible is None or any(isinstance(entry, int) for entry in visible)
    if by_index and (device_order or "FASTEST_FIRST") != "PCI_BUS_ID" and len(set(nvml_names)) > 1:
        raise NotReadable(
            "CUDA orders these different GPUs fastest first ("
            + ", ".join(sorted(set(nvml_names)))
            + "), so CUDA indices do not match NVML's: set CUDA_DEVICE_ORDER=PCI_BUS_ID"
            " or list GPU UUIDs in CUDA_VISIBLE_DEVICES"
        )
    devices = visible_gpus(visible, nvml_uuids)
    shown = "unset" if visible_value is None else repr(visible_value)
    indices: list[int] = []
    for ordinal in dict.fromkeys(ordinals):  # tensor-parallel ranks may repeat a device
        if ordinal < 0 or ordinal >= len(devices):
            raise NotReadable(
                f"CUDA device {ordinal} does not exist: CUDA_VISIBLE_DEVICES={shown} "
                f"exposes {len(devices)} of the {len(nvml_uuids)} GPUs NVML sees"
            )
        device = devices[ordinal]
        if isinstance(device, MigEntry):
            raise NotReadable(
                f"CUDA device {ordinal} is MIG instance {device.uuid}: NVML cannot measure the "
                "energy of a MIG slice (its counters cover the whole GPU, shared with other slices)"
            )
        indices.append(device)
    return indices
