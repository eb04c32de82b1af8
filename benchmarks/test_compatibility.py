"""Compatibility: each backend's declared support and translations hold on the real engine."""

from __future__ import annotations

import pytest

from pytest_llmbench import compat


def test_translation_of_session_config(llm_backend, llm_config):
    translation = compat.translate(llm_config, llm_backend.name)

    # Forced output length reaches the engine in its own vocabulary, identical on every backend.
    native_max = {
        k: v for k, v in translation.sampling.items() if k in ("max_tokens", "max_new_tokens")
    }
    assert list(native_max.values()) == [llm_config.max_output_tokens]
    native_min = {
        k: v for k, v in translation.sampling.items() if k in ("min_tokens", "min_new_tokens")
    }
    assert list(native_min.values()) == [llm_config.forced_min_tokens]


@pytest.mark.llm_requires("decoder.repetition_penalty")
def test_repetition_penalty_changes_nothing_in_length(llm_bench):
    """A backend that declares repetition_penalty accepts it and still emits the forced length."""
    result = llm_bench(num_prompts=2, input_tokens=16, output_tokens=8, name="repetition-penalty")

    assert all(rep.output_tokens == 2 * 8 * rep.iterations for rep in result.repetitions)


@pytest.mark.llm_requires("decoder.no_repeat_ngram_size")
def test_no_repeat_ngram_size_is_declared(llm_backend):
    """Runs only where n-gram blocking exists; elsewhere the marker skips with the reason."""
    cell = compat.cell("decoder.no_repeat_ngram_size", llm_backend.name)
    assert cell.support is not compat.Support.UNSUPPORTED
