"""Fixtures of the results/gate/storage tests."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture
def schema() -> dict[str, Any]:
    from pytest_llmbench.results import load_schema

    return load_schema()


@pytest.fixture(scope="session", autouse=True)
def _import_heavy_modules_once() -> None:
    """Overrides tests/conftest.py's: these pure-logic tests run no inner pytest session, so
    they need no torch (keeps this folder's tests fast)."""
