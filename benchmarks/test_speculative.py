"""Speculative decoding, measured: how many drafted tokens the target model accepted.

Runs where the session's config speculates (``--llm-preset pytorch-speculative`` for prompt
lookup in transformers, ``--llm-preset vllm-speculative`` for vLLM's n-gram proposer) and skips
elsewhere. Prompt lookup matches n-grams of the prompt and of what was generated so far; the
acceptance rate is the engine's own count (docs/quality.md).
"""

from __future__ import annotations

import pytest


def test_speculative_acceptance(llm_bench, llm_config):
    method = (
        llm_config.pytorch.assisted_generation.resolved_method
        if llm_bench.backend == "pytorch"
        else llm_config.vllm.speculative.method
    )
    if method is None:
        pytest.skip(f"{llm_bench.backend}: the config does not speculate (see docs/quality.md)")
    result = llm_bench(num_prompts=4, input_tokens=64, output_tokens=64)

    spec = result.speculative
    assert spec is not None, f"{result.backend} speculates but reported no counts"
    assert spec["drafts"] > 0 and 0.0 <= spec["acceptance_rate"] <= 1.0
