"""pytest-llmbench's own hooks: third-party backends and meters arrive here, not by editing us."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from pytest_llmbench.backends.base import Backend
    from pytest_llmbench.energy.plugins import MeterFactory
    from pytest_llmbench.results import BenchmarkResult

hookspec = pluggy.HookspecMarker("pytest")


@hookspec
def pytest_llmbench_register_backends() -> dict[str, type[Backend]] | None:
    """Return ``{name: BackendClass}`` to add backends (called once, at configure time).

    A name that clashes with a built-in or another plugin's backend is a usage error.
    Packages may instead declare the entry-point group ``pytest_llmbench.backends``.
    """


@hookspec
def pytest_llmbench_register_energy_meters() -> dict[str, MeterFactory] | None:
    """Return ``{name: factory}`` to add energy meters, chosen with ``--llm-energy NAME``.

    ``factory(request: MeterRequest)`` returns a ``DeviceMeter`` (energy/base.py) or raises
    ``NotReadable(reason)``. ``auto`` never picks a plugin meter. A name that clashes with a
    built-in (auto, nvml, nvml-power, rapl, none) or another plugin's is a usage error. Packages
    may instead declare the entry-point group ``pytest_llmbench.energy_meters``.
    """


@hookspec
def pytest_llmbench_result(result: BenchmarkResult) -> None:
    """Called on the process that ran the benchmark, after a result is recorded."""


@hookspec
def pytest_llmbench_update_json(report: dict[str, Any]) -> None:
    """Mutate the JSON report in place before it is written (add CI metadata, ...)."""
