"""The compatibility matrix: translations, refusals and the llm_requires marker."""

from __future__ import annotations

import textwrap

import pytest

from pytest_llmbench import compat
from pytest_llmbench.config.load import parse_override, resolve_config
from pytest_llmbench.config.schema import ExperimentConfig


def config(*overrides: str) -> ExperimentConfig:
    return resolve_config(overrides=[parse_override(o) for o in overrides])


def test_every_row_covers_every_backend() -> None:
    for row in compat.MATRIX:
        assert set(row.cells) == set(compat.BACKENDS), row.parameter
        compat.get_value(ExperimentConfig(), row.parameter)  # names a real config key


def test_top_k_zero_becomes_minus_one_where_the_engine_says_so() -> None:
    c = config("decoder.do_sample=true")
    assert compat.translate(c, "pytorch").sampling["top_k"] == 0
    assert compat.translate(c, "vllm").sampling["top_k"] == -1
    assert compat.translate(c, "sglang").sampling["top_k"] == -1
    assert (
        compat.translate(config("decoder.do_sample=true", "decoder.top_k=40"), "vllm").sampling[
            "top_k"
        ]
        == 40
    )


def test_greedy_is_temperature_zero_on_engines_without_do_sample() -> None:
    greedy = config("decoder.temperature=0.7")  # do_sample false: still greedy
    assert compat.translate(greedy, "vllm").sampling["temperature"] == 0.0
    assert compat.translate(greedy, "pytorch").sampling["do_sample"] is False
    sampled = config("decoder.do_sample=true", "decoder.temperature=0.7")
    assert compat.translate(sampled, "vllm").sampling["temperature"] == 0.7


def test_output_length_is_forced_everywhere() -> None:
    c = config("max_output_tokens=64")
    for backend in compat.BACKENDS:
        t = compat.translate(c, backend)
        assert 64 in t.sampling.values()
        assert sorted(v for k, v in t.sampling.items() if k.endswith("_tokens")) == [64, 64]


def test_batch_size_is_exact_on_pytorch_and_a_hint_elsewhere() -> None:
    assert "max_num_seqs" not in compat.translate(ExperimentConfig(), "vllm").engine
    c = config("batching.batch_size=32")
    assert compat.translate(c, "pytorch").engine["batch_size"] == 32
    vllm = compat.translate(c, "vllm")
    assert vllm.engine["max_num_seqs"] == 32
    assert ("batching.batch_size", compat.cell("batching.batch_size", "vllm").note) in vllm.notes


def test_bnb_8bit_and_ngram_blocking_are_refused_on_vllm() -> None:
    t = compat.translate(
        config("quantization.load_in_8bit=true", "decoder.no_repeat_ngram_size=3"), "vllm"
    )
    assert [p for p, _ in t.unsupported] == [
        "decoder.no_repeat_ngram_size",
        "quantization.load_in_8bit",
    ]
    t4 = compat.translate(config("quantization.load_in_4bit=true"), "vllm")
    assert t4.engine["quantization"] == "bitsandbytes" and not t4.unsupported


def test_unused_unsupported_parameters_are_not_reported() -> None:
    assert compat.translate(ExperimentConfig(), "openai").unsupported == ()


def test_unknown_parameter_lists_the_known_ones() -> None:
    with pytest.raises(Exception, match="is not a universal parameter; known: "):
        compat.row("decoder.nosuch")


def test_marker_skips_with_the_reason_and_policy_applies(pytester: pytest.Pytester) -> None:
    from tests.conftest import ECHO_BACKEND_CONFTEST

    # The echo backend declares nothing, so every universal parameter is unsupported there.
    pytester.makeconftest(ECHO_BACKEND_CONFTEST)
    pytester.makepyfile(
        textwrap.dedent(
            """
            import pytest

            @pytest.mark.llm_requires("decoder.min_p")
            def test_needs_min_p(llm_backend):
                pass

            def test_plain(llm_backend):
                pass
            """
        )
    )
    result = pytester.runpytest("--llm-backend", "echo", "-rs")
    result.assert_outcomes(skipped=1, passed=1)
    assert (
        "echo does not support decoder.min_p: backend 'echo' declares no support"
        in result.stdout.str()
    )

    used = ("--llm-backend", "echo", "--llm-set", "decoder.top_k=5", "-rs")
    skipped = pytester.runpytest(*used)
    skipped.assert_outcomes(skipped=2)
    assert (
        "echo does not support parameters set in the config: decoder.top_k" in skipped.stdout.str()
    )
    pytester.runpytest(*used, "--llm-unsupported", "error").assert_outcomes(skipped=1, errors=1)
    pytester.runpytest(*used, "--llm-unsupported", "warn").assert_outcomes(skipped=1, passed=1)
