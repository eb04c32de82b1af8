"""A session's baseline work: checked before any benchmark runs, compared and saved at the end.

The plugin builds one :class:`BaselinePlan` at configure time from ``--llm-compare``,
``--llm-history``, ``--llm-false-alarm-rate``, ``--llm-fail-on``, ``--llm-allow-mixed-backends``,
``--llm-save`` and ``--llm-autosave``, so that a bad rule, a missing or corrupt baseline fails in
a second (as a usage error) rather than after an hour of benchmarks; at session end,
:meth:`BaselinePlan.finish` compares and saves the report. The history is read before the
current run is saved, so it never contains this run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_llmbench.errors import ConfigError
from pytest_llmbench.gate.comparing import compare_with_history
from pytest_llmbench.gate.comparison import Comparison
from pytest_llmbench.gate.history import DEFAULT_HISTORY_RUNS, History, resolve_history
from pytest_llmbench.gate.rules import Rule, parse_fail_on
from pytest_llmbench.gate.storage import DEFAULT_ROOT, Storage, autosave_name
from pytest_llmbench.gate.verdicts import DEFAULT_FALSE_ALARM_RATE
from pytest_llmbench.report.json_report import write_report
from pytest_llmbench.results import Report


@dataclass(frozen=True)
class Outcome:
    """What the end of a session produced: lines for the terminal summary and an exit status."""

    lines: tuple[str, ...] = ()
    exit_code: int = 0  # 0, gate.EXIT_REGRESSION or gate.EXIT_UNMEASURED
    saved: Path | None = None
    comparison: Comparison | None = None


@dataclass(frozen=True)
class BaselinePlan:
    rules: tuple[Rule, ...] = ()
    history: History | None = None
    allow_mixed: bool = False
    save_name: str | None = None
    autosave: bool = False
    storage: Storage = field(default_factory=Storage)
    false_alarm_rate: float = DEFAULT_FALSE_ALARM_RATE
    allow_unmeasured: bool = False

    @property
    def active(self) -> bool:
        return bool(self.history is not None or self.save_name or self.autosave)

    @classmethod
    def create(
        cls,
        *,
        compare: str | Sequence[str] | None = None,
        fail_on: str | Sequence[str] | None = None,
        allow_mixed: bool = False,
        save: str | None = None,
        autosave: bool = False,
        storage_root: str | Path = DEFAULT_ROOT,
        machine: dict[str, Any] | None = None,
        history_runs: int = DEFAULT_HISTORY_RUNS,
        false_alarm_rate: float = DEFAULT_FALSE_ALARM_RATE,
        allow_unmeasured: bool = False,
    ) -> BaselinePlan:
        """``compare``: None (option absent), or values: ``""`` (given without a value: the
        last ``history_runs`` saved runs), report paths, folders, globs, saved run numbers or
        names. Raises ConfigError, StorageError or ReportError, each one line naming the option
        or file."""
        rules = parse_fail_on(fail_on) if fail_on else ()
        if rules and compare is None:
            raise ConfigError("--llm-fail-on", "needs a baseline: add --llm-compare [BASELINE]")
        if history_runs < 1:
            raise ConfigError("--llm-history", f"{history_runs} is not >= 1")
        if not 0.0 < false_alarm_rate < 1.0:
            raise ConfigError(
                "--llm-false-alarm-rate", f"{false_alarm_rate:g} is not within (0, 1)"
            )
        if machine is None:
            from pytest_llmbench.environment import cached_machine_info

            machine = cached_machine_info()
        storage = Storage(storage_root, str(machine.get("machine_id") or "unknown"))
        history: History | None = None
        if compare is not None:
            values = [compare] if isinstance(compare, str) else list(compare)
            history = resolve_history(
                values,
                storage_runs=[run.path for run in storage.runs()],
                saved=storage.resolve,
                max_runs=history_runs,
            )
        return cls(
            rules, history, allow_mixed, save, autosave, storage, false_alarm_rate, allow_unmeasured
        )

    def finish(self, report: Report, json_path: str | None = None) -> Outcome:
        """Compare ``report`` with the history (if any), then save it (if asked). The JSON
        report at ``json_path`` gains the comparison section."""
        lines: list[str] = []
        comparison: Comparison | None = None
        data = report.to_dict()
        if self.history is not None:
            comparison = compare_with_history(
                report,
                self.history,
                self.rules,
                allow_mixed=self.allow_mixed,
                false_alarm_rate=self.false_alarm_rate,
                allow_unmeasured=self.allow_unmeasured,
            )
            lines += comparison.lines()
            data["comparison"] = comparison.to_dict()
            if json_path:
                try:
                    write_report(json_path, data)
                except OSError as exc:  # the report without its comparison stays on disk
                    lines.append(f"llmbench: could not add the comparison to {json_path}: {exc}")
        saved = None
        if self.save_name or self.autosave:
            from pytest_llmbench.results import report_json

            name = self.save_name or autosave_name(report.machine)
            text = report_json(data)
            saved = self.storage.save(text, name)
            lines.append(f"saved: {saved}")
        exit_code = comparison.exit_code if comparison else 0
        return Outcome(tuple(lines), exit_code, saved, comparison)
