"""``--llm-fail-on`` rules: ``METRIC:[+|-]NUMBER[%]``, parsed into typed :class:`Rule` values."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pytest_llmbench.errors import ConfigError
from pytest_llmbench.metrics import DEFAULT_COMPARE_METRICS, METRICS, Metric, unknown_metric_message

OPTION = "--llm-fail-on"


# -- rules -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Rule:
    """One --llm-fail-on rule. ``threshold`` is a fraction (0.05) when relative, else in the
    metric's unit; ``sign`` is +1 when an increase is a regression, -1 when a decrease is."""

    metric: str
    threshold: float
    relative: bool
    sign: int

    @property
    def spec(self) -> Metric:
        return METRICS[self.metric]

    def __str__(self) -> str:
        sign = "+" if self.sign > 0 else "-"
        amount = f"{self.threshold * 100:g}%" if self.relative else f"{self.threshold:g}"
        return f"{self.metric}:{sign}{amount}"


_RULE = re.compile(
    r"^(?P<metric>[A-Za-z0-9_]+):(?P<sign>[+-]?)(?P<number>[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)(?P<pct>%?)$"
)


def parse_fail_on(text: str | Iterable[str], option: str = OPTION) -> tuple[Rule, ...]:
    """Parse rules from a comma-separated string (or several); ConfigError naming ``option``."""
    parts = [text] if isinstance(text, str) else list(text)
    items = [item.strip() for part in parts for item in part.split(",") if item.strip()]
    rules: list[Rule] = []
    for item in items:
        m = _RULE.match(item.replace(" ", ""))
        if not m:
            raise ConfigError(
                option,
                f"{item!r} is not METRIC:[+|-]NUMBER[%], e.g. 'energy_per_output_token:+5%' "
                "or 'ttft_s_p99:+0.05' (absolute, in the metric's unit)",
            )
        name = m["metric"]
        if name not in METRICS:
            raise ConfigError(option, unknown_metric_message(name))
        threshold = float(m["number"]) / (100.0 if m["pct"] else 1.0)
        sign = {"+": 1, "-": -1}.get(m["sign"], METRICS[name].worse_sign)
        rules.append(Rule(name, threshold, bool(m["pct"]), sign))
    return tuple(rules)


def rule_set(rules: Sequence[Rule], metrics: Sequence[str] | None) -> list[tuple[Rule, bool]]:
    """Gated rules, then shown-only metrics (threshold 0: the verdict says whether it is noise)."""
    shown = (
        list(metrics) if metrics is not None else ([] if rules else list(DEFAULT_COMPARE_METRICS))
    )
    out: list[tuple[Rule, bool]] = [(rule, True) for rule in rules]
    gated_metrics = {rule.metric for rule in rules}
    for name in shown:
        if name not in METRICS:
            raise ConfigError("metrics", unknown_metric_message(name))
        if name not in gated_metrics:
            out.append((Rule(name, 0.0, True, METRICS[name].worse_sign), False))
    return out
