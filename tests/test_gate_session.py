"""The gate as a CI job meets it: pytest's own exit code, corrupt baselines, interrupted runs."""

from __future__ import annotations

import json
import textwrap

import pytest

from pytest_llmbench.gate import EXIT_REGRESSION

# Deterministic work: every request takes ~4 ms, so throughput noise stays a few percent.
SLOW_BENCH = textwrap.dedent(
    """
    import time

    def test_throughput(llm_bench, monkeypatch):
        backend = type(llm_bench.engine.backend)
        generate = backend.generate

        def slow(self, requests):
            time.sleep(0.004 * len(requests))
            return generate(self, requests)

        monkeypatch.setattr(backend, "generate", slow)
        llm_bench(num_prompts=4, input_tokens=4, output_tokens=4)
    """
)


def _scaled_baseline(source: dict, factor: float) -> dict:
    """The same report with every window ``factor`` times as long (throughput / factor)."""
    data = json.loads(json.dumps(source))
    for result in data["results"]:
        for rep in result["repetitions"]:
            rep["window_s"] *= factor
    return data


@pytest.fixture
def measured(echo_pytester: pytest.Pytester) -> pytest.Pytester:
    echo_pytester.makepyfile(test_bench=SLOW_BENCH)
    args = ("--llm-backend", "echo", "--llm-repeat", "5", "--llm-warmup", "0")
    echo_pytester.runpytest(*args, "--llm-json", "base.json").assert_outcomes(passed=1)
    echo_pytester.args = args  # type: ignore[attr-defined]
    return echo_pytester


def _faster_history(pytester: pytest.Pytester, runs: int = 4) -> str:
    """A history folder of ``runs`` earlier runs twice as fast as this one, 1-2% apart."""
    base = json.loads((pytester.path / "base.json").read_text())
    folder = pytester.path / "history"
    folder.mkdir()
    for i in range(runs):
        data = _scaled_baseline(base, 0.5 * (1 + 0.01 * (i % 3)))
        data["started_at"] = f"2025-01-01T00:0{i}:00.000+00:00"
        (folder / f"run{i}.json").write_text(json.dumps(data))
    return str(folder)


def test_significant_regression_fails_with_its_own_exit_code(measured: pytest.Pytester) -> None:
    history = _faster_history(measured)
    result = measured.runpytest(
        *measured.args,  # type: ignore[attr-defined]
        "--llm-compare",
        history,
        "--llm-fail-on",
        "output_throughput:-10%",
        "--llm-json",
        "now.json",
    )
    assert result.ret == EXIT_REGRESSION
    result.stdout.fnmatch_lines(
        [
            "*llmbench comparison*",
            "baseline: *history (4 runs)",
            "*output_throughput*regression*",
            "llmbench gate FAILED against *: output_throughput in 1 test regressed*",
            "  regression: test_bench.py::test_throughput[[]echo[]] output_throughput -*% (noise*",
        ]
    )
    comparison = json.loads((measured.path / "now.json").read_text())["comparison"]
    assert comparison["exit_code"] == EXIT_REGRESSION and comparison["history_runs"] == 4


def test_one_baseline_report_never_turns_the_build_red(measured: pytest.Pytester) -> None:
    base = json.loads((measured.path / "base.json").read_text())
    (measured.path / "faster.json").write_text(json.dumps(_scaled_baseline(base, 0.5)))
    result = measured.runpytest(
        *measured.args,  # type: ignore[attr-defined]
        "--llm-compare",
        "faster.json",
        "--llm-fail-on",
        "output_throughput:-10%",
    )
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["note: short history*", "*short-history*"])


def test_an_energy_rule_without_a_meter_fails_with_exit_12(measured: pytest.Pytester) -> None:
    history = _faster_history(measured)
    result = measured.runpytest(
        *measured.args,  # type: ignore[attr-defined]
        "--llm-energy",
        "none",
        "--llm-compare",
        history,
        "--llm-fail-on",
        "energy_per_output_token:+5%",
    )
    assert result.ret == 12
    result.stdout.fnmatch_lines(
        ["*unmeasured*", "*could not be measured in this run*add --llm-allow-unmeasured*"]
    )
    allowed = measured.runpytest(
        *measured.args,  # type: ignore[attr-defined]
        "--llm-energy",
        "none",
        "--llm-compare",
        history,
        "--llm-fail-on",
        "energy_per_output_token:+5%",
        "--llm-allow-unmeasured",
    )
    assert allowed.ret == pytest.ExitCode.OK


