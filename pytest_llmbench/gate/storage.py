"""Saved runs: ``--llm-save NAME`` / ``--llm-autosave`` and resolving ``--llm-compare [BASELINE]``.

Layout (like pytest-benchmark's ``.benchmarks``): ``<root>/<machine-id>/NNNN_<name>.json``,
numbered in save order per machine id, because numbers are only comparable on the same kind of
machine. Every file is written atomically (temporary file, fsync, rename).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pytest_llmbench.errors import StorageError

DEFAULT_ROOT = ".llmbench"
_SAVED = re.compile(r"^(?P<num>[0-9]{4})_(?P<name>.+)\.json$")


def safe_name(name: str) -> str:
    """``name`` made safe for a file name (letters, digits, ``.-_``)."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")
    if not cleaned:
        raise StorageError(f"--llm-save: {name!r} has no usable characters for a file name")
    return cleaned


def autosave_name(machine: dict[str, Any], now: datetime | None = None) -> str:
    """``<UTC time>_<commit[:8]>`` (commit left out where unknown), as pytest-benchmark does."""
    stamp = (now or datetime.now(timezone.utc)).strftime("%Y%m%dT%H%M%SZ")
    git = machine.get("git")
    commit = str((git.get("commit") if isinstance(git, dict) else None) or "")[:8]
    return f"{stamp}_{commit}" if commit else stamp


@dataclass(frozen=True)
class SavedRun:
    number: int
    name: str
    path: Path


class Storage:
    """Saved reports of one machine id under ``root``."""

    def __init__(self, root: str | Path = DEFAULT_ROOT, machine_id: str = "unknown") -> None:
        self.root = Path(root)
        self.machine_id = machine_id

    @property
    def folder(self) -> Path:
        return self.root / self.machine_id

    def runs(self) -> list[SavedRun]:
        """Saved runs of this machine id, oldest (lowest number) first."""
        if not self.folder.is_dir():
            return []
        found = []
        for path in self.folder.iterdir():
            m = _SAVED.match(path.name)
            if m and path.is_file():
                found.append(SavedRun(int(m["num"]), m["name"], path))
        return sorted(found, key=lambda r: (r.number, r.name))

    def save(self, report_json: str, name: str) -> Path:
        """Write ``report_json`` as the next numbered run called ``name``; returns the path."""
        from pytest_llmbench.report.json_report import atomic_write_text

        runs = self.runs()
        number = runs[-1].number + 1 if runs else 1
        if number > 9999:
            raise StorageError(f"{self.folder}: 9999 saved runs; remove old ones")
        path = self.folder / f"{number:04d}_{safe_name(name)}.json"
        atomic_write_text(path, report_json)
        return path

    def resolve(self, value: str | None) -> Path:
        """The baseline file ``--llm-compare`` means.

        ``None`` or ``""``: the latest saved run. An existing file path: that file. ``NNNN`` or
        ``N``: the saved run of that number. Otherwise a saved run's name (or ``NNNN_name``);
        the latest of several with that name. StorageError lists what exists when none matches.
        """
        if value:
            candidate = Path(value)
            if candidate.is_file():
                return candidate
            if candidate.suffix == ".json" or len(candidate.parts) > 1:
                raise StorageError(f"--llm-compare: {value}: no such file")
        runs = self.runs()
        # A name may have been meant as a file or folder: say it is neither.
        neither = f"no file or folder {value!r}, and " if value and not value.isdigit() else ""
        if not runs:
            raise StorageError(
                f"--llm-compare: {neither}no saved runs in {self.folder} "
                "(save one with --llm-save NAME or --llm-autosave)"
            )
        if not value:
            return runs[-1].path
        if value.isdigit():
            hits = [r for r in runs if r.number == int(value)]
        else:
            hits = [r for r in runs if value in (r.name, r.path.stem)]
        if not hits:
            known = ", ".join(r.path.stem for r in runs[-10:])
            raise StorageError(
                f"--llm-compare: {neither}no saved run {value!r} in {self.folder}; latest: {known}"
            )
        return hits[-1].path
