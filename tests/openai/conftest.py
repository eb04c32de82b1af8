"""Fixtures of the openai tests: a fake server per test, the tiny model once per session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("aiohttp")

from openai_fakes import FakeServer  # noqa: E402


@pytest.fixture
def fake_server() -> Iterator[FakeServer]:
    server = FakeServer()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def tiny_model() -> Path:
    pytest.importorskip("transformers")
    from pytest_llmbench.workload.tinymodel import ensure_tiny_model

    return ensure_tiny_model()
