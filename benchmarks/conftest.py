"""The suite's own switch: ``--llm-strict-overhead`` turns the overhead benchmarks' recorded
ratios into asserted bounds.

By default those benchmarks assert only what a busy machine cannot move (docs/performance.md):
a shared CI runner must not turn a timing swing into a red build. A run on purpose, on a quiet
machine, adds the strict bounds on the end-to-end ratios.
"""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("llmbench-suite", "pytest-llmbench's benchmark suite (benchmarks/)")
    group.addoption(
        "--llm-strict-overhead",
        action="store_true",
        default=False,
        help="Also assert the overhead benchmarks' end-to-end ratios (plugin / direct) within "
        "fixed bounds; for a quiet machine (docs/performance.md). Default: recorded only.",
    )


@pytest.fixture
def strict_overhead(request: pytest.FixtureRequest) -> bool:
    """Whether the end-to-end overhead ratios are asserted (``--llm-strict-overhead``)."""
    return bool(request.config.getoption("llm_strict_overhead", default=False))
