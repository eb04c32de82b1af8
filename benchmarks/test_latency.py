"""Single-stream latency: one request at a time; time to first token and end-to-end latency."""

from __future__ import annotations


def test_single_stream_latency(llm_bench):
    result = llm_bench(llm_bench.workload("single-stream", num_prompts=1))

    agg = result.aggregate()
    assert agg["ttft_s_p50"] is not None, f"{result.backend} reported no first-token time"
    assert 0 < agg["ttft_s_p50"] <= agg["e2e_latency_s_p50"]
