"""A baseline history: the earlier runs a new run is judged against.

A history is read from what the user names: report files, directories of reports, globs, or
(``--llm-compare`` without a value) the last saved runs in storage. Every file is read before any
benchmark runs, so a corrupt or foreign file fails in a second, naming the file.

A history must be one series: the same backends and, for every benchmark, the same config in
every report. Reports of another schema version are kept aside (their results cannot be read);
reports of schema version 1 stay readable whatever the current version is.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pytest_llmbench.environment import gpu_names
from pytest_llmbench.errors import ReportError, StorageError
from pytest_llmbench.results import READABLE_SCHEMA_VERSIONS, Report, read_report_data

DEFAULT_HISTORY_RUNS = 20
"""The newest this many runs make the history (Bencher looks at up to 64)."""


@dataclass(frozen=True)
class History:
    """Earlier runs, oldest first; ``skipped`` names files of another schema version."""

    reports: tuple[Report, ...]
    sources: tuple[str, ...]
    skipped: tuple[str, ...] = ()

    @property
    def runs(self) -> int:
        return len(self.reports)

    def describe(self) -> str:
        if not self.sources:
            return ", ".join(self.skipped) or "an empty history"
        if len(self.sources) == 1:
            return self.sources[0]
        folders = sorted({str(Path(s).parent) for s in self.sources})
        where = folders[0] if len(folders) == 1 else f"{len(folders)} folders"
        return where if len(folders) == 1 else f"{len(self.sources)} reports in {where}"


def expand(
    values: Sequence[str],
    option: str = "--llm-compare",
    saved: Callable[[str], Path] | None = None,
) -> list[Path]:
    """Files named by ``values``: files as they are, directories' ``*.json``, globs' matches,
    and anything else through ``saved`` (a saved run's number or name), when given."""
    files: list[Path] = []
    for value in values:
        path = Path(value)
        if path.is_dir():
            found = sorted(p for p in path.glob("*.json") if p.is_file())
            if not found:
                raise StorageError(f"{option}: {value}: the folder holds no .json reports")
            files += found
        elif path.is_file():
            files.append(path)
        elif glob.has_magic(value):
            found = sorted(Path(p) for p in glob.glob(value) if Path(p).is_file())
            if not found:
                raise StorageError(f"{option}: {value}: the pattern matches no files")
            files += found
        elif value.endswith(("/", os.sep)):
            raise StorageError(f"{option}: {value}: no such folder")
        elif saved is not None and not value.endswith(".json") and len(path.parts) == 1:
            files.append(saved(value))
        else:
            raise StorageError(f"{option}: {value}: no such file or folder")
    return list(dict.fromkeys(files))


def load_history(files: Sequence[Path], max_runs: int = DEFAULT_HISTORY_RUNS) -> History:
    """Read ``files`` into a history of at most ``max_runs`` newest runs (by start time).

    Raises ReportError naming the file for unreadable or corrupt files, and for reports that do
    not belong to one series (another backend, another config of the same benchmark)."""
    if max_runs < 1:
        raise ValueError("max_runs must be >= 1")
    loaded: list[tuple[Report, str]] = []
    skipped: list[str] = []
    for path in files:
        data = read_report_data(path)
        if data.get("schema_version") not in READABLE_SCHEMA_VERSIONS:
            skipped.append(f"{path} (schema_version {data.get('schema_version')!r})")
            continue
        loaded.append((Report.from_dict(data, source=str(path)), str(path)))
    loaded.sort(key=lambda item: item[0].started_at)
    loaded = loaded[-max_runs:]
    _check_one_series(loaded)
    return History(tuple(r for r, _ in loaded), tuple(s for _, s in loaded), tuple(skipped))


def _check_one_series(loaded: Sequence[tuple[Report, str]]) -> None:
    if not loaded:
        return
    by_backends: dict[tuple[str, ...], list[str]] = {}
    for report, source in loaded:
        by_backends.setdefault(tuple(report.backends), []).append(source)
    if len(by_backends) > 1:
        parts = "; ".join(
            f"{'+'.join(b) or 'no results'}: {', '.join(_names(s))}"
            for b, s in sorted(by_backends.items())
        )
        raise ReportError(
            _common_parent(loaded), f"the history mixes backends ({parts}); keep one per folder"
        )
    # A runner pool of several GPU models is several series: one band over them hides a change
    # on each (the comparison would only show numbers against a current run of another GPU).
    by_gpus: dict[str, list[str]] = {}
    for report, source in loaded:
        gpus = report.machine.get("gpus")
        if report.machine.get("mixed") or not (isinstance(gpus, dict) and gpus.get("available")):
            continue
        by_gpus.setdefault(", ".join(gpu_names(report.machine)), []).append(source)
    if len(by_gpus) > 1:
        parts = "; ".join(f"{g}: {', '.join(_names(s))}" for g, s in sorted(by_gpus.items()))
        raise ReportError(
            _common_parent(loaded), f"the history mixes GPUs ({parts}); keep one per folder"
        )
    # Several configs in one history are one series per config: the comparison judges each
    # benchmark against the runs of its current config (gate/comparing.py).


def _names(sources: Sequence[str]) -> list[str]:
    return [Path(s).name for s in sources]


def _common_parent(loaded: Sequence[tuple[Report, str]]) -> str:
    parents = {str(Path(s).parent) for _, s in loaded}
    return parents.pop() if len(parents) == 1 else "--llm-compare"


def resolve_history(
    values: Sequence[str],
    *,
    storage_runs: Sequence[Path] | None = None,
    saved: Callable[[str], Path] | None = None,
    max_runs: int = DEFAULT_HISTORY_RUNS,
    option: str = "--llm-compare",
) -> History:
    """The history ``values`` name; ``storage_runs`` are the saved runs (oldest first) that an
    empty value stands for. StorageError or ReportError, one line, for anything unusable."""
    files: list[Path] = []
    plain = [v for v in values if v]
    if len(plain) < len(values):
        if not storage_runs:
            raise StorageError(
                f"{option}: no saved runs to compare with (save runs with --llm-save NAME or "
                "--llm-autosave, or name reports, a folder or a glob)"
            )
        files += list(storage_runs)[-max_runs:]
    files += expand(plain, option, saved)
    unique = {path.resolve(): path for path in reversed(files)}  # a file named twice counts once
    history = load_history(list(reversed(unique.values())), max_runs)
    if not history.reports and not history.skipped:
        raise StorageError(f"{option}: no reports found")
    return history
