"""The session's baseline plan: fails fast on bad input, compares, then saves."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_llmbench.baseline import BaselinePlan
from pytest_llmbench.errors import ConfigError, ReportError, StorageError
from pytest_llmbench.gate import EXIT_REGRESSION, Verdict
from tests.results.factories import H100, make_report, make_result, noisy, write

RULE = "energy_per_output_token:+5%"


def plan(tmp_path: Path, **kwargs: object) -> BaselinePlan:
    return BaselinePlan.create(storage_root=tmp_path / ".llmbench", machine=H100, **kwargs)  # type: ignore[arg-type]


def test_fail_on_needs_a_baseline(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="^--llm-fail-on: needs a baseline: add --llm-compare"):
        plan(tmp_path, fail_on=RULE)


def test_bad_input_fails_before_any_benchmark(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown metric"):
        plan(tmp_path, compare="", fail_on="joules:+1%")
    with pytest.raises(StorageError, match="no saved runs"):
        plan(tmp_path, compare="")
    broken = tmp_path / "base.json"
    broken.write_text('{"schema_version": 1, "results": [')
    with pytest.raises(ReportError, match="base.json: truncated JSON"):
        plan(tmp_path, compare=str(broken))


def test_regression_against_a_file_exits_11(tmp_path: Path) -> None:
    base = write(
        tmp_path / "b.json", make_report([make_result(energy_per_token=noisy(0.5, 0.01, 5, 1))])
    )
    p = plan(tmp_path, compare=str(base), fail_on=RULE)
    outcome = p.finish(make_report([make_result(energy_per_token=noisy(0.55, 0.01, 5, 2))]))
    assert outcome.exit_code == EXIT_REGRESSION
    assert outcome.lines[0] == f"baseline: {base}" and "FAILED" in outcome.lines[-1]
    assert outcome.saved is None


def test_latest_saved_run_is_the_baseline_and_this_run_is_saved_after(tmp_path: Path) -> None:
    first = plan(tmp_path, save="first").finish(make_report([make_result()]))
    assert first.saved is not None and first.saved.name == "0001_first.json"
    assert first.saved.parent.name == H100["machine_id"]
    second = plan(tmp_path, compare="", fail_on=RULE, autosave=True)
    assert second.baseline_path == first.saved
    outcome = second.finish(make_report([make_result()]))
    assert outcome.exit_code == 0 and outcome.comparison is not None
    assert {r.verdict for r in outcome.comparison.rows} == {Verdict.OK}
    assert outcome.saved is not None and outcome.saved.name.startswith("0002_")
    assert outcome.lines[-1] == f"saved: {outcome.saved}"


def test_other_schema_version_gives_schema_mismatch_not_an_error(tmp_path: Path) -> None:
    base = tmp_path / "v2.json"
    base.write_text(json.dumps({"schema_version": 2}))
    outcome = plan(tmp_path, compare=str(base), fail_on=RULE).finish(make_report([make_result()]))
    assert outcome.exit_code == 0 and outcome.comparison is not None
    assert [r.verdict for r in outcome.comparison.rows] == [Verdict.SCHEMA_MISMATCH]


def test_nothing_asked_nothing_done(tmp_path: Path) -> None:
    p = plan(tmp_path)
    assert not p.active
    assert p.finish(make_report([make_result()])).lines == ()
