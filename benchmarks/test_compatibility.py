"""Compatibility: each backend's declared support and translations hold.

The declaration and translation tests take ``llm_backend_name`` (no engine), so they run and
pass on a machine without the engine; the repetition-penalty test runs on the real engine.
"""

from __future__ import annotations

import pytest

from pytest_llmbench import compat


def test_translation_of_session_config(llm_backend_name, llm_config):
    translation = compat.translate(llm_config, llm_backend_name)

    # Forced output length reaches the engine in its own vocabulary, identical on every backend.
    native_max = {
        k: v for k, v in translation.sampling.items() if k in ("max_tokens", "max_new_tokens")
    }
    assert list(native_max.values()) == [llm_config.max_output_tokens]
    native_min = {
        k: v for k, v in translation.sampling.items() if k in ("min_tokens", "min_new_tokens")
    }
    assert list(native_min.values()) == [llm_config.forced_min_tokens]


# Each builder returns (what it built, what it must have built) for the parts every config fixes.
def _vllm(config, translation):
    from pytest_llmbench.backends.vllm.args import build_vllm_args

    sampling = build_vllm_args(config, translation).sampling
    built = (sampling["max_tokens"], sampling["min_tokens"])
    return built, (config.max_output_tokens, config.forced_min_tokens)


def _sglang(config, translation):
    from pytest_llmbench.backends.sglang.args import engine_kwargs, sampling_params

    sampling_params(config, translation)
    return engine_kwargs(config, translation, "/the/model")["model_path"], "/the/model"


def _tensorrt(config, translation):
    from pytest_llmbench.backends.tensorrt.args import llm_plan

    return llm_plan(config, translation, "/the/model").kwargs["model"], "/the/model"


NATIVE_ARGUMENTS = {"vllm": _vllm, "sglang": _sglang, "tensorrt": _tensorrt}


def test_engine_arguments_build_from_the_session_config(llm_backend_name, llm_config):
    """The engine's own arguments build from this config (contradictions raise ConfigError)."""
    build = NATIVE_ARGUMENTS.get(llm_backend_name)
    if build is None:
        pytest.skip(f"{llm_backend_name} has no engine-argument builder beyond the translation")
    built, expected = build(llm_config, compat.translate(llm_config, llm_backend_name))
    assert built == expected


@pytest.mark.llm_requires("decoder.repetition_penalty")
def test_repetition_penalty_changes_nothing_in_length(llm_bench):
    """A backend that declares repetition_penalty accepts it and still emits the forced length."""
    result = llm_bench(num_prompts=2, input_tokens=16, output_tokens=8, name="repetition-penalty")

    assert all(rep.output_tokens == 2 * 8 * rep.iterations for rep in result.repetitions)


@pytest.mark.llm_requires("decoder.no_repeat_ngram_size")
def test_no_repeat_ngram_size_is_declared(llm_backend_name):
    """Runs only where n-gram blocking exists; elsewhere the marker skips with the reason."""
    cell = compat.cell("decoder.no_repeat_ngram_size", llm_backend_name)
    assert cell.support is not compat.Support.UNSUPPORTED
