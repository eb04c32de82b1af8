"""The outcome of comparing a run with its history: rows, notes, the exit status, the text."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pytest_llmbench.gate.render import (
    band_text,
    change_text,
    failures,
    row_notes,
    rule_text,
    runs_text,
    short_test,
    table,
)
from pytest_llmbench.gate.rows import Row
from pytest_llmbench.gate.verdicts import (
    DEFAULT_FALSE_ALARM_RATE,
    EXIT_REGRESSION,
    EXIT_UNMEASURED,
    Verdict,
)


@dataclass(frozen=True)
class Comparison:
    rows: tuple[Row, ...]
    baseline_source: str = "baseline"
    notes: tuple[str, ...] = ()
    mixed_backends: bool = False
    history_runs: int = 1
    false_alarm_rate: float = DEFAULT_FALSE_ALARM_RATE
    allow_unmeasured: bool = False  # --llm-allow-unmeasured: e.g. energy rules on CPU runners

    @property
    def regressions(self) -> list[Row]:
        return [r for r in self.rows if r.gated and r.verdict is Verdict.REGRESSION]

    @property
    def unmeasured(self) -> list[Row]:
        """Gated rows the current run could not measure (energy unavailable here)."""
        if self.allow_unmeasured:
            return []
        return [r for r in self.rows if r.gated and r.verdict is Verdict.UNMEASURED]

    @property
    def failed(self) -> bool:
        return bool(self.regressions or self.unmeasured)

    @property
    def exit_code(self) -> int:
        if self.regressions:
            return EXIT_REGRESSION
        return EXIT_UNMEASURED if self.unmeasured else 0

    def counts(self) -> dict[str, int]:
        """Verdicts of gated rows (shown-only rows are counted apart, as "shown")."""
        out: dict[str, int] = {}
        for row in self.rows:
            key = row.verdict.value if row.gated or row.metric is None else "shown"
            out[key] = out.get(key, 0) + 1
        return out

    def summary_line(self) -> str:
        counts = ", ".join(f"{n} {v}" for v, n in sorted(self.counts().items()))
        against = f"{self.baseline_source} ({runs_text(self.history_runs)})"
        if self.regressions:
            return (
                f"llmbench gate FAILED against {against}: {failures(self.regressions)} "
                f"regressed [{counts}]"
            )
        if self.unmeasured:
            return (
                f"llmbench gate FAILED against {against}: {failures(self.unmeasured)} could "
                f"not be measured in this run [{counts}]; if this machine cannot measure them "
                "(e.g. energy on a CPU runner), add --llm-allow-unmeasured (llmbench compare: "
                "--allow-unmeasured) to let them pass; else see why in the notes above"
            )
        return f"llmbench gate passed against {against} [{counts or 'nothing compared'}]"

    def failure_lines(self) -> list[str]:
        """One line per failing row, short enough to read in a CI log."""
        out = []
        for r in self.regressions:
            out.append(
                f"  regression: {short_test(r.test_id)} {r.metric} "
                f"{change_text(r.change, r.relative)} (noise band {band_text(r)}, rule "
                f"{rule_text(r)})"
            )
        for r in self.unmeasured:
            why = f" ({r.detail})" if r.detail and r.detail != "current run" else ""
            out.append(f"  not measured: {short_test(r.test_id)} {r.metric}{why}")
        return out

    def table(self) -> str:
        return table(self.rows)

    def lines(self) -> list[str]:
        """What the terminal summary and ``llmbench compare`` print."""
        out = [f"baseline: {self.baseline_source} ({runs_text(self.history_runs)})"]
        out += [f"note: {n}" for n in self.notes]
        if self.rows:
            out.append(self.table())
        out += [f"note: {n}" for n in row_notes(self.rows)]
        out.append(self.summary_line())
        out += self.failure_lines()
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "baseline": self.baseline_source,
            "history_runs": self.history_runs,
            "false_alarm_rate": self.false_alarm_rate,
            "allow_unmeasured": self.allow_unmeasured,
            "failed": self.failed,
            "exit_code": self.exit_code,
            "mixed_backends": self.mixed_backends,
            "notes": list(self.notes) + row_notes(self.rows),
            "rows": [r.to_dict() for r in self.rows],
        }
