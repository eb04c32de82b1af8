"""Gathering results where the session ends: the plain session or the xdist controller.

Results ride on each test report's ``user_properties`` (which xdist serialises from workers), so
no side channel is needed. The JSON report is rewritten after every result, so an interrupted or
crashed session still leaves every completed result on disk.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import pytest

from pytest_llmbench.results import USER_PROPERTY, BenchmarkResult

if TYPE_CHECKING:
    from pytest_llmbench.baseline import BaselinePlan, Outcome


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class ResultCollector:
    PLUGIN_NAME = "llmbench-collector"

    def __init__(
        self, json_path: str | None, plan: BaselinePlan | None = None, html_path: str | None = None
    ) -> None:
        self.json_path = json_path
        self.html_path = html_path
        self.plan = plan
        self.results: list[BenchmarkResult] = []
        self.started_at = _now()
        self.outcome: Outcome | None = None

    def report(self, *, complete: bool) -> dict[str, Any]:
        from pytest_llmbench.report.json_report import build_report

        finished = _now() if complete else None
        return build_report(
            self.results, complete=complete, started_at=self.started_at, finished_at=finished
        )

    def write(self, report: dict[str, Any]) -> None:
        if self.json_path:
            from pytest_llmbench.report.json_report import write_report

            write_report(self.json_path, report)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when != "teardown":  # the last phase carries every property the test added
            return
        added = False
        for key, value in report.user_properties:
            if key == USER_PROPERTY:
                data: dict[str, Any] = value if isinstance(value, dict) else json.loads(str(value))
                self.results.append(BenchmarkResult.from_dict(data))
                added = True
        if added:
            self.write(self.report(complete=False))

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        data = self.report(complete=exitstatus != pytest.ExitCode.INTERRUPTED)
        self.write(data)
        if self.html_path:
            from pytest_llmbench.report.html import write_html
            from pytest_llmbench.results import Report

            write_html(self.html_path, [Report.from_dict(data)])
        if self.plan is None or not self.plan.active:
            return
        from pytest_llmbench.errors import LLMBenchError
        from pytest_llmbench.results import Report

        try:
            self.outcome = self.plan.finish(Report.from_dict(data))
        except LLMBenchError as exc:  # e.g. mixed backends against the baseline
            from pytest_llmbench.baseline import Outcome

            self.outcome = Outcome((f"llmbench: {exc}",), exit_code=pytest.ExitCode.USAGE_ERROR)
        # A gated regression gets its own exit code, unless tests already failed (that wins).
        if self.outcome.exit_code and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = self.outcome.exit_code

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.results:
            from pytest_llmbench.report.terminal import render_summary

            terminalreporter.write_sep("=", "llmbench summary")
            for line in render_summary(self.results):
                terminalreporter.write_line(line)
            if self.json_path:
                terminalreporter.write_line(f"JSON report: {self.json_path}")
        if self.outcome is not None and self.outcome.lines:
            terminalreporter.write_sep("=", "llmbench comparison")
            for line in self.outcome.lines:
                terminalreporter.write_line(line)
