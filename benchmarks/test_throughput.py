"""Offline throughput: every request submitted at once, output length forced on every backend."""

from __future__ import annotations


def test_offline_throughput(llm_bench):
    result = llm_bench(num_prompts=8, input_tokens=32, output_tokens=16)

    for rep in result.repetitions:
        assert rep.errors == 0
        assert rep.requests == 8 * rep.iterations
        assert rep.output_tokens == 8 * 16 * rep.iterations  # forced length: exact token count
    assert result.aggregate()["output_throughput"] > 0


def test_batched_throughput(llm_bench, llm_config):
    batch = max(llm_config.batching.batch_size, 4)
    result = llm_bench(num_prompts=batch * 2, input_tokens=64, output_tokens=16, name="batched")

    assert all(rep.output_tokens == batch * 2 * 16 * rep.iterations for rep in result.repetitions)
