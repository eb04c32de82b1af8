"""`llmbench save REPORT [--name NAME]`: an existing report becomes a saved run, as --llm-save."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from pytest_llmbench.cli import main
from pytest_llmbench.gate.baseline import BaselinePlan
from pytest_llmbench.results import load_report
from tests.results.factories import H100, make_report, make_result, write


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    return main(list(argv), out=out), out.getvalue()


@pytest.fixture
def report(tmp_path: Path) -> Path:
    return write(tmp_path / "run.json", make_report([make_result()]))


def test_saved_run_is_what_llm_compare_finds(report: Path, tmp_path: Path) -> None:
    storage = tmp_path / "store"
    code, out = run("save", str(report), "--name", "before-upgrade", "--storage", str(storage))
    assert code == 0
    saved = storage / H100["machine_id"] / "0001_before-upgrade.json"
    assert out == f"saved {report} as {saved}\n"
    assert load_report(saved).results == load_report(report).results
    for compare in ("before-upgrade", "1", ""):  # by name, by number, the latest
        plan = BaselinePlan.create(compare=compare, storage_root=storage, machine=dict(H100))
        assert plan.history is not None and plan.history.sources == (str(saved),)


def test_runs_are_numbered_and_named_by_time_without_a_name(report: Path, tmp_path: Path) -> None:
    storage = str(tmp_path / "store")
    assert run("save", str(report), "--storage", storage)[0] == 0
    assert run("save", str(report), "--storage", storage)[0] == 0
    names = sorted(p.name for p in (tmp_path / "store" / H100["machine_id"]).iterdir())
    assert [n[:5] for n in names] == ["0001_", "0002_"]
    assert all(n[5:].startswith("20") and n.endswith(".json") for n in names)  # UTC time stamp


def test_bad_input_exits_2_in_one_line(
    report: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    storage = str(tmp_path / "store")
    assert run("save", str(report), "--name", "///", "--storage", storage)[0] == 2
    assert capsys.readouterr().err == (
        "llmbench save: error: --name: '///' has no usable characters (letters, digits, .-_)\n"
    )
    (tmp_path / "broken.json").write_text(json.dumps({"schema_version": 1}))
    assert run("save", str(tmp_path / "broken.json"), "--storage", storage)[0] == 2
    err = capsys.readouterr().err
    assert (
        err.startswith(f"llmbench save: error: {tmp_path / 'broken.json'}: ")
        and err.count("\n") == 1
    )
    assert not (tmp_path / "store").exists()  # nothing saved from bad input
