"""A session's baseline work: checked before any benchmark runs, compared and saved at the end.

The plugin builds one :class:`BaselinePlan` at configure time from ``--llm-compare``,
``--llm-fail-on``, ``--llm-allow-mixed-backends``, ``--llm-save`` and ``--llm-autosave``, so that
a bad rule, a missing or corrupt baseline fails in a second (as a usage error) rather than after
an hour of benchmarks; at session end, :meth:`BaselinePlan.finish` compares and saves the report.
The baseline is resolved before the current run is saved, so "the latest" is never this run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_llmbench.errors import ConfigError
from pytest_llmbench.gate import Comparison, Rule, compare, parse_fail_on
from pytest_llmbench.results import SCHEMA_VERSION, Report, read_report_data
from pytest_llmbench.storage import DEFAULT_ROOT, Storage, autosave_name


@dataclass(frozen=True)
class Outcome:
    """What the end of a session produced: lines for the terminal summary and an exit status."""

    lines: tuple[str, ...] = ()
    exit_code: int = 0  # 0 or gate.EXIT_REGRESSION
    saved: Path | None = None
    comparison: Comparison | None = None


@dataclass(frozen=True)
class BaselinePlan:
    rules: tuple[Rule, ...] = ()
    baseline_path: Path | None = None
    baseline: Report | None = None
    allow_mixed: bool = False
    save_name: str | None = None
    autosave: bool = False
    storage: Storage = field(default_factory=Storage)

    @property
    def active(self) -> bool:
        return bool(self.baseline_path or self.save_name or self.autosave)

    @classmethod
    def create(
        cls,
        *,
        compare: str | None = None,
        fail_on: str | Sequence[str] | None = None,
        allow_mixed: bool = False,
        save: str | None = None,
        autosave: bool = False,
        storage_root: str | Path = DEFAULT_ROOT,
        machine: dict[str, Any] | None = None,
    ) -> BaselinePlan:
        """``compare``: None (option absent), ``""`` (given without a value: the latest saved
        run) or a path / saved run number / name. Raises ConfigError, StorageError or
        ReportError, each one line naming the option or file."""
        rules = parse_fail_on(fail_on) if fail_on else ()
        if rules and compare is None:
            raise ConfigError("--llm-fail-on", "needs a baseline: add --llm-compare [BASELINE]")
        if machine is None:
            from pytest_llmbench.environment import cached_machine_info

            machine = cached_machine_info()
        storage = Storage(storage_root, str(machine.get("machine_id") or "unknown"))
        path = storage.resolve(compare) if compare is not None else None
        baseline: Report | None = None
        if path is not None:
            data = read_report_data(path)
            # another schema version is not an error: finish() reports schema-mismatch rows
            if data.get("schema_version") == SCHEMA_VERSION:
                baseline = Report.from_dict(data, source=str(path))
        return cls(rules, path, baseline, allow_mixed, save, autosave, storage)

    def finish(self, report: Report) -> Outcome:
        """Compare ``report`` with the baseline (if any), then save it (if asked)."""
        lines: list[str] = []
        comparison: Comparison | None = None
        if self.baseline_path is not None:
            if self.baseline is None:
                from pytest_llmbench.gate import compare_with_file

                comparison = compare_with_file(report, self.baseline_path, self.rules)
            else:
                comparison = compare(
                    self.baseline,
                    report,
                    self.rules,
                    allow_mixed=self.allow_mixed,
                    baseline_source=str(self.baseline_path),
                )
            lines += comparison.lines()
        saved = None
        if self.save_name or self.autosave:
            name = self.save_name or autosave_name(report.machine)
            saved = self.storage.save(report.to_json(), name)
            lines.append(f"saved: {saved}")
        exit_code = comparison.exit_code if comparison else 0
        return Outcome(tuple(lines), exit_code, saved, comparison)
