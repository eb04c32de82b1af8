"""CUDA ordinals to NVML indices, following CUDA_VISIBLE_DEVICES the way CUDA reads it."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_llmbench.energy.base import NotReadable
from pytest_llmbench.energy.visible import map_cuda_ordinals, parse_visible_devices

from .fake_nvml import uuid

UUIDS = [uuid(n) for n in range(4)]
SAME = ["NVIDIA H100 80GB HBM3"] * 4


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", ()),
        ("0,2", (0, 2)),
        (" 3 , 1 ", (3, 1)),
        ("0,-1,1", (0,)),  # CUDA stops at the first invalid entry
        ("GPU-abc,1", ("GPU-abc", 1)),
        ("MIG-xyz", ("MIG-xyz",)),
        ("1,nonsense,2", (1,)),
    ],
)
def test_parse_visible_devices(value: str | None, expected: tuple[int | str, ...] | None) -> None:
    assert parse_visible_devices(value) == expected


def test_unset_maps_ordinals_to_the_same_nvml_index() -> None:
    assert map_cuda_ordinals([0, 3], None, UUIDS, SAME, None) == [0, 3]


@given(st.permutations(range(4)), st.integers(min_value=1, max_value=4))
def test_indices_in_visible_order(order: list[int], count: int) -> None:
    value = ",".join(str(i) for i in order[:count])
    assert map_cuda_ordinals(range(count), value, UUIDS, SAME, None) == order[:count]


def test_uuids_and_unique_prefixes_name_gpus() -> None:
    value = f"{UUIDS[2]},{UUIDS[0][:12]}"  # a unique prefix is enough for CUDA
    assert map_cuda_ordinals([0, 1], value, UUIDS, SAME, None) == [2, 0]


def test_uuid_match_ignores_case() -> None:
    assert map_cuda_ordinals([0], UUIDS[3].upper(), UUIDS, SAME, None) == [3]


def test_ambiguous_prefix_hides_the_rest() -> None:
    with pytest.raises(NotReadable, match="exposes 0 of the 4"):
        map_cuda_ordinals([0], "GPU-0000000", UUIDS, SAME, None)


def test_repeated_ordinals_count_once() -> None:
    assert map_cuda_ordinals([1, 1, 0], "3,2", UUIDS, SAME, None) == [2, 3]


@pytest.mark.parametrize("value", ["0,9,1", "0,0,1", f"0,{uuid(99)},1", ""])
def test_invalid_entry_hides_later_devices(value: str) -> None:
    with pytest.raises(NotReadable, match="CUDA device 1 does not exist"):
        map_cuda_ordinals([1], value, UUIDS, SAME, None)


def test_mig_instance_is_refused() -> None:
    with pytest.raises(NotReadable, match="MIG instance MIG-abc.*cannot measure"):
        map_cuda_ordinals([1], "0,MIG-abc", UUIDS, SAME, None)


def test_mixed_models_need_pci_order_for_indices() -> None:
    names = ["NVIDIA A100-SXM4-40GB", "NVIDIA H100 80GB HBM3", *SAME[2:]]
    with pytest.raises(NotReadable, match="CUDA_DEVICE_ORDER=PCI_BUS_ID"):
        map_cuda_ordinals([0], "1", UUIDS, names, None)
    assert map_cuda_ordinals([0], "1", UUIDS, names, "PCI_BUS_ID") == [1]
    assert map_cuda_ordinals([0], UUIDS[1], UUIDS, names, None) == [1]  # UUIDs need no order
