"""Harness overhead on vLLM: output tok/s through the plugin vs vLLM called directly.

The same offline workload runs on the same engine three ways, interleaved so that drift hits all
alike: vLLM's own ``LLM.generate`` (or the async engine, if an earlier benchmark moved the backend
onto it) with prompts and SamplingParams prepared once, as a user would write it;
``VllmBackend.generate`` (token-id prompts, per-request Completions with timestamps), both timed
in the engine's process; and the plugin's full path from here, which adds the round trip to the
engine's process.

    pytest benchmarks/test_vllm_overhead.py --llm-backend vllm -s

Longer runs shrink the run-to-run noise: ``LLMBENCH_OVERHEAD_ROUNDS`` (default 8, a multiple
of 4) and ``LLMBENCH_OVERHEAD_PROMPTS`` (default 64; a comma list such as ``1,64`` runs one
test per size on the same engine) set the rounds and the prompts per run.

By default the benchmark fails only when the rounds show a plugin path slower than the floor
beyond their own spread (the 99.9% one-sided upper bound of the paired ratio below it): on a busy
machine the rounds swing, the interval widens, and no claim is made. ``--llm-strict-overhead``
asserts the medians above the floor as well, for a run on a quiet machine.
"""

from __future__ import annotations

import os
import statistics
import time

import pytest

from pytest_llmbench.backends.overhead import ratio_upper_bound
from pytest_llmbench.workload.prompts import build_requests
from pytest_llmbench.workload.tokenizer import load_tokenizer

ROUNDS = int(os.environ.get("LLMBENCH_OVERHEAD_ROUNDS", "8"))  # a multiple of 4: see the loop
PROMPTS = [int(n) for n in os.environ.get("LLMBENCH_OVERHEAD_PROMPTS", "64").split(",")]


@pytest.mark.parametrize("prompts", PROMPTS, ids=[f"prompts{n}" for n in PROMPTS])
def test_vllm_harness_overhead(llm_bench, llm_backend, record_property, strict_overhead, prompts):
    if llm_backend.name != "vllm":
        pytest.skip("measures the vLLM backend's harness against vLLM itself")
    assert ROUNDS >= 4 and ROUNDS % 4 == 0, "LLMBENCH_OVERHEAD_ROUNDS must be a multiple of 4"
    workload = llm_bench.workload("overhead", num_prompts=prompts)  # lengths from the config
    tokenizer = load_tokenizer(llm_backend.spec.model_path)
    requests = build_requests(workload, tokenizer, tokenizer.vocab_ids())
    host = llm_backend.backend  # a HostedBackend: vLLM lives in its own process
    tokens = workload.num_prompts * workload.output_tokens

    host.call("harness_overhead", requests, 1)  # warm-up of both paths
    direct, backend, hosted = [], [], []

    def run_hosted() -> None:
        t0 = time.perf_counter()
        assert sum(c.output_tokens for c in host.generate(requests)) == tokens
        hosted.append(tokens / (time.perf_counter() - t0))

    for i in range(ROUNDS):
        # Rounds alternate which in-process path leads, and whether the hosted path runs
        # before or after them (in pairs), so that no path always holds the same place.
        hosted_first = i % 4 >= 2
        if hosted_first:
            run_hosted()
        inside = host.call("harness_overhead", requests, 1, False, i % 2 == 1)
        direct.append(inside.direct_tok_s)
        backend.append(inside.harness_tok_s)
        if not hosted_first:
            run_hosted()

    d, b, h = (statistics.median(x) for x in (direct, backend, hosted))
    backend_ratios = [x / y for x, y in zip(backend, direct, strict=True)]
    hosted_ratios = [x / y for x, y in zip(hosted, direct, strict=True)]
    summary = {
        "engine": inside.engine,
        "output_tokens_per_run": tokens,
        "rounds": ROUNDS,
        "direct_tok_s": round(d, 1),
        "backend_generate_tok_s": round(b, 1),
        "hosted_generate_tok_s": round(h, 1),
        # Each round runs the three paths back to back: the medians of those paired ratios are
        # the claim (a ratio of medians would mix rounds whose conditions differ).
        "backend_ratio": round(statistics.median(backend_ratios), 3),
        "hosted_ratio": round(statistics.median(hosted_ratios), 3),
        "round_backend_ratios": [round(r, 3) for r in backend_ratios],
        "round_hosted_ratios": [round(r, 3) for r in hosted_ratios],
        # 99.9% one-sided upper bounds over the rounds: below the floor only when the rounds show
        # a path slower than it beyond their own spread
        "backend_ratio_upper_bound": round(ratio_upper_bound(backend_ratios), 3),
        "hosted_ratio_upper_bound": round(ratio_upper_bound(hosted_ratios), 3),
    }
    record_property("vllm_harness_overhead", summary)
    print(f"\nvLLM harness overhead: {summary}")
    # The harness must not be the bottleneck, even on a tiny model where vLLM's own call is
    # fastest. On the async engine the backend streams every token (for per-token times) while the
    # direct call asks for final outputs only, which costs some 10% more on this tiny model.
    floor = 0.9 if inside.engine == "LLM" else 0.8
    # Whole rounds swing by tens of percent on a busy machine (a median of 0.88 with
    # other jobs running); the bound over the rounds widens with that swing instead of failing.
    assert summary["backend_ratio_upper_bound"] > floor, summary
    assert summary["hosted_ratio_upper_bound"] > floor, summary
    if strict_overhead:  # on purpose, on a quiet machine: the medians themselves
        assert summary["backend_ratio"] > floor, summary
        assert summary["hosted_ratio"] > floor, summary
