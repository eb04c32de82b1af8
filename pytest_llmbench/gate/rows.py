"""One line of a comparison (:class:`Row`) and a step found in a metric's history."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pytest_llmbench.gate.noise import NoiseModel
from pytest_llmbench.gate.rules import Rule
from pytest_llmbench.gate.verdicts import Verdict
from pytest_llmbench.stats import Interval


@dataclass(frozen=True)
class HistoryStep:
    """A step in a metric's history: the runs from ``run`` on differ from the runs before.

    ``change`` is relative (0.08 = +8%); ``better`` says whether the step went the metric's
    better way (an improvement starts a new baseline; a step the other way is unexplained)."""

    run: str  # the first run after the step (report file name, else its start time)
    index: int  # its position in the history, 0 = oldest
    change: float
    better: bool
    p_value: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "run": self.run,
            "index": self.index,
            "change": self.change,
            "better": self.better,
            "p_value": self.p_value,
        }


@dataclass(frozen=True)
class Row:
    """One line of the comparison: a metric of a matched result, or a result without partner."""

    test_id: str
    backend: str
    metric: str | None
    verdict: Verdict
    baseline: float | None = None  # mean of the history's run means, metric's unit
    current: float | None = None  # mean over the current run's repetitions
    change: float | None = None  # relative (0.1 = +10%) for relative rules, else absolute
    relative: bool = True
    rule: Rule | None = None  # None: shown, not gated
    detail: str = ""
    runs: int = 0  # history runs that had this metric
    band: float | None = None  # noise band, on the change's scale (inf: cannot be bounded)
    interval: Interval | None = None  # within-run interval, shown when the history is short
    noise: NoiseModel | None = None
    alpha: float | None = None  # one-sided level of this row's band
    steps: tuple[HistoryStep, ...] = ()  # steps found in the history's run means, oldest first
    gate_workload: bool = False  # the current run already used the gpu-gate preset's settings

    @property
    def gated(self) -> bool:
        return self.rule is not None

    @property
    def detectable(self) -> float | None:
        """The smallest change this row would flag: the larger of threshold and noise band."""
        if self.band is None:
            return None
        return max(self.rule.threshold if self.rule else 0.0, self.band)

    @property
    def undetectable(self) -> bool:
        """A gated rule whose threshold lies inside the noise: it flags only larger changes."""
        return bool(self.rule and self.band is not None and self.band > self.rule.threshold)

    @property
    def fails(self) -> bool:
        return self.gated and self.verdict in (Verdict.REGRESSION, Verdict.UNMEASURED)

    def to_dict(self) -> dict[str, Any]:
        return {
            "test_id": self.test_id,
            "backend": self.backend,
            "metric": self.metric,
            "verdict": self.verdict.value,
            "baseline": self.baseline,
            "current": self.current,
            "change": self.change,
            "relative": self.relative,
            "history_runs": self.runs,
            "band": self.band,
            "detectable": self.detectable,
            "alpha": self.alpha,
            "interval": self.interval.to_dict() if self.interval else None,
            "noise": self.noise.to_dict() if self.noise else None,
            "steps": [step.to_dict() for step in self.steps],
            "rule": str(self.rule) if self.rule else None,
            "detail": self.detail,
        }
