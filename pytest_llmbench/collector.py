"""Gathering results where the session ends: the plain session or the xdist controller.

Results ride on each test report's ``user_properties`` (which xdist serialises from workers), so
no side channel is needed. The JSON report is rewritten after every result, so an interrupted or
crashed session still leaves every completed result on disk.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_llmbench.errors import ConfigError
from pytest_llmbench.quality.probe import PROBE_PROPERTY, ProbeOutput
from pytest_llmbench.results import USER_PROPERTY, BenchmarkResult

if TYPE_CHECKING:
    from pytest_llmbench.gate.baseline import BaselinePlan, Outcome


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class ReportWriteWarning(UserWarning):
    """The JSON report could not be rewritten; the previous file is kept as it was."""


def check_writable(path: str, option: str) -> None:
    """ConfigError naming ``option`` unless a file can be created at ``path`` (missing folders
    are created, as the write will).

    Checked before any benchmark runs, by creating (and removing) a file beside it, so that an
    hour of measurements is never lost to a typo or a read-only folder at the end. Every output
    the session writes at its end (``--llm-json``, ``--llm-html``) is checked here.
    """
    target = Path(path)
    if target.is_dir():
        raise ConfigError(option, f"{path} is a directory; give a file name")
    for parent in target.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(option, f"cannot write {path}: {parent} is a file")
            break
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ConfigError(option, f"cannot write {path}: {reason}") from None


class ResultCollector:
    PLUGIN_NAME = "llmbench-collector"

    def __init__(
        self, json_path: str | None, plan: BaselinePlan | None = None, html_path: str | None = None
    ) -> None:
        self.json_path = json_path
        self.html_path = html_path
        self.plan = plan
        self.results: list[BenchmarkResult] = []
        self.probes: list[ProbeOutput] = []  # one per engine started in this session (or worker)
        self.started_at = _now()
        self.outcome: Outcome | None = None
        self.write_error: str | None = None  # why the last write failed; None once one succeeds

    def report(self, *, complete: bool) -> dict[str, Any]:
        from pytest_llmbench.quality.agreement import agreement_section
        from pytest_llmbench.report.json_report import build_report

        finished = _now() if complete else None
        return build_report(
            self.results,
            complete=complete,
            started_at=self.started_at,
            finished_at=finished,
            agreement=agreement_section(self.probes),
        )

    def write(self, report: dict[str, Any]) -> bool:
        """Rewrite the report atomically; on failure (disk full, ...) keep the previous file."""
        if not self.json_path:
            return True
        from pytest_llmbench.report.json_report import write_report

        try:
            write_report(self.json_path, report)
        except OSError as exc:
            self.write_error = (
                f"llmbench: could not write the JSON report {self.json_path}: "
                f"{exc.strerror or exc}; the previous file is kept unchanged"
            )
            warnings.warn(ReportWriteWarning(self.write_error), stacklevel=2)
            return False
        self.write_error = None
        return True

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when != "teardown":  # the last phase carries every property the test added
            return
        added = False
        for key, value in report.user_properties:
            if key not in (USER_PROPERTY, PROBE_PROPERTY):
                continue
            data: dict[str, Any] = value if isinstance(value, dict) else json.loads(str(value))
            if key == USER_PROPERTY:
                self.results.append(BenchmarkResult.from_dict(data))
            else:
                self.probes.append(ProbeOutput.from_dict(data))
            added = True
        if added:
            self.write(self.report(complete=False))

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        data = self.report(complete=exitstatus != pytest.ExitCode.INTERRUPTED)
        if not self.write(data) and session.exitstatus == pytest.ExitCode.OK:
            # The report a user asked for is missing or stale: the run must not look green.
            session.exitstatus = pytest.ExitCode.INTERNAL_ERROR
        try:
            self._compare(session, data)
        finally:
            if self.html_path:  # after the comparison: the page shows its verdicts
                from pytest_llmbench.report.html import write_html
                from pytest_llmbench.results import Report

                comparison = self.outcome.comparison if self.outcome is not None else None
                if comparison is not None:
                    data = {**data, "comparison": comparison.to_dict()}
                write_html(self.html_path, [Report.from_dict(data)])

    def _compare(self, session: pytest.Session, data: dict[str, Any]) -> None:
        if self.plan is None or not self.plan.active:
            return
        from pytest_llmbench.errors import LLMBenchError
        from pytest_llmbench.results import Report

        try:
            self.outcome = self.plan.finish(Report.from_dict(data), self.json_path)
        except LLMBenchError as exc:  # e.g. mixed backends against the baseline
            from pytest_llmbench.gate.baseline import Outcome

            self.outcome = Outcome((f"llmbench: {exc}",), exit_code=pytest.ExitCode.USAGE_ERROR)
        # A gated regression gets its own exit code, unless tests already failed (that wins).
        if self.outcome.exit_code and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = self.outcome.exit_code

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.results or self.probes:
            from pytest_llmbench.quality.agreement import agreement_section
            from pytest_llmbench.report.terminal import render_agreement, render_summary

            terminalreporter.write_sep("=", "llmbench summary")
            for line in render_summary(self.results):
                terminalreporter.write_line(line)
            for line in render_agreement(agreement_section(self.probes)):
                terminalreporter.write_line(line)
            if self.json_path and self.write_error is None:
                terminalreporter.write_line(f"JSON report: {self.json_path}")
        if self.write_error is not None:
            terminalreporter.write_line(self.write_error, red=True, bold=True)
        if self.outcome is not None and self.outcome.lines:
            # Only a comparison (or its error) gets a section; a save alone is one line, as the
            # JSON report's path is.
            if self.outcome.comparison is not None or self.outcome.exit_code:
                terminalreporter.write_sep("=", "llmbench comparison")
            for line in self.outcome.lines:
                terminalreporter.write_line(line)
