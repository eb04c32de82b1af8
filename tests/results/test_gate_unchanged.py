"""What users see of the gate stays the same on the recorded GPU runs (tests/data/gate/*.json).

tests/data/gate/expected-comparisons.json holds, for a fixed set of history/current splits of
every recorded data file, the full comparison (verdicts, bands, intervals, notes, exit code) and
the calibration profile, as the gate computed them before its statistics moved to scipy and its
modules into one package. Every comparison computed now must equal it: strings and verdicts
exactly, numbers within 1e-9 (relative). Regenerate only for an intended change of behaviour:

    python -m tests.results.test_gate_unchanged > tests/data/gate/expected-comparisons.json
"""

from __future__ import annotations

import json
import math
import random
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from pytest_llmbench.gate import compare, parse_fail_on
from tests.results.test_gate_real_data import DATA, records, report_of

EXPECTED = DATA / "expected-comparisons.json"
FILES = ("tiny-h100", "gpu-gate-h100", "gpu-gate-h200")
RULES = "energy_per_output_token:+5%,output_throughput:-3%"
TOLERANCE = 1e-9


def cases(name: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(case name, what it produced as JSON) for the fixed splits of one data file."""
    from pytest_llmbench.gate.calibrate import noise_profile
    from pytest_llmbench.gate.history import History

    clean, loaded = records(name)
    rules = parse_fail_on(RULES)
    reports = [report_of(r) for r in clean]
    # Histories growing one run at a time (short histories, then judged ones).
    for i in range(1, len(reports)):
        yield f"grow-{i}", compare(reports[:i], reports[i], rules).to_dict()
        yield (
            f"grow-{i}-bootstrap",
            compare(reports[:i], reports[i], rules, method="bootstrap").to_dict(),
        )
    # Every run beside a GPU load against the whole clean history.
    for record in loaded:
        yield f"loaded-{record['name']}", compare(reports, report_of(record), rules).to_dict()
    # Injected regressions and improvements of the newest run.
    for energy, throughput in ((1.10, 1.0), (1.0, 0.92), (0.9, 1.05)):
        current = report_of(clean[-1], energy=energy, throughput=throughput)
        yield (
            f"injected-{energy}-{throughput}",
            compare(reports[:-1], current, rules).to_dict(),
        )
    # A step of +8% J/token three runs before the end (the change-point path).
    k = max(len(clean) - 4, 1)
    stepped = [report_of(r, energy=1.08 if i >= k else 1.0) for i, r in enumerate(clean[:-1])]
    yield "step", compare(stepped, report_of(clean[-1], energy=1.08), rules).to_dict()
    # Random histories of up to 8 runs, seeded.
    rng = random.Random(2026)
    for trial in range(10):
        picked = rng.sample(reports, min(len(reports), 9))
        yield f"random-{trial}", compare(picked[:-1], picked[-1], rules).to_dict()
    history = History(tuple(reports), tuple(f"{name}-{i}.json" for i in range(len(reports))))
    yield "calibrate", {"rows": [row.to_dict() for row in noise_profile(history)]}


def computed() -> dict[str, dict[str, Any]]:
    return {name: dict(cases(name)) for name in FILES}


def differences(expected: Any, actual: Any, where: str = "") -> Iterator[str]:
    """Where ``actual`` differs from ``expected``: numbers beyond TOLERANCE, anything else."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        if expected.keys() != actual.keys():
            yield f"{where}: keys {sorted(expected)} != {sorted(actual)}"
            return
        for key in expected:
            yield from differences(expected[key], actual[key], f"{where}.{key}")
    elif isinstance(expected, list) and isinstance(actual, list):
        if len(expected) != len(actual):
            yield f"{where}: {len(expected)} items != {len(actual)}"
            return
        for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
            yield from differences(e, a, f"{where}[{i}]")
    elif (
        isinstance(expected, float)
        and isinstance(actual, (int, float))
        and not isinstance(actual, bool)
    ):
        if math.isnan(expected) and math.isnan(actual):
            return
        if not math.isclose(expected, actual, rel_tol=TOLERANCE, abs_tol=TOLERANCE):
            yield f"{where}: {expected!r} != {actual!r}"
    elif expected != actual:
        yield f"{where}: {expected!r} != {actual!r}"


@pytest.mark.parametrize("name", FILES)
def test_the_gate_judges_the_recorded_gpu_runs_as_it_always_did(name: str) -> None:
    expected = json.loads(EXPECTED.read_text())[name]
    actual = json.loads(json.dumps(dict(cases(name))))
    assert expected.keys() == actual.keys()
    found = [d for case in expected for d in differences(expected[case], actual[case], case)]
    assert not found, "\n".join(found[:20])


def test_the_expected_data_covers_every_verdict_that_matters() -> None:
    # The check above means something only if the data holds regressions, passes, short
    # histories and steps: a table of identical "ok" rows would prove little.
    data = json.loads(EXPECTED.read_text())
    verdicts = {
        row["verdict"]
        for cases_ in data.values()
        for case in cases_.values()
        for row in case.get("rows", [])
        if "verdict" in row
    }
    assert {"regression", "ok", "short-history", "improved"} <= verdicts
    codes = {case["exit_code"] for c in data.values() for case in c.values() if "exit_code" in case}
    assert codes == {0, 11}
    assert any(
        row["steps"]
        for c in data.values()
        for case in c.values()
        for row in case.get("rows", [])
        if "steps" in row
    )


if __name__ == "__main__":
    json.dump(computed(), sys.stdout, sort_keys=True)
    sys.stdout.write("\n")
