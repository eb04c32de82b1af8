"""The JSON report: written atomically, rewritten after every result so nothing completed is lost."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pytest_llmbench import __version__
from pytest_llmbench.results import SCHEMA_VERSION, BenchmarkResult


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write via a temporary file in the same folder + fsync + rename: readers see old or new."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def build_report(results: Sequence[BenchmarkResult], *, complete: bool, started_at: str, finished_at: str | None) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "pytest_llmbench_version": __version__,
        "started_at": started_at,
        "finished_at": finished_at,
        "complete": complete,
        "backends": sorted({r.backend for r in results}),
        "results": [r.to_dict() for r in results],
    }


def write_report(path: str | Path, report: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(report, indent=2, sort_keys=False) + "\n")
