"""The highest load that still meets the SLO (``--llm-slo``): a search over the request rate,
doubling from ``start`` until a rate fails, then bisecting. One result, ``::peak-goodput``,
holding the peak rate's repetitions, the curve of every rate tried and ``peak_goodput`` (gate
it like any metric: ``--llm-fail-on peak_goodput:-5%``).

    pytest benchmarks/test_peak_goodput.py --llm-backend openai --llm-slo ttft:0.5,e2e:5
"""

from __future__ import annotations

import pytest


def test_peak_goodput(llm_bench, pytestconfig):
    if not (pytestconfig.getoption("llm_slo") or pytestconfig.getini("llm_slo")):
        pytest.skip("needs an SLO: --llm-slo ttft:S,tpot:S,e2e:S")
    if not llm_bench.engine.backend.capabilities.timed_arrivals:
        pytest.skip(f"{llm_bench.backend} does not accept timed arrivals (no async request queue)")

    result = llm_bench.peak_goodput(start=1.0)

    found = result.search
    assert found["points"], "the search tried no load"
    if found["peak_load"] is not None:
        peak = max(p["load"] for p in found["points"] if p["meets"])
        assert found["peak_load"] == peak
