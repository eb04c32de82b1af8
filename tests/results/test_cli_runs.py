"""`llmbench show A B C` and `llmbench html A B C -o OUT`: several runs side by side."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from pytest_llmbench.cli import main
from tests.results.factories import make_report, make_result, write


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    return main(list(argv), out=out), out.getvalue()


@pytest.fixture
def runs(tmp_path: Path) -> list[str]:
    """Three runs of pytorch (throughput 1000, 1100, 1200 tok/s), the last with vllm too."""
    paths = []
    for i, tok_s in enumerate((1000.0, 1100.0, 1200.0)):
        results = [make_result(energy_per_token=(0.5, 0.5), throughput=(tok_s, tok_s))]
        if i == 2:
            results.append(make_result(backend="vllm", throughput=(2000.0,) * 3))
        report = make_report(results, started_at=f"2025-01-0{i + 1}T00:00:00.000+00:00")
        paths.append(str(write(tmp_path / f"run{i}.json", report)))
    return paths


def test_show_several_runs_one_table_per_backend_runs_as_columns(runs: list[str]) -> None:
    code, out = run("show", *runs)
    assert code == 0
    assert [ln.split(":")[0] for ln in out.splitlines()[:3]] == ["run 1", "run 2", "run 3"]
    assert "backend pytorch (1.0), 3 runs" in out and "backend vllm (1.0), 3 runs" in out
    row = next(ln for ln in out.splitlines() if "output throughput" in ln and "[pytorch]" in ln)
    assert re.search(r"1000\s+1100\s+1200\s*$", row)
    vllm = next(ln for ln in out.splitlines() if "output throughput" in ln and "[vllm]" in ln)
    assert re.search(r"-\s+-\s+2000\s*$", vllm)  # never pooled with pytorch's numbers


def test_html_of_several_reports_has_a_trend_per_backend(runs: list[str], tmp_path: Path) -> None:
    out_path = tmp_path / "r.html"
    code, out = run("html", *runs, "-o", str(out_path))
    assert code == 0 and "from 3 report(s)" in out
    page = out_path.read_text()
    assert "pytorch: output throughput (tok/s) run over run" in page
    assert "vllm: output throughput (tok/s) run over run" in page
    assert "<script" not in page and "http://" not in page.replace("http://www.w3.org", "")


@pytest.mark.parametrize("command", ["show", "html"])
def test_bad_input_is_one_line_naming_the_file(
    command: str, runs: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{"schema_version": 2, "results": [')
    extra = ["-o", str(tmp_path / "x.html")] if command == "html" else []
    assert run(command, runs[0], str(broken), *extra)[0] == 2
    err = capsys.readouterr().err
    assert err.startswith(f"llmbench {command}: error: {broken}: truncated JSON")
    assert err.count("\n") == 1
    assert not (tmp_path / "x.html").exists()


def test_html_needs_an_output(runs: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert run("html", runs[0])[0] == 2
    assert "-o/--output" in capsys.readouterr().err
