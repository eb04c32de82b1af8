"""Merging reports, and the one rule of aggregation: per backend, never pooled across backends.

Merging concatenates results in order (so it is associative and loses nothing); the merged
report spans the earliest start and the latest finish, is complete only if every part is, and
keeps each distinct machine. Different backends in one merged report are refused with
:class:`~pytest_llmbench.errors.MixedBackendsError` unless ``allow_mixed=True``, which labels
the output ``"mixed_backends": true``. Showing backends side by side needs no permission.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from pytest_llmbench.errors import MixedBackendsError
from pytest_llmbench.results import BenchmarkResult, Report


def check_single_backend(backends: Iterable[str], allow_mixed: bool = False) -> bool:
    """True when ``backends`` mix; raises MixedBackendsError for a mix unless allowed."""
    distinct = set(backends)
    if len(distinct) > 1 and not allow_mixed:
        raise MixedBackendsError(distinct)
    return len(distinct) > 1


def by_backend(results: Iterable[BenchmarkResult]) -> dict[str, list[BenchmarkResult]]:
    """Results grouped by backend (first-seen order): the unit of every aggregate."""
    groups: dict[str, list[BenchmarkResult]] = {}
    for result in results:
        groups.setdefault(result.backend, []).append(result)
    return groups


def pooled_values(
    results: Sequence[BenchmarkResult], metric: str, allow_mixed: bool = False
) -> list[float]:
    """Every repetition's value of ``metric`` over ``results``; refuses mixed backends."""
    check_single_backend((r.backend for r in results), allow_mixed)
    return [v for r in results for v in (r.metric_values(metric) or [])]


def _machines(machine: dict[str, Any]) -> list[dict[str, Any]]:
    if machine.get("mixed"):
        machines = machine.get("machines")
        return [m for m in machines if isinstance(m, dict)] if isinstance(machines, list) else []
    return [machine] if machine else []


def _merge_machines(reports: Sequence[Report]) -> dict[str, Any]:
    distinct: list[dict[str, Any]] = []
    for report in reports:
        for machine in _machines(report.machine):
            if machine not in distinct:
                distinct.append(machine)
    if len(distinct) <= 1:
        return distinct[0] if distinct else {}
    return {"mixed": True, "machines": distinct}


def merge_reports(reports: Sequence[Report], allow_mixed: bool = False) -> Report:
    """One report holding every result of ``reports`` in order; see the module docstring."""
    if not reports:
        raise ValueError("nothing to merge")
    results = tuple(r for report in reports for r in report.results)
    mixed = check_single_backend((r.backend for r in results), allow_mixed)
    finished = [report.finished_at for report in reports]
    return Report(
        results=results,
        started_at=min(report.started_at for report in reports),
        finished_at=None if None in finished else max(f for f in finished if f is not None),
        complete=all(report.complete for report in reports),
        machine=_merge_machines(reports),
        mixed_backends=mixed or any(report.mixed_backends for report in reports),
        # Each entry compares two backends of one session: kept as it was, never recombined.
        agreement=tuple(entry for report in reports for entry in report.agreement),
    )
