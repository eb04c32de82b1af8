"""--llm-html / ini llm_html: a real session writes the HTML page beside the JSON."""

from __future__ import annotations

import pytest


def test_llm_html_writes_a_page_with_the_backend_section(echo_pytester: pytest.Pytester) -> None:
    result = echo_pytester.runpytest(
        "--llm-backend", "echo", "--llm-repeat", "2", "--llm-warmup", "0", "--llm-html", "r.html"
    )  # fmt: skip
    result.assert_outcomes(passed=1)
    page = (echo_pytester.path / "r.html").read_text()
    assert "echo: energy vs throughput" in page and "TTFT CDF" in page
    # no meter measures the echo backend: its two windows are listed, the reason said once
    power = page.split("power over each energy window</h4>")[1]
    assert power.count("<td>unavailable</td>") == 2
    assert power.count("unavailable: auto: no meter readable") == 1
    # the energy-vs-throughput box says why it is empty, and the terminal's quality line is here
    assert "energy unavailable: auto: no meter readable" in page.split("</svg>")[0]
    assert "perplexity unavailable (echo does not return log-probabilities" in page


def test_ini_llm_html_is_read(echo_pytester: pytest.Pytester) -> None:
    echo_pytester.makeini("[pytest]\nllm_html = out/page.html\n")
    echo_pytester.runpytest("--llm-backend", "echo", "--llm-repeat", "1").assert_outcomes(passed=1)
    assert (echo_pytester.path / "out" / "page.html").read_text().startswith("<!doctype html>")


def test_html_of_a_compared_run_shows_the_verdicts(echo_pytester: pytest.Pytester) -> None:
    args = ["--llm-backend", "echo", "--llm-repeat", "2", "--llm-warmup", "0"]
    echo_pytester.runpytest(*args, "--llm-json", "base.json").assert_outcomes(passed=1)
    result = echo_pytester.runpytest(
        *args, "--llm-compare", "base.json", "--llm-html", "r.html", "--llm-json", "cur.json"
    )
    result.assert_outcomes(passed=1)
    page = (echo_pytester.path / "r.html").read_text()
    assert "Comparison with" in page and "<th>verdict</th>" in page


def test_llm_html_without_matplotlib_fails_before_any_benchmark_runs(
    echo_pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # what an install without it looks like
    result = echo_pytester.runpytest("--llm-backend", "echo", "--llm-html", "r.html")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.errlines if line.startswith("ERROR:")]
    assert errors == [
        "ERROR: --llm-html: needs matplotlib, which is not installed: "
        "pip install 'pytest-llmbench[html]'"
    ]
    assert "passed" not in result.stdout.str() and not (echo_pytester.path / "r.html").exists()
