"""Offline throughput: every request submitted at once, output length forced on every backend.

The workload comes from the config (``workload.*``, ``max_output_tokens``, ``batching.*``), so the
same benchmark measures a laptop's tiny model or an H100 at batch 64
(``--llm-config configs/examples/throughput.yaml``). ``workload.num_prompts_sweep: [1, 8, 64]``
gives one result per number of prompts submitted at once, all on the same engine.
"""

from __future__ import annotations


def test_offline_throughput(llm_bench, llm_config):
    sweep = llm_config.workload.num_prompts_sweep
    for num_prompts in sweep or [llm_config.workload.num_prompts]:
        workload = llm_bench.workload("offline", num_prompts=num_prompts)
        result = llm_bench(workload, label=f"n{num_prompts}" if sweep else None)

        for rep in result.repetitions:
            assert rep.errors == 0
            assert rep.requests == workload.num_prompts * rep.iterations
            # forced output length: exactly the same token count on every backend
            assert (
                rep.output_tokens == workload.num_prompts * workload.output_tokens * rep.iterations
            )
        assert result.aggregate()["output_throughput"] > 0
