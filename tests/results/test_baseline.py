"""The session's baseline plan: fails fast on bad input, compares, then saves."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_llmbench.errors import ConfigError, ReportError, StorageError
from pytest_llmbench.gate import EXIT_REGRESSION, Verdict
from pytest_llmbench.gate.baseline import BaselinePlan
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


def test_a_missing_folder_is_called_a_missing_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StorageError) as info:
        plan(tmp_path, compare="history/")
    assert str(info.value) == "--llm-compare: history/: no such folder"
    # Without the slash it may be a saved run's name: the error says it is none of the three.
    with pytest.raises(StorageError, match="^--llm-compare: no file or folder 'history', and no "):
        plan(tmp_path, compare="history")


def _runs(folder: Path, n: int) -> Path:
    folder.mkdir()
    for i in range(n):
        report = make_report(
            [make_result(energy_per_token=noisy(0.5, 0.01, 5, 10 + i))],
            started_at=f"2025-01-01T00:{i:02d}:00.000+00:00",
        )
        write(folder / f"run{i}.json", report)
    return folder


def test_regression_against_a_history_folder_exits_11_and_lands_in_the_json(
    tmp_path: Path,
) -> None:
    history = _runs(tmp_path / "history", 6)
    p = plan(tmp_path, compare=str(history), fail_on=RULE)
    assert p.history is not None and p.history.runs == 6
    report_path = tmp_path / "report.json"
    current = make_report([make_result(energy_per_token=noisy(0.55, 0.01, 5, 2))])
    outcome = p.finish(current, str(report_path))
    assert outcome.exit_code == EXIT_REGRESSION
    assert outcome.lines[0] == f"baseline: {history} (6 runs)"
    assert any(line.startswith("llmbench gate FAILED") for line in outcome.lines)
    assert outcome.saved is None
    data = json.loads(report_path.read_text())
    assert data["comparison"]["exit_code"] == EXIT_REGRESSION
    assert data["comparison"]["rows"][0]["verdict"] == "regression"


def test_history_runs_keeps_the_newest(tmp_path: Path) -> None:
    history = _runs(tmp_path / "history", 6)
    p = plan(tmp_path, compare=str(history), history_runs=4)
    assert p.history is not None
    assert [Path(s).name for s in p.history.sources] == [
        "run2.json",
        "run3.json",
        "run4.json",
        "run5.json",
    ]


def test_saved_runs_are_the_history_and_this_run_is_saved_after(tmp_path: Path) -> None:
    first = plan(tmp_path, save="first").finish(make_report([make_result()]))
    assert first.saved is not None and first.saved.name == "0001_first.json"
    assert first.saved.parent.name == H100["machine_id"]
    second = plan(tmp_path, compare="", fail_on=RULE, autosave=True)
    assert second.history is not None and second.history.sources == (str(first.saved),)
    outcome = second.finish(make_report([make_result()]))
    assert outcome.exit_code == 0 and outcome.comparison is not None
    assert {r.verdict for r in outcome.comparison.rows} == {Verdict.SHORT_HISTORY}
    assert outcome.saved is not None and outcome.saved.name.startswith("0002_")
    assert outcome.lines[-1] == f"saved: {outcome.saved}"
    third = plan(tmp_path, compare=["", str(first.saved)])  # storage and a file: one history
    assert third.history is not None and third.history.runs == 2


@pytest.mark.parametrize(
    ("make", "message"),
    [
        ("empty", "the folder holds no .json reports"),
        ("pattern", "the pattern matches no files"),
        ("backends", "the history mixes backends (pytorch: run0.json; vllm: other.json)"),
        ("gpus", "the history mixes GPUs (NVIDIA H100: run0.json; NVIDIA H200: other.json)"),
    ],
)
def test_unusable_histories_are_one_line_errors_naming_the_files(
    tmp_path: Path, make: str, message: str
) -> None:
    folder = tmp_path / "history"
    folder.mkdir()
    value = str(folder)
    if make == "pattern":
        value = str(folder / "nothing-*.json")
    if make in ("backends", "gpus"):
        write(folder / "run0.json", make_report([make_result()]))
        other = make_result(backend="vllm") if make == "backends" else make_result()
        machine = None
        if make == "gpus":
            other = make_result()
            device = {"index": 0, "name": "NVIDIA H200", "uuid": "GPU-2"}
            machine = {**H100, "gpus": {"available": True, "devices": [device]}}
        later = "2025-02-01T00:00:00+00:00"
        write(folder / "other.json", make_report([other], machine, started_at=later))
    with pytest.raises((StorageError, ReportError)) as info:
        plan(tmp_path, compare=value)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_a_history_of_two_configs_loads_as_one_folder(tmp_path: Path) -> None:
    # The workflow's history after an edited config or a plugin release with a new key: each
    # benchmark is judged against the runs of its own config (tests/results/test_gate.py).
    folder = tmp_path / "history"
    folder.mkdir()
    write(folder / "run0.json", make_report([make_result()]))
    later = "2025-02-01T00:00:00+00:00"
    write(folder / "run1.json", make_report([make_result(config_hash="x")], started_at=later))
    history = plan(tmp_path, compare=str(folder)).history
    assert history is not None and history.runs == 2


def test_other_schema_version_gives_schema_mismatch_not_an_error(tmp_path: Path) -> None:
    base = tmp_path / "v99.json"
    base.write_text(json.dumps({"schema_version": 99}))
    outcome = plan(tmp_path, compare=str(base), fail_on=RULE).finish(make_report([make_result()]))
    assert outcome.exit_code == 0 and outcome.comparison is not None
    assert [r.verdict for r in outcome.comparison.rows] == [Verdict.SCHEMA_MISMATCH]


def test_nothing_asked_nothing_done(tmp_path: Path) -> None:
    p = plan(tmp_path)
    assert not p.active
    assert p.finish(make_report([make_result()])).lines == ()
