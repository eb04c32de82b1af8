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
than 2%, that bound is what resolves the harness's cost. What is asserted by default is that
work's CPU time as a share of the direct run (< 2%): other processes can stretch the run but not
the CPU time of the added work, so a busy machine cannot fail it. The end-to-end ratio is
recorded with its upper confidence bound over the rounds; ``--llm-strict-overhead`` asserts
0.85 < ratio < 1.15 as well, for a run on a quiet machine.

``LLMBENCH_OVERHEAD_ROUNDS`` (default 6) and ``LLMBENCH_OVERHEAD_PROMPTS`` (default: one batch,
``batching.batch_size`` prompts) set the rounds and the prompts per run.
"""

from __future__ import annotations

import os
import statistics

import pytest

from pytest_llmbench.backends.overhead import ratio_upper_bound
from pytest_llmbench.backends.pytorch.overhead import added_host_time
from pytest_llmbench.workload.prompts import build_requests
from pytest_llmbench.workload.tokenizer import load_tokenizer

ROUNDS = int(os.environ.get("LLMBENCH_OVERHEAD_ROUNDS", "6"))
HOST_SHARE_MAX = 0.02  # the added work's CPU time per run, as a share of the direct run
STRICT_RATIO = (0.85, 1.15)  # plugin / direct, asserted with --llm-strict-overhead


def test_pytorch_harness_overhead(
    llm_bench, llm_backend, llm_config, record_property, strict_overhead
):
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
    ratios = [r.ratio for r in rounds]
    details = backend.info().details
    # The paired ratio cannot resolve 2% where whole runs swing more (host-bound eager decoding);
    # the work the plugin adds, timed alone, bounds its cost there.
    added = [
        added_host_time(backend, b, max(r.max_output_tokens for r in b))
        for b in backend._batches(requests)
    ]
    added_s = sum(a.per_run_s for a in added)
    added_cpu_s = sum(a.per_run_cpu_s for a in added)
    direct_run_s = rounds[0].output_tokens / direct
    summary = {
        "output_tokens_per_run": rounds[0].output_tokens,
        "batch_size": llm_config.batching.batch_size,
        "rounds": ROUNDS,
        "direct_tok_s": round(direct, 1),
        "backend_generate_tok_s": round(harness, 1),
        # Each round pairs the two paths back to back; the median of those paired ratios is the
        # claim (a ratio of medians would mix rounds whose conditions differ).
        "ratio": round(statistics.median(ratios), 3),
        "ratio_upper_bound": round(ratio_upper_bound(ratios), 3),  # 99.9%, one-sided
        "round_ratios": [round(r, 3) for r in ratios],
        "added_host_ms_per_run": round(added_s * 1e3, 3),
        "added_host_fraction": round(added_s / direct_run_s, 5),
        "added_host_cpu_ms_per_run": round(added_cpu_s * 1e3, 3),
        "added_host_cpu_fraction": round(added_cpu_s / direct_run_s, 5),
        "token_timing": details.get("token_timing", ""),
        "static_cache": details.get("static_cache", "transformers' own (dynamic)"),
        "cuda_graphs": details.get("cuda_graphs", "not applicable"),
    }
    record_property("pytorch_harness_overhead", summary)
    print(f"\npytorch harness overhead: {summary}")
    # The plugin's path must not be the bottleneck. Asserted where load cannot reach: the CPU time
    # of the added work does not grow when other processes share the cores, and the direct run
    # only gets longer (a smaller share). Under load the ratio swings by tens of percent in both
    # directions (rounds of 0.30-3.07 on a busy 2-core machine): recorded, and asserted
    # only when asked for.
    assert summary["added_host_cpu_fraction"] < HOST_SHARE_MAX, summary
    if strict_overhead:
        low, high = STRICT_RATIO
        assert low < summary["ratio"] < high, summary
