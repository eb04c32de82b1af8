"""The real benchmark suite under pytest-xdist (``-n 2``) gives the same results as a serial run.

A user's first ``pytest benchmarks -n 2`` once died with INTERNALERROR: a result held torch's
version object, which execnet cannot ship from a worker. This runs the real suite, on the default
backend (pytorch, the embedded tiny model), both ways in subprocesses, as a user would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_suite(
    tmp_path: Path, name: str, *extra: str
) -> tuple[subprocess.CompletedProcess[str], dict]:
    report = tmp_path / f"{name}.json"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "benchmarks",
            "-q",
            "-p",
            "no:cacheprovider",
            "--llm-backend",
            "pytorch",
            "--llm-json",
            str(report),
            *extra,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,  # a hang guard: a busy 2-core runner takes minutes
    )
    data = json.loads(report.read_text()) if report.exists() else {}
    return proc, data


def test_benchmarks_under_xdist_match_a_serial_run(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("xdist")
    serial, serial_report = run_suite(tmp_path, "serial")
    assert serial.returncode == 0, serial.stdout[-3000:] + serial.stderr[-3000:]
    xdist, xdist_report = run_suite(tmp_path, "xdist", "-n", "2")
    output = xdist.stdout + xdist.stderr
    assert "INTERNALERROR" not in output, output[-3000:]
    assert xdist.returncode == 0, output[-3000:]

    def ids(report: dict) -> list[str]:
        assert report["complete"] is True
        return sorted(r["test_id"] for r in report["results"])

    assert ids(xdist_report) == ids(serial_report)
    assert len(ids(serial_report)) >= 3  # the suite measured something on pytorch
    assert {r["backend_version"] for r in xdist_report["results"]} == {
        r["backend_version"] for r in serial_report["results"]
    }