def test_change_within_threshold_passes(measured: pytest.Pytester) -> None:
    base = json.loads((measured.path / "base.json").read_text())
    (measured.path / "faster.json").write_text(json.dumps(_scaled_baseline(base, 0.5)))
    result = measured.runpytest(
        *measured.args,
        "--llm-compare",
        "faster.json",
        "--llm-fail-on",
        "output_throughput:-80%",  # type: ignore[attr-defined]
    )
    assert result.ret == pytest.ExitCode.OK


def test_corrupt_baseline_is_a_usage_error_before_any_benchmark(
    echo_pytester: pytest.Pytester,
) -> None:
    (echo_pytester.path / "bad.json").write_text('{"schema_version": 1, "results": [')
    result = echo_pytester.runpytest("--llm-backend", "echo", "--llm-compare", "bad.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "bad.json" in result.stderr.str()
    assert "Traceback" not in result.stderr.str()
    assert "passed" not in result.stdout.str()  # nothing ran


def test_fail_on_without_baseline_is_refused(echo_pytester: pytest.Pytester) -> None:
    result = echo_pytester.runpytest(
        "--llm-backend", "echo", "--llm-fail-on", "output_throughput:-3%"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--llm-fail-on: needs a baseline" in result.stderr.str()


def test_interrupted_session_keeps_completed_results(echo_pytester: pytest.Pytester) -> None:
    echo_pytester.makepyfile(
        test_bench=textwrap.dedent(
            """
            def test_a(llm_bench):
                llm_bench(num_prompts=1, input_tokens=4, output_tokens=2)

            def test_b(llm_bench):
                llm_bench(num_prompts=2, input_tokens=4, output_tokens=2)
                raise KeyboardInterrupt  # Ctrl-C in the middle of the suite

            def test_c(llm_bench):
                llm_bench(num_prompts=3, input_tokens=4, output_tokens=2)
            """
        )
    )
    # A subprocess: an in-process KeyboardInterrupt would also stop the outer session.
    result = echo_pytester.runpytest_subprocess("--llm-backend", "echo", "--llm-json", "r.json")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    report = json.loads((echo_pytester.path / "r.json").read_text())
    assert report["complete"] is False
    assert [r["workload"]["num_prompts"] for r in report["results"]] == [1]


def test_a_crashing_test_keeps_earlier_and_later_results(echo_pytester: pytest.Pytester) -> None:
    echo_pytester.makepyfile(
        test_bench=textwrap.dedent(
            """
            def test_a(llm_bench):
                llm_bench(num_prompts=1, input_tokens=4, output_tokens=2)

            def test_b(llm_bench):
                raise RuntimeError("engine exploded")

            def test_c(llm_bench):
                llm_bench(num_prompts=3, input_tokens=4, output_tokens=2)
            """
        )
    )
    result = echo_pytester.runpytest("--llm-backend", "echo", "--llm-json", "r.json")
    result.assert_outcomes(passed=2, failed=1)
    report = json.loads((echo_pytester.path / "r.json").read_text())
    assert report["complete"] is True
    assert sorted(r["workload"]["num_prompts"] for r in report["results"]) == [1, 3]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--llm-history", "0"], "--llm-history: 0 is not >= 1"),
        (["--llm-false-alarm-rate", "1.5"], "--llm-false-alarm-rate: 1.5 is not within (0, 1)"),
        (["--llm-compare", "empty"], "the folder holds no .json reports"),
        (["--llm-compare", "nothing-*.json"], "the pattern matches no files"),
        (["--llm-compare", "history/"], "--llm-compare: history/: no such folder"),
    ],
)
def test_bad_history_options_are_one_line_usage_errors(
    echo_pytester: pytest.Pytester, args: list[str], message: str
) -> None:
    (echo_pytester.path / "empty").mkdir()
    result = echo_pytester.runpytest("--llm-backend", "echo", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert message in err and "Traceback" not in err
    assert "passed" not in result.stdout.str()


def test_a_save_without_a_comparison_prints_no_comparison_section(
    echo_pytester: pytest.Pytester,
) -> None:
    args = ("--llm-backend", "echo", "--llm-repeat", "1", "--llm-warmup", "0")
    result = echo_pytester.runpytest(*args, "--llm-save", "first", "--llm-storage", "st")
    assert result.ret == pytest.ExitCode.OK
    assert "llmbench comparison" not in result.stdout.str()
    result.stdout.fnmatch_lines(["saved: *st*0001_first.json"])
    compared = echo_pytester.runpytest(*args, "--llm-compare", "--llm-storage", "st")
    compared.stdout.fnmatch_lines(["*llmbench comparison*", "baseline: *0001_first.json*"])
