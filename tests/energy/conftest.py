"""Fixtures at the hardware boundary: a fake NVML and fake powercap trees."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _no_leaked_pollers() -> Iterator[None]:
    """Every window a test starts must have joined its poller thread by the end of the test."""
    yield
    leaked = [t.name for t in threading.enumerate() if t.name.startswith("llmbench-")]
    assert not leaked, f"poller threads still running: {leaked}"
