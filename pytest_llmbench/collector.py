"""Gathering results where the session ends: the plain session or the xdist controller.

Results ride on each test report's ``user_properties`` (which xdist serialises from workers), so
no side channel is needed. The JSON report is rewritten after every result, so an interrupted or
crashed session still leaves every completed result on disk.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import pytest

from pytest_llmbench.results import USER_PROPERTY, BenchmarkResult


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class ResultCollector:
    PLUGIN_NAME = "llmbench-collector"

    def __init__(self, json_path: str | None) -> None:
        self.json_path = json_path
        self.results: list[BenchmarkResult] = []
        self.started_at = _now()

    def write(self, *, complete: bool) -> None:
        if not self.json_path:
            return
        from pytest_llmbench.report.json_report import build_report, write_report

        report = build_report(
            self.results, complete=complete, started_at=self.started_at, finished_at=_now() if complete else None
        )
        write_report(self.json_path, report)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when != "teardown":  # the last phase carries every property the test added
            return
        added = False
        for key, value in report.user_properties:
            if key == USER_PROPERTY:
                data: dict[str, Any] = value if isinstance(value, dict) else json.loads(value)
                self.results.append(BenchmarkResult.from_dict(data))
                added = True
        if added:
            self.write(complete=False)

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        self.write(complete=exitstatus != pytest.ExitCode.INTERRUPTED)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.results:
            return
        from pytest_llmbench.report.terminal import render_summary

        terminalreporter.write_sep("=", "llmbench summary")
        for line in render_summary(self.results):
            terminalreporter.write_line(line)
        if self.json_path:
            terminalreporter.write_line(f"JSON report: {self.json_path}")
