"""What the gate can say about a row, and the exit statuses a failed gate ends a run with."""

from __future__ import annotations

from enum import Enum

EXIT_REGRESSION = 11
"""Exit status when a gated metric regressed: distinct from pytest's 0-5 and from usage errors
(``llmbench`` exits 2, pytest 4), so CI can tell "slower" from "broken"."""
EXIT_UNMEASURED = 12
"""Exit status when a gated metric could not be measured in the current run (e.g. an energy rule
where energy is unavailable): the gate cannot vouch for it, and must not pass in silence."""
DEFAULT_FALSE_ALARM_RATE = 0.005
"""Design probability that unchanged code fails the gate of one run (family-wise, all gated
rows). Half of the 1% we promise: the t band is exact only for normal run-to-run noise, and
real runs have heavier tails (a first run on a cold machine); docs/ci.md has the rates measured
by resampling GPU re-runs."""


class Verdict(str, Enum):
    OK = "ok"
    IMPROVED = "improved"
    REGRESSION = "regression"
    WITHIN_NOISE = "within-noise"
    MISSING_IN_BASELINE = "missing-in-baseline"
    MISSING_IN_CURRENT = "missing-in-current"
    BACKEND_MISMATCH = "backend-mismatch"
    GPU_MISMATCH = "gpu-mismatch"
    SCHEMA_MISMATCH = "schema-mismatch"
    ENERGY_UNAVAILABLE = "energy-unavailable"  # a shown energy metric this run did not measure
    UNMEASURED = "unmeasured"  # a gated metric this run could not measure: fails the gate
    SHORT_HISTORY = "short-history"  # too few history runs to know the between-run spread
    WORSE = "worse"  # a shown (not gated) metric beyond the noise band, worse
    BETTER = "better"  # a shown (not gated) metric beyond the noise band, better
