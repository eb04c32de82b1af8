"""Serving under traffic: arrivals from ``traffic_simulation`` (offline, fixed concurrency,
Poisson or gamma at a rate, or a sweep of rates). One result per rate, each in its own energy
window; TTFT, inter-token and end-to-end percentiles come from streamed tokens.

    pytest benchmarks -k serving --llm-backend openai \\
        --llm-set traffic_simulation.mode=poisson --llm-set "traffic_simulation.rate_sweep=[1,4]"
"""

from __future__ import annotations

import pytest

from pytest_llmbench.workload.traffic import schedules_for


def test_serving_traffic(llm_bench, llm_config):
    schedules = schedules_for(llm_config.traffic_simulation, llm_config.workload.num_prompts)
    timed = [s for s in schedules if not s.schedule.offline]
    if timed and not llm_bench.engine.backend.capabilities.timed_arrivals:
        pytest.skip(f"{llm_bench.backend} does not accept timed arrivals (no async request queue)")

    workload = llm_bench.workload("traffic")
    for rated in schedules:
        result = llm_bench(workload, schedule=rated.schedule, label=rated.label)
        for rep in result.repetitions:
            assert rep.requests + rep.errors == workload.num_prompts * rep.iterations
