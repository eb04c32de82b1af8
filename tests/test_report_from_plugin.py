"""A real session's JSON report follows the shipped schema and feeds `llmbench` unchanged."""

from __future__ import annotations

import io
import json

import jsonschema
import pytest

from pytest_llmbench.cli import main
from pytest_llmbench.results import load_schema


def test_session_report_validates_and_compares_with_itself(echo_pytester: pytest.Pytester) -> None:
    result = echo_pytester.runpytest(
        "--llm-backend", "echo", "--llm-repeat", "3", "--llm-warmup", "0", "--llm-json", "out.json"
    )
    result.assert_outcomes(passed=1)
    path = echo_pytester.path / "out.json"
    data = json.loads(path.read_text())
    jsonschema.validate(data, load_schema())
    assert data["complete"] is True and data["machine"]["machine_id"]
    (res,) = data["results"]
    assert res["energy"]["available"] is False and res["energy"]["reason"]
    assert res["statistics"]["output_throughput"]["n"] == 3

    out = io.StringIO()
    code = main(
        ["compare", str(path), str(path), "--fail-on", "output_throughput:-50%,energy_j:+5%"], out
    )
    assert code == 12  # a gated energy rule on a run without energy: unmeasured
    assert "unmeasured" in out.getvalue() and "short-history" in out.getvalue()
    code = main(
        ["compare", str(path), str(path), "--fail-on", "output_throughput:-50%,energy_j:+5%",
         "--allow-unmeasured"],
        io.StringIO(),
    )  # fmt: skip
    assert code == 0


@pytest.mark.parametrize("keep", [False, True])
def test_report_keeps_summaries_or_every_sample(echo_pytester: pytest.Pytester, keep: bool) -> None:
    args = [
        "--llm-backend",
        "echo",
        "--llm-repeat",
        "2",
        "--llm-warmup",
        "0",
        "--llm-json",
        "o.json",
    ]
    result = echo_pytester.runpytest(*args, *(["--llm-keep-samples"] if keep else []))
    result.assert_outcomes(passed=1)
    data = json.loads((echo_pytester.path / "o.json").read_text())
    jsonschema.validate(data, load_schema())
    for rep in data["results"][0]["repetitions"]:
        itl = rep["latency"]["itl_s"]
        assert itl["count"] > 0 and sum(itl["histogram"]["counts"]) == itl["count"]
        assert ("samples" in rep) is keep
        if keep:
            assert len(rep["samples"]["itl_s"]) == itl["count"]


def test_keep_samples_from_the_ini_file(echo_pytester: pytest.Pytester) -> None:
    echo_pytester.makeini("[pytest]\nllm_keep_samples = true\n")
    echo_pytester.runpytest(
        "--llm-backend", "echo", "--llm-warmup", "0", "--llm-json", "o.json"
    ).assert_outcomes(passed=1)
    data = json.loads((echo_pytester.path / "o.json").read_text())
    assert all("samples" in rep for rep in data["results"][0]["repetitions"])
