"""Harness overhead on SGLang: output tok/s through the plugin vs ``sglang.Engine.generate``.

The same offline workload runs on the same engine three ways, interleaved so that drift hits all
alike (``pytest_llmbench.fidelity``): SGLang's own batched ``Engine.generate`` with token-id prompts
and one sampling dict prepared once, as a user would write it; ``SglangBackend.generate``, both
timed in the engine's process; and the plugin's full path from here, which adds the round trip to
the engine's process. Both in-process paths make the same single batched call, so what differs is
the plugin's work around it.

    pytest benchmarks/test_sglang_overhead.py --llm-backend sglang -s
    LLMBENCH_OVERHEAD_PROMPTS=1,64 pytest benchmarks/test_sglang_overhead.py --llm-backend sglang -s

By default the benchmark fails only when the rounds show a plugin path slower than 0.9 of the
direct call beyond their own spread; ``--llm-strict-overhead`` asserts the median paired ratios
above it as well, for a run on a quiet machine.
"""

from __future__ import annotations

import os

import pytest

from pytest_llmbench.fidelity import check_fidelity, measure_fidelity

ROUNDS = int(os.environ.get("LLMBENCH_OVERHEAD_ROUNDS", "8"))  # a multiple of 4
PROMPTS = [int(n) for n in os.environ.get("LLMBENCH_OVERHEAD_PROMPTS", "64").split(",")]


@pytest.mark.parametrize("prompts", PROMPTS, ids=[f"prompts{n}" for n in PROMPTS])
def test_sglang_harness_overhead(llm_bench, llm_backend, record_property, strict_overhead, prompts):
    if llm_backend.name != "sglang":
        pytest.skip("measures the SGLang backend's harness against SGLang itself")
    workload = llm_bench.workload("overhead", num_prompts=prompts)  # lengths from the config
    summary = measure_fidelity(workload, llm_backend, ROUNDS)
    record_property("sglang_harness_overhead", summary)
    print(f"\nSGLang harness overhead: {summary}")
    check_fidelity(summary, 0.9, strict_overhead)
