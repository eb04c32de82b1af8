"""The peak-goodput search end to end: the openai backend against the fake server."""

from __future__ import annotations

import json

import jsonschema
import pytest
from openai_fakes import FakeServer

from pytest_llmbench.results import load_schema

RUN = ("--llm-backend", "openai", "--llm-repeat", "1", "--llm-warmup", "0", "--llm-json", "r.json")


def test_a_search_records_its_curve_and_a_gateable_peak(
    pytester: pytest.Pytester, fake_server: FakeServer
) -> None:
    fake_server.state.delay_s = 0.001
    pytester.makepyfile(
        """
        def test_peak(llm_bench):
            result = llm_bench.peak_goodput(num_prompts=4, over="concurrency", start=1, max_load=4)
            assert result.test_id.endswith("::peak-goodput")
        """
    )
    # An SLO every load meets (a request takes milliseconds): the search stops at max_load.
    # (Concurrency: a rate search would send 10 x 30 s of arrivals per rate, see search.py.)
    result = pytester.runpytest_inprocess(
        *RUN, "--llm-server-url", fake_server.url, "--llm-slo", "e2e:30"
    )
    result.assert_outcomes(passed=1)
    report = json.loads((pytester.path / "r.json").read_text())
    jsonschema.validate(report, load_schema())
    [res] = report["results"]
    found = res["search"]
    assert [p["load"] for p in found["points"]] == [1.0, 2.0, 4.0]
    assert found["peak_load"] == 4.0 and all(p["meets"] for p in found["points"])
    assert found["peak_goodput"] > 0 and res["aggregate"]["peak_goodput"] == found["peak_goodput"]
    assert res["traffic"]["max_concurrency"] == 4  # the peak's schedule
    result.stdout.fnmatch_lines(["*peak goodput, test_peak*: peak 4 in flight: goodput*"])


def test_an_slo_no_load_meets_reports_the_lowest_load(
    pytester: pytest.Pytester, fake_server: FakeServer
) -> None:
    pytester.makepyfile(
        """
        def test_peak(llm_bench):
            result = llm_bench.peak_goodput(num_prompts=4, start=2.0, max_steps=3)
            assert result.search["peak_goodput"] == 0.0
        """
    )
    result = pytester.runpytest_inprocess(
        *RUN, "--llm-server-url", fake_server.url, "--llm-slo", "ttft:0.000001"
    )
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        ["*no load met the SLO (attainment >= 0.9); the lowest load tried, 2 req/s, reached 0.000*"]
    )


def test_a_search_without_an_slo_is_refused(
    pytester: pytest.Pytester, fake_server: FakeServer
) -> None:
    pytester.makepyfile(
        """
        def test_peak(llm_bench):
            llm_bench.peak_goodput()
        """
    )
    result = pytester.runpytest_inprocess(*RUN, "--llm-server-url", fake_server.url)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*--llm-slo: a peak-goodput search needs an SLO*"])
    bad = pytester.runpytest_inprocess("--llm-slo-attainment", "1.5")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    bad.stderr.fnmatch_lines(["*--llm-slo-attainment: 1.5 is not within (0, 1]*"])
