"""Helpers of the fault suite: processes by pid, reports as a user would read them."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from pytest_llmbench.results import load_report, load_schema


def pid_alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie, dead but not yet reaped, counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (children, their children, ...), from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def wait_gone(pids: set[int], timeout_s: float = 60.0) -> set[int]:
    """The pids of ``pids`` still running after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        alive = {p for p in pids if pid_alive(p)}
        if not alive:
            return set()
        time.sleep(0.1)
    return {p for p in pids if pid_alive(p)}


def wait_for(path: Path, timeout_s: float = 60.0) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists() and path.read_text():
            return path.read_text()
        time.sleep(0.05)
    raise AssertionError(f"{path} did not appear within {timeout_s} s")


def valid_report(path: Path) -> dict[str, Any]:
    """The report at ``path``, which must parse as JSON and as a report of our schema."""
    load_report(path)  # our own reader: raises ReportError on anything malformed
    data: dict[str, Any] = json.loads(path.read_text())
    try:
        import jsonschema
    except ImportError:
        return data
    jsonschema.validate(data, load_schema())
    return data


def result_ids(report: dict[str, Any]) -> list[str]:
    """Test names of the results, without file and backend: ``test_first``."""
    return [r["test_id"].split("::")[1].split("[")[0] for r in report["results"]]


def engine_workers(fault_dir: Path) -> set[int]:
    """The pids of the worker processes the ``faulty`` engine started (see engines.py)."""
    path = fault_dir / "workers"
    return {int(line) for line in path.read_text().split()} if path.exists() else set()
