"""Goodput under ``--llm-slo``: counted per repetition, in the JSON report and the summary."""

from __future__ import annotations

import json

import jsonschema
import pytest

from pytest_llmbench.backends.base import Completion
from pytest_llmbench.energy.base import EnergyUnavailable
from pytest_llmbench.goodput import SLO
from pytest_llmbench.results import Repetition, load_schema


def completion(i: int, latency_s: float, error: str | None = None) -> Completion:
    start = float(i)
    return Completion(f"r{i}", 8, 4, start, start + latency_s, start + 0.01, error=error)


def test_a_repetition_counts_the_requests_that_met_the_slo() -> None:
    done = [completion(0, 0.5), completion(1, 1.5), completion(2, 0.2, error="HTTP 500")]
    unavailable = EnergyUnavailable("no meter")
    rep = Repetition.from_completions(done, 4.0, 1, unavailable, SLO(e2e_s=1.0))
    assert rep.good_requests == 1  # 1.5 s is too slow, and a failed request is never good
    assert rep.metrics()["goodput"] == pytest.approx(1 / 4.0)
    assert Repetition.from_dict(json.loads(json.dumps(rep.to_dict()))) == rep

    plain = Repetition.from_completions(done, 4.0, 1, unavailable)
    assert plain.good_requests is None and plain.metrics()["goodput"] is None


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest(
        "--llm-backend", "echo", "--llm-repeat", "2", "--llm-warmup", "0", "--llm-json", "r.json",
        *args,
    )  # fmt: skip


def test_generous_slo_gives_goodput_equal_to_request_throughput(
    echo_pytester: pytest.Pytester,
) -> None:
    result = run(echo_pytester, "--llm-slo", "e2e:60,ttft:30")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*req/s*goodput req/s*TTFT p50 ms*"])
    data = json.loads((echo_pytester.path / "r.json").read_text())
    jsonschema.validate(data, load_schema())
    (res,) = data["results"]
    assert res["traffic"]["slo"] == {"ttft_s": 30.0, "e2e_s": 60.0}
    assert [rep["good_requests"] for rep in res["repetitions"]] == [
        rep["requests"] for rep in res["repetitions"]
    ]
    assert res["aggregate"]["goodput"] == pytest.approx(res["aggregate"]["request_throughput"])


def test_impossible_slo_gives_zero_goodput(echo_pytester: pytest.Pytester) -> None:
    run(echo_pytester, "--llm-slo", "e2e:0.000000001").assert_outcomes(passed=1)
    (res,) = json.loads((echo_pytester.path / "r.json").read_text())["results"]
    assert res["aggregate"]["goodput"] == 0.0
    assert res["aggregate"]["request_throughput"] > 0


def test_without_slo_no_goodput_column(echo_pytester: pytest.Pytester) -> None:
    result = run(echo_pytester)
    result.assert_outcomes(passed=1)
    assert "goodput req/s" not in result.stdout.str()
    (res,) = json.loads((echo_pytester.path / "r.json").read_text())["results"]
    assert res["traffic"]["slo"] is None and res["aggregate"]["goodput"] is None


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("latency:1", "--llm-slo: 'latency:1' is not KEY:SECONDS with KEY one of*"),
        ("ttft:fast", "--llm-slo: 'ttft:fast': 'fast' is not a number"),
        ("e2e:-1", "--llm-slo: e2e -1.0 is not > 0 (seconds)"),
        (",", "--llm-slo: ',' sets no threshold*"),
    ],
)
def test_malformed_slo_is_a_usage_error(
    echo_pytester: pytest.Pytester, value: str, message: str
) -> None:
    result = run(echo_pytester, f"--llm-slo={value}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{message}"])


def test_ini_and_help(echo_pytester: pytest.Pytester) -> None:
    echo_pytester.makeini("[pytest]\nllm_slo = e2e:60\n")
    run(echo_pytester).assert_outcomes(passed=1)
    (res,) = json.loads((echo_pytester.path / "r.json").read_text())["results"]
    assert res["traffic"]["slo"] == {"e2e_s": 60.0}
    echo_pytester.runpytest("--help").stdout.fnmatch_lines(["*--llm-slo=KEY:SECONDS*"])
