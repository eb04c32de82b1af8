"""The JSON report: written atomically, rewritten after each result so nothing done is lost."""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pytest_llmbench.results import BenchmarkResult, Report, report_json


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write via a temporary file in the same folder + fsync + rename: readers see old or new.

    The file gets the mode a plain ``open(path, "w")`` would leave (an existing file keeps its
    own, a new one follows the umask), not the 0600 of the temporary file.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    mode = _mode_for(target)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _mode_for(target: Path) -> int:
    try:
        return stat.S_IMODE(target.stat().st_mode)
    except FileNotFoundError:
        return 0o666 & ~_umask()


def _umask() -> int:
    """The process's umask; read from /proc on Linux, since setting it to read it (the only
    portable way) would change it for other threads for a moment."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def build_report(
    results: Sequence[BenchmarkResult],
    *,
    complete: bool,
    started_at: str,
    finished_at: str | None,
    machine: dict[str, Any] | None = None,
    agreement: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """The report dict (see results.Report); ``machine`` defaults to this machine, cached."""
    if machine is None:
        from pytest_llmbench.environment import cached_machine_info

        machine = cached_machine_info()
    report = Report(
        results=tuple(results),
        started_at=started_at,
        finished_at=finished_at,
        complete=complete,
        machine=machine,
        agreement=tuple(agreement),
    )
    return report.to_dict()


def write_report(path: str | Path, report: dict[str, Any]) -> None:
    atomic_write_text(path, report_json(report))
