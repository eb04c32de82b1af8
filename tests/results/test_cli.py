"""`llmbench` in-process: output and exit codes (0 ok, 11 regression, 2 bad input)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from pytest_llmbench.cli import main
from pytest_llmbench.results import load_report
from tests.results.factories import make_report, make_result, noisy, write

MIXED = (
    "Mixed backends detected: pytorch, vllm. Aggregating results from different backends "
    "produces statistically invalid comparisons."
)


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    return main(list(argv), out=out), out.getvalue()


@pytest.fixture
def reports(tmp_path: Path) -> dict[str, str]:
    def save(name: str, *results: object) -> str:
        return str(write(tmp_path / f"{name}.json", make_report(list(results))))  # type: ignore[arg-type]

    history = tmp_path / "history"
    history.mkdir()
    for i in range(10):
        write(
            history / f"run{i:02d}.json",
            make_report(
                [make_result(energy_per_token=noisy(0.5, 0.01, 5, 100 + i))],
                started_at=f"2025-01-01T00:{i:02d}:00.000+00:00",
            ),
        )
    return {
        "history": str(history),
        "base": save("base", make_result(energy_per_token=noisy(0.5, 0.01, 5, 1))),
        "worse": save("worse", make_result(energy_per_token=noisy(0.55, 0.01, 5, 2))),
        "noisy": save("noisy", make_result(energy_per_token=noisy(0.55, 0.15, 5, 2))),
        "vllm": save("vllm", make_result(backend="vllm")),
        "both": save("both", make_result(backend="vllm"), make_result(name="b")),
    }


def test_compare_fails_with_11_on_a_gated_regression(
    reports: dict[str, str], tmp_path: Path
) -> None:
    out_json = tmp_path / "cmp.json"
    code, out = run(
        "compare",
        reports["history"],
        reports["worse"],
        "--fail-on",
        "energy_per_output_token:+5%",
        "--json",
        str(out_json),
    )
    assert code == 11
    assert "regression" in out and "llmbench gate FAILED" in out
    data = json.loads(out_json.read_text())
    assert data["exit_code"] == 11 and data["rows"][0]["verdict"] == "regression"
    assert data["history_runs"] == 10 and data["rows"][0]["detectable"] == pytest.approx(0.05)


def test_compare_takes_several_reports_a_glob_or_a_folder_as_the_history(
    reports: dict[str, str],
) -> None:
    files = sorted(str(p) for p in Path(reports["history"]).glob("*.json"))
    pattern = str(Path(reports["history"]) / "run0[0-4].json")
    for baseline in (files, [pattern], [reports["history"]]):
        code, out = run(
            "compare", *baseline, reports["worse"], "--fail-on", "energy_per_output_token:+5%"
        )
        assert code == 11, out
    code, out = run("compare", reports["history"], reports["worse"], "--history", "2")
    assert "(2 runs)" in out and "short-history" in out


def test_one_baseline_report_is_a_short_history_that_never_fails(reports: dict[str, str]) -> None:
    code, out = run(
        "compare", reports["base"], reports["worse"], "--fail-on", "energy_per_output_token:+5%"
    )
    assert code == 0 and "short-history" in out and "within run [" in out
    assert "gate passed" in out


def test_compare_passes_within_noise(reports: dict[str, str]) -> None:
    code, out = run(
        "compare", reports["history"], reports["noisy"], "--fail-on", "energy_per_output_token:+5%"
    )
    assert code == 0 and "gate passed" in out


def test_compare_without_rules_never_fails(reports: dict[str, str]) -> None:
    code, out = run("compare", reports["history"], reports["worse"])
    assert code == 0 and "output_throughput" in out and "(not gated)" in out


def test_compare_bootstrap_method_shapes_the_short_history_interval(
    reports: dict[str, str],
) -> None:
    code, out = run(
        "compare",
        reports["base"],
        reports["worse"],
        "--fail-on",
        "energy_per_output_token:+5%",
        "--method",
        "bootstrap",
    )
    assert code == 0 and "within run [" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--fail-on", "joules:+5%"],
            "llmbench compare: error: --fail-on: unknown metric 'joules'",
        ),
        (["--confidence", "1.5"], "--confidence: 1.5 is not within (0, 1)"),
        (["--history", "0"], "--history: 0 is not >= 1"),
        (["--false-alarm-rate", "2"], "--false-alarm-rate: 2.0 is not within (0, 1)"),
    ],
)
def test_compare_bad_options_exit_2_in_one_line(
    reports: dict[str, str], capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, _ = run("compare", reports["base"], reports["worse"], *args)
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1 and "Traceback" not in err


def test_corrupt_baseline_exits_2_naming_the_file(
    reports: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text(Path(reports["base"]).read_text()[:300])
    code, _ = run("compare", str(broken), reports["worse"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith(f"llmbench compare: error: {broken}: truncated JSON at line ")
    assert err.count("\n") == 1


def test_compare_across_backends_is_labelled_and_allowed_only_on_request(
    reports: dict[str, str],
) -> None:
    code, out = run(
        "compare", reports["base"], reports["vllm"], "--fail-on", "energy_per_output_token:+5%"
    )
    assert code == 0 and "backend-mismatch" in out and MIXED in out
    code, out = run(
        "compare",
        reports["base"],
        reports["vllm"],
        "--allow-mixed-backends",
        "--metric",
        "output_throughput",
    )
    assert "mixed backends compared" in out and "backend-mismatch" not in out


def test_merge_refuses_mixed_backends(
    reports: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_path = tmp_path / "merged.json"
    code, _ = run("merge", reports["base"], reports["vllm"], "-o", str(out_path))
    assert code == 2
    assert capsys.readouterr().err == f"llmbench merge: error: {MIXED}\n"
    assert not out_path.exists()


def test_merge_writes_all_results(reports: dict[str, str], tmp_path: Path) -> None:
    out_path = tmp_path / "merged.json"
    code, out = run("merge", reports["base"], reports["worse"], "-o", str(out_path))
    assert code == 0 and "merged 2 results from 2 reports" in out
    assert len(load_report(out_path).results) == 2
    code, out = run(
        "merge", reports["base"], reports["vllm"], "--output", str(out_path),
        "--allow-mixed-backends", "--force",
    )  # fmt: skip
    assert code == 0 and "(mixed backends)" in out
    assert json.loads(out_path.read_text())["mixed_backends"] is True


def test_merge_of_two_reports_without_output_is_an_error_that_changes_nothing(
    reports: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """The natural guess ``merge a.json b.json`` once overwrote a.json with b.json alone."""
    before = Path(reports["base"]).read_bytes()
    code, out = run("merge", reports["base"], reports["worse"])
    assert code == 2 and out == ""
    err = capsys.readouterr().err
    assert err == (
        "llmbench merge: error: name the merged report with -o, e.g. llmbench merge "
        f"{reports['base']} {reports['worse']} -o merged.json\n"
    )
    assert Path(reports["base"]).read_bytes() == before


def test_merge_overwrites_only_its_inputs_unless_forced(
    reports: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path / "other.json"
    other.write_text("kept")
    code, _ = run("merge", reports["base"], reports["worse"], "-o", str(other))
    assert code == 2 and other.read_text() == "kept"
    assert capsys.readouterr().err == (
        f"llmbench merge: error: -o: {other} exists and is not one of the inputs; "
        "add --force to overwrite it\n"
    )
    # into one of its inputs: what "merge b.json into a.json" means, with nothing lost
    code, _ = run("merge", reports["base"], reports["worse"], "-o", reports["base"])
    assert code == 0 and len(load_report(reports["base"]).results) == 2
    code, _ = run("merge", reports["worse"], reports["noisy"], "-o", str(other), "--force")
    assert code == 0 and len(load_report(other).results) == 2


def test_show_prints_one_table_per_backend(reports: dict[str, str]) -> None:
    code, out = run("show", reports["both"])
    assert code == 0
    assert "backend vllm (vllm 1.0)" in out and "backend pytorch (transformers 1.0)" in out
    assert "1 results" not in out and "2 results, complete" in out


def test_compat_markdown() -> None:
    from pytest_llmbench.compat import render_markdown

    code, out = run("compat", "--markdown")
    assert code == 0 and out == render_markdown()


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("frobnicate")[0] == 2
    assert run("compare", "only-one.json")[0] == 2
    assert "usage: llmbench" in capsys.readouterr().err


def test_missing_file_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("show", "nope.json")[0] == 2
    assert capsys.readouterr().err == "llmbench show: error: nope.json: no such file\n"
