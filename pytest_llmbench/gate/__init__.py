"""The gate: a run compared with its baseline history; the build fails on --llm-fail-on rules.

A rule is ``METRIC:[+|-]NUMBER[%]``; several are separated by commas, e.g.
``energy_per_output_token:+5%,output_throughput:-3%``. The sign names the direction that is a
regression (``+``: an increase); without a sign, the metric's worse direction is used (an
increase for latency and energy, a decrease for throughput). With ``%`` the threshold is
relative to the history mean; without it, it is absolute in the metric's unit
(``ttft_s_p99:+0.05`` fails when TTFT p99 grows by more than 50 ms).

The baseline is a *history* of earlier runs (one report is a history of one). A change is a
**regression** only when it exceeds the rule's threshold *and* the noise band: the one-sided
prediction band of a new run given the history's run-level spread and the current run's own
repetitions (:mod:`pytest_llmbench.gate.noise`). The band's level is the family-wise false-alarm
rate (designed at 0.5%, measured under 1%) divided among the gated comparisons, so unchanged code
fails a whole run at most that often. With fewer than
:data:`~pytest_llmbench.gate.noise.MIN_HISTORY_RUNS` history runs the between-run spread is
unknown: such rows are ``short-history``, show the within-run interval, and never fail the build.

Results are matched by test id + backend + model + workload; the model is matched by the last
component of its path, so a cached model whose folder differs between runners still matches.

The package, one concern per module (docs/architecture.md draws it):

- :mod:`.rules` parses rules; :mod:`.verdicts` names verdicts and exit statuses;
- :mod:`.history` reads the baseline history, :mod:`.storage` the saved runs;
- :mod:`.changepoint` finds steps in a history, :mod:`.noise` models its spread;
- :mod:`.matching` pairs results across runs, :mod:`.judge` judges one metric,
  :mod:`.comparing` builds a :class:`Comparison` (:mod:`.comparison`, :mod:`.rows`);
- :mod:`.render` writes comparisons as text; :mod:`.calibrate` profiles noise;
- :mod:`.baseline` is a session's baseline work (check at start, compare and save at the end).

It imports no engine code: judging a run needs only its report.
"""

from __future__ import annotations

from pytest_llmbench.gate.comparing import compare, compare_with_file, compare_with_history
from pytest_llmbench.gate.comparison import Comparison
from pytest_llmbench.gate.judge import history_steps, judge, judge_history
from pytest_llmbench.gate.matching import PAIR_TEST_ID, match_key, model_key, pair_key, workload_key
from pytest_llmbench.gate.preset import GATE_PRESET, uses_gate_preset
from pytest_llmbench.gate.render import RECOMMENDED_HISTORY_RUNS
from pytest_llmbench.gate.rows import HistoryStep, Row
from pytest_llmbench.gate.rules import OPTION, Rule, parse_fail_on
from pytest_llmbench.gate.verdicts import (
    DEFAULT_FALSE_ALARM_RATE,
    EXIT_REGRESSION,
    EXIT_UNMEASURED,
    Verdict,
)

__all__ = [
    "DEFAULT_FALSE_ALARM_RATE",
    "EXIT_REGRESSION",
    "EXIT_UNMEASURED",
    "GATE_PRESET",
    "OPTION",
    "PAIR_TEST_ID",
    "RECOMMENDED_HISTORY_RUNS",
    "Comparison",
    "HistoryStep",
    "Row",
    "Rule",
    "Verdict",
    "compare",
    "compare_with_file",
    "compare_with_history",
    "history_steps",
    "judge",
    "judge_history",
    "match_key",
    "model_key",
    "pair_key",
    "parse_fail_on",
    "uses_gate_preset",
    "workload_key",
]
