"""Fixtures of the results/gate/storage tests."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture
def schema() -> dict[str, Any]:
    from pytest_llmbench.results import load_schema

    return load_schema()
