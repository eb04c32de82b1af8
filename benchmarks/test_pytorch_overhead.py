"""Harness overhead on transformers: output tok/s through the plugin vs ``generate`` by hand.

The same workload runs on the same model object two ways, interleaved over rounds so that drift
hits both alike: transformers' ``model.generate`` written as a user would (inputs padded and on
the device once, the same generation settings and forced length, the static cache passed and
reset where the preset asks for one), and ``PytorchBackend.generate``, the path every benchmark
takes (per-token timestamps, per-request Completions). Both run in this process.

    pytest benchmarks/test_pytorch_overhead.py --llm-backend pytorch -s
    pytest benchmarks/test_pytorch_overhead.py --llm-backend pytorch \
        --llm-preset pytorch-optimized --llm-set batching.batch_size=64 --llm-model MODEL -s

The summary also gives the host time the plugin adds per run, timed alone
(``added_host_ms_per_run``, and as a fraction of the direct run): where whole runs swing by more
than 2%, that bound is what resolves the harness's cost.

``LLMBENCH_OVERHEAD_ROUNDS`` (default 6) and ``LLMBENCH_OVERHEAD_PROMPTS`` (default: one batch,
``batching.batch_size`` prompts) set the rounds and the prompts per run.
"""

from __future__ import annotations

import os
import statistics

import pytest

from pytest_llmbench.backends.pytorch.overhead import added_host_time
from pytest_llmbench.workload.prompts import build_requests
from pytest_llmbench.workload.tokenizer import load_tokenizer

ROUNDS = int(os.environ.get("LLMBENCH_OVERHEAD_ROUNDS", "6"))


def test_pytorch_harness_overhead(llm_bench, llm_backend, llm_config, record_property):
    if llm_backend.name != "pytorch":
        pytest.skip("measures the pytorch backend's harness against transformers itself")
    assert ROUNDS >= 2 and ROUNDS % 2 == 0, "LLMBENCH_OVERHEAD_ROUNDS must be even"
    prompts = int(os.environ.get("LLMBENCH_OVERHEAD_PROMPTS", llm_config.batching.batch_size))
    workload = llm_bench.workload("overhead", num_prompts=prompts)  # lengths from the config
    tokenizer = load_tokenizer(llm_backend.spec.model_path)
    requests = build_requests(workload, tokenizer, tokenizer.vocab_ids())
    backend = llm_backend.backend  # in process: the PytorchBackend itself

    backend.harness_overhead(requests, 1)  # warm-up (and compilation) of both paths
    rounds = [backend.harness_overhead(requests, 1, False, i % 2 == 1) for i in range(ROUNDS)]
    direct = statistics.median(r.direct_tok_s for r in rounds)
    harness = statistics.median(r.harness_tok_s for r in rounds)
    details = backend.info().details
    # The paired ratio cannot resolve 2% where whole runs swing more (host-bound eager decoding);
    # the work the plugin adds, timed alone, bounds its cost there.
    added_s = sum(
        added_host_time(backend, b, max(r.max_output_tokens for r in b)).per_run_s
        for b in backend._batches(requests)
    )
    direct_run_s = rounds[0].output_tokens / direct
    summary = {
        "output_tokens_per_run": rounds[0].output_tokens,
        "batch_size": llm_config.batching.batch_size,
        "rounds": ROUNDS,
        "direct_tok_s": round(direct, 1),
        "backend_generate_tok_s": round(harness, 1),
        # Each round pairs the two paths back to back; the median of those paired ratios is the
        # claim (a ratio of medians would mix rounds whose conditions differ).
        "ratio": round(statistics.median(r.ratio for r in rounds), 3),
        "round_ratios": [round(r.ratio, 3) for r in rounds],
        "added_host_ms_per_run": round(added_s * 1e3, 3),
        "added_host_fraction": round(added_s / direct_run_s, 5),
        "token_timing": details.get("token_timing", ""),
        "static_cache": details.get("static_cache", "transformers' own (dynamic)"),
        "cuda_graphs": details.get("cuda_graphs", "not applicable"),
    }
    record_property("pytorch_harness_overhead", summary)
    print(f"\npytorch harness overhead: {summary}")
    # The plugin's path must not be the bottleneck. The bound leaves room for run-to-run noise on
    # a busy 2-core CPU machine (several percent); on a GPU the recorded ratio is the claim
    # (docs/performance.md), and it is read there, not asserted at 2% here. Under pytest-xdist
    # other workers share the cores and swing either path by tens of percent: recorded only.
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        assert 0.85 < summary["ratio"] < 1.15, summary
