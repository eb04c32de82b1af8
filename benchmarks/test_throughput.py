"""Offline throughput: every request submitted at once, output length forced on every backend.

The workload comes from the config (``workload.*``, ``max_output_tokens``, ``batching.*``), so the
same benchmark measures a laptop's tiny model or an H100 at batch 64:
``--llm-config configs/examples/throughput.yaml``.
"""

from __future__ import annotations


def test_offline_throughput(llm_bench, llm_config):
    workload = llm_bench.workload("offline")
    result = llm_bench(workload)

    for rep in result.repetitions:
        assert rep.errors == 0
        assert rep.requests == workload.num_prompts * rep.iterations
        # forced output length: exactly the same token count on every backend
        assert rep.output_tokens == workload.num_prompts * workload.output_tokens * rep.iterations
    assert result.aggregate()["output_throughput"] > 0
