"""pytest_llmbench.heap: the heap frozen for a block, and left as found around it."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from pytest_llmbench.heap import frozen_heap


@pytest.fixture(autouse=True)
def thawed() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()


def test_the_block_runs_frozen_and_the_heap_is_thawed_after() -> None:
    with frozen_heap():
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0


def test_the_heap_is_thawed_when_the_block_raises() -> None:
    with pytest.raises(RuntimeError), frozen_heap():
        raise RuntimeError("engine crashed")
    assert gc.get_freeze_count() == 0


def test_garbage_made_before_the_block_is_collected_not_frozen() -> None:
    import weakref

    class Node:
        pass

    gc.disable()  # only the block's own collection may free the cycle
    try:
        a, b = Node(), Node()
        a.other, b.other = b, a  # type: ignore[attr-defined]  # a cycle only the collector frees
        alive = weakref.ref(a)
        del a, b
        assert alive() is not None
        gc.enable()  # frozen_heap leaves a disabled collector alone
        with frozen_heap():
            assert alive() is None
    finally:
        gc.enable()


def test_disabled_or_already_frozen_heaps_are_left_as_they_are() -> None:
    with frozen_heap(enabled=False):
        assert gc.get_freeze_count() == 0
    gc.freeze()
    before = gc.get_freeze_count()
    with frozen_heap():
        pass
    assert gc.get_freeze_count() == before  # someone else's freeze is not undone
