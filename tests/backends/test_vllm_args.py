"""The mapping of every ``vllm:`` key and of the universal parameters onto vLLM's arguments."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pytest_llmbench.backends.vllm.args import (
    VllmArgs,
    build_vllm_args,
    check_against_installed,
    forced_length,
)
from pytest_llmbench.compat import translate
from pytest_llmbench.config.engines import VllmConfig
from pytest_llmbench.config.fields import build, field_docs
from pytest_llmbench.config.load import resolve_config
from pytest_llmbench.config.schema import ExperimentConfig
from pytest_llmbench.errors import ConfigError, UnsupportedParameter


def config(**sections: Any) -> ExperimentConfig:
    return build(ExperimentConfig, sections)


def vargs(**sections: Any) -> VllmArgs:
    cfg = config(**sections)
    return build_vllm_args(cfg, translate(cfg, "vllm"))


# Every leaf key of the vllm: section and the test(s) below that cover it.
COVERED = {
    "tensor_parallel_size",
    "max_num_seqs",
    "max_num_batched_tokens",
    "gpu_memory_utilization",
    "swap_space",
    "cpu_offload_gb",
    "enable_prefix_caching",
    "enable_chunked_prefill",
    "kv_cache_dtype",
    "block_size",
    "max_model_len",
    "max_seq_len_to_capture",
    "enforce_eager",
    "distributed_backend",
    "disable_custom_all_reduce",
    "attention.backend",
    "attention.flash_version",
    "attention.disable_sliding_window",
    "speculative.model",
    "speculative.num_tokens",
    "speculative.method",
    "speculative.ngram_min",
    "speculative.ngram_max",
    "speculative.draft_tp_size",
    "lora.enabled",
    "lora.max_loras",
    "lora.max_rank",
    "lora.extra_vocab_size",
    "quantization_method",
    "load_format",
    "best_of",
    "use_beam_search",
    "length_penalty",
    "logprobs",
    "logit_bias",
    "extra",
}


def test_every_vllm_key_is_covered_here():
    keys = {name for name, *_ in field_docs(VllmConfig)}
    assert keys == COVERED


def test_defaults_pass_no_engine_argument_and_force_the_output_length():
    a = vargs()
    assert a.engine == {}  # vLLM's own defaults stay in force
    assert a.sampling == {
        "max_tokens": 16,
        "min_tokens": 16,
        "ignore_eos": True,
        "temperature": 0.0,  # greedy by default
        "top_p": 1.0,
        "top_k": -1,
        "min_p": 0.0,
        "repetition_penalty": 1.0,
        "seed": 0,
    }


@pytest.mark.parametrize(
    ("key", "value", "native"),
    [
        ("max_num_seqs", 64, "max_num_seqs"),
        ("max_num_batched_tokens", 8192, "max_num_batched_tokens"),
        ("gpu_memory_utilization", 0.5, "gpu_memory_utilization"),
        ("swap_space", 8.0, "swap_space"),
        ("cpu_offload_gb", 2.0, "cpu_offload_gb"),
        ("enable_prefix_caching", False, "enable_prefix_caching"),
        ("enable_chunked_prefill", True, "enable_chunked_prefill"),
        ("kv_cache_dtype", "fp8", "kv_cache_dtype"),
        ("block_size", 32, "block_size"),
        ("max_model_len", 512, "max_model_len"),
        ("max_seq_len_to_capture", 4096, "max_seq_len_to_capture"),
        ("enforce_eager", True, "enforce_eager"),
        ("distributed_backend", "ray", "distributed_executor_backend"),
        ("disable_custom_all_reduce", True, "disable_custom_all_reduce"),
        ("quantization_method", "awq", "quantization"),
        ("load_format", "dummy", "load_format"),
        ("tensor_parallel_size", 2, "tensor_parallel_size"),
    ],
)
def test_engine_keys_map_to_their_vllm_name(key, value, native):
    a = vargs(vllm={key: value})
    assert a.engine == {native: value}
    assert a.sources[native] == f"vllm.{key}"


@pytest.mark.parametrize(
    ("key", "default"),
    [
        ("gpu_memory_utilization", 0.9),
        ("swap_space", 4),
        ("cpu_offload_gb", 0),
        ("kv_cache_dtype", "auto"),
        ("enforce_eager", False),
        ("load_format", "auto"),
        ("tensor_parallel_size", 1),
    ],
)
def test_keys_left_at_their_default_are_not_passed(key, default):
    assert vargs(vllm={key: default}).engine == {}


def test_attention_keys():
    a = vargs(
        vllm={
            "attention": {
                "backend": "FLASHINFER",
                "flash_version": 3,
                "disable_sliding_window": True,
            }
        }
    )
    assert a.engine == {
        "attention_backend": "FLASHINFER",
        "attention_config": {"flash_attn_version": 3},
        "disable_sliding_window": True,
    }
    assert a.sources["attention_config.flash_attn_version"] == "vllm.attention.flash_version"


def test_ngram_speculation_becomes_a_speculative_config_dict():
    a = vargs(
        vllm={"speculative": {"method": "ngram", "num_tokens": 3, "ngram_min": 2, "ngram_max": 5}}
    )
    assert a.engine == {
        "speculative_config": {
            "method": "ngram",
            "num_speculative_tokens": 3,
            "prompt_lookup_min": 2,
            "prompt_lookup_max": 5,
        }
    }


def test_draft_model_speculation_with_its_tensor_parallel_size():
    a = vargs(
        vllm={
            "speculative": {"method": "draft_model", "model": "/models/draft", "draft_tp_size": 2}
        }
    )
    assert a.engine["speculative_config"] == {
        "method": "draft_model",
        "model": "/models/draft",
        "num_speculative_tokens": 5,
        "draft_tensor_parallel_size": 2,
    }


def test_a_draft_model_alone_lets_vllm_detect_the_method():
    a = vargs(vllm={"speculative": {"model": "/models/eagle"}})
    assert a.engine["speculative_config"] == {"model": "/models/eagle", "num_speculative_tokens": 5}


@pytest.mark.parametrize(
    ("speculative", "field", "message"),
    [
        ({"num_tokens": 3}, "vllm.speculative.num_tokens", "speculative decoding is off"),
        ({"ngram_max": 6}, "vllm.speculative.ngram_max", "speculative decoding is off"),
        ({"draft_tp_size": 2}, "vllm.speculative.draft_tp_size", "speculative decoding is off"),
        ({"method": "ngram", "model": "/m"}, "vllm.speculative.model", "method 'ngram'"),
        ({"method": "ngram", "draft_tp_size": 2}, "vllm.speculative.draft_tp_size", "ngram"),
        (
            {"method": "eagle", "model": "/m", "ngram_min": 2},
            "vllm.speculative.ngram_min",
            "only applies",
        ),
    ],
)
def test_speculative_keys_that_do_not_apply_are_refused(speculative, field, message):
    with pytest.raises(ConfigError, match=message) as info:
        vargs(vllm={"speculative": speculative})
    assert info.value.field == field


def test_lora_keys():
    a = vargs(
        vllm={"lora": {"enabled": True, "max_loras": 4, "max_rank": 64, "extra_vocab_size": 256}}
    )
    assert a.engine == {
        "enable_lora": True,
        "max_loras": 4,
        "max_lora_rank": 64,
        "lora_extra_vocab_size": 256,
    }
    assert vargs(vllm={"lora": {"enabled": True}}).engine == {"enable_lora": True}


def test_lora_settings_without_lora_enabled_are_refused():
    with pytest.raises(ConfigError, match="vllm.lora.enabled is false") as info:
        vargs(vllm={"lora": {"max_rank": 32}})
    assert info.value.field == "vllm.lora.max_rank"


def test_sampling_side_keys():
    a = vargs(
        vllm={
            "best_of": 2,
            "use_beam_search": True,
            "length_penalty": 0.8,
            "logprobs": 5,
            "logit_bias": {7: -100.0},
        }
    )
    assert a.engine == {}
    assert {
        k: a.sampling[k]
        for k in ("best_of", "use_beam_search", "length_penalty", "logprobs", "logit_bias")
    } == {
        "best_of": 2,
        "use_beam_search": True,
        "length_penalty": 0.8,
        "logprobs": 5,
        "logit_bias": {7: -100.0},
    }


def test_length_penalty_without_beam_search_is_refused():
    with pytest.raises(ConfigError, match="use_beam_search") as info:
        vargs(vllm={"length_penalty": 0.5})
    assert info.value.field == "vllm.length_penalty"


def test_extra_is_passed_verbatim_but_never_overrides_a_mapped_key():
    a = vargs(vllm={"extra": {"max_cudagraph_capture_size": 256, "async_scheduling": True}})
    assert a.engine == {"max_cudagraph_capture_size": 256, "async_scheduling": True}
    assert a.sources["async_scheduling"] == "vllm.extra.async_scheduling"
    with pytest.raises(ConfigError, match="conflicts with vllm.max_num_seqs") as info:
        vargs(vllm={"max_num_seqs": 8, "extra": {"max_num_seqs": 16}})
    assert info.value.field == "vllm.extra.max_num_seqs"


# -- universal parameters as they reach vLLM ------------------------------------------------------
def test_top_k_zero_becomes_minus_one_and_other_values_pass():
    assert vargs(decoder={"top_k": 0}).sampling["top_k"] == -1
    assert vargs(decoder={"top_k": 40}).sampling["top_k"] == 40


def test_greedy_decoding_is_temperature_zero():
    assert vargs(decoder={"do_sample": False, "temperature": 0.7}).sampling["temperature"] == 0.0
    assert vargs(decoder={"do_sample": True, "temperature": 0.7}).sampling["temperature"] == 0.7
    assert vargs(decoder={"do_sample": True, "temperature": 0.0}).sampling["temperature"] == 0.0


def test_min_tokens_is_forced_to_max_tokens_with_eos_ignored():
    s = vargs(max_output_tokens=64).sampling
    assert (s["max_tokens"], s["min_tokens"], s["ignore_eos"]) == (64, 64, True)


def test_an_explicit_smaller_minimum_keeps_eos_live():
    s = vargs(max_output_tokens=64, min_output_tokens=8).sampling
    assert (s["max_tokens"], s["min_tokens"], s["ignore_eos"]) == (64, 8, False)
    assert forced_length(16, 16) == {"max_tokens": 16, "min_tokens": 16, "ignore_eos": True}


def test_sampling_parameters_pass_through():
    s = vargs(
        decoder={"do_sample": True, "top_p": 0.9, "min_p": 0.05, "repetition_penalty": 1.1},
        random_seed=7,
    ).sampling
    assert (s["top_p"], s["min_p"], s["repetition_penalty"], s["seed"]) == (0.9, 0.05, 1.1, 7)


def test_precision_becomes_dtype_and_auto_is_left_to_vllm():
    assert vargs(fp_precision="bfloat16").engine == {"dtype": "bfloat16"}
    assert "dtype" not in vargs(fp_precision="auto").engine


def test_bnb_4bit_becomes_bitsandbytes_quantization():
    a = vargs(quantization={"load_in_4bit": True})
    assert a.engine == {"quantization": "bitsandbytes"}
    assert a.sources["quantization"] == "quantization.load_in_4bit"
    # The same request twice is consistent, not a conflict.
    same = vargs(quantization={"load_in_4bit": True}, vllm={"quantization_method": "bitsandbytes"})
    assert same.engine == {"quantization": "bitsandbytes"}


def test_bnb_4bit_and_another_quantization_method_conflict():
    with pytest.raises(ConfigError, match="conflicts with quantization.load_in_4bit") as info:
        vargs(quantization={"load_in_4bit": True}, vllm={"quantization_method": "awq"})
    assert info.value.field == "vllm.quantization_method"


@pytest.mark.parametrize(
    ("sections", "parameter"),
    [
        ({"quantization": {"load_in_8bit": True}}, "quantization.load_in_8bit"),
        ({"decoder": {"no_repeat_ngram_size": 3}}, "decoder.no_repeat_ngram_size"),
    ],
)
def test_unsupported_universal_parameters_are_refused(sections, parameter):
    cfg = config(**sections)
    with pytest.raises(UnsupportedParameter, match=parameter):
        build_vllm_args(cfg, translate(cfg, "vllm"))
    # Non-strict (the session's policy said warn): never silent, never passed on.
    with pytest.warns(UserWarning, match=parameter):
        a = build_vllm_args(cfg, translate(cfg, "vllm"), strict=False)
    passed = {**a.engine, **a.sampling}
    assert not {"load_in_8bit", "no_repeat_ngram_size", "quantization"} & set(passed)


def test_batch_size_is_a_max_num_seqs_hint_that_the_vllm_key_overrides():
    assert vargs(batching={"batch_size": 32}).engine == {"max_num_seqs": 32}
    a = vargs(batching={"batch_size": 32}, vllm={"max_num_seqs": 256})
    assert a.engine == {"max_num_seqs": 256}
    assert any("batching.batch_size" in n for n in a.notes)
    assert vargs(batching={"max_tokens_per_batch": 2048}).engine == {"max_num_batched_tokens": 2048}


def test_tensor_parallel_sharding_and_its_conflict():
    sharded = {"strategy": "tensor_parallel", "num_devices": 4}
    assert vargs(sharding=sharded).engine == {"tensor_parallel_size": 4}
    assert vargs(sharding=sharded, vllm={"tensor_parallel_size": 4}).engine == {
        "tensor_parallel_size": 4
    }
    with pytest.raises(ConfigError, match="sharding.num_devices") as info:
        vargs(sharding=sharded, vllm={"tensor_parallel_size": 2})
    assert info.value.field == "vllm.tensor_parallel_size"


def test_pipeline_parallel_sharding_is_vllms_pipeline_parallel_size():
    """Not one GPU in silence: vLLM splits the layers over num_devices GPUs."""
    piped = vargs(sharding={"strategy": "pipeline_parallel", "num_devices": 2})
    assert piped.engine == {"pipeline_parallel_size": 2}
    assert piped.sources["pipeline_parallel_size"] == "sharding.strategy"
    both = vargs(
        sharding={"strategy": "pipeline_parallel", "num_devices": 2},
        vllm={"tensor_parallel_size": 2},
    )
    assert both.engine == {"pipeline_parallel_size": 2, "tensor_parallel_size": 2}


def test_a_translation_for_another_backend_is_refused():
    cfg = config()
    with pytest.raises(ValueError, match="pytorch"):
        build_vllm_args(cfg, translate(cfg, "pytorch"))


# -- the installed release -----------------------------------------------------------------------
ENGINE_032 = {
    "max_num_seqs",
    "speculative_config",
    "attention_config",
    "max_lora_rank",
    "enable_lora",
}
SAMPLING_032 = {"max_tokens", "min_tokens", "ignore_eos", "temperature", "top_k", "top_p", "min_p"}
SAMPLING_032 |= {"repetition_penalty", "seed", "logprobs", "logit_bias", "detokenize"}


def test_nothing_is_reported_when_the_release_accepts_every_key():
    a = vargs(vllm={"max_num_seqs": 8, "lora": {"enabled": True, "max_rank": 32}})
    assert (
        check_against_installed(
            a.engine, a.sampling, "0.32.0", ENGINE_032, SAMPLING_032, sources=a.sources
        )
        == []
    )


def test_removed_engine_keys_are_named_by_config_key_and_version():
    a = vargs(
        vllm={
            "swap_space": 8,
            "max_seq_len_to_capture": 4096,
            "lora": {"enabled": True, "extra_vocab_size": 64},
        }
    )
    problems = check_against_installed(
        a.engine, a.sampling, "0.32.0", ENGINE_032, SAMPLING_032, sources=a.sources
    )
    assert len(problems) == 3
    text = "\n".join(problems)
    assert (
        "vllm.swap_space (vLLM argument 'swap_space'): "
        "vLLM 0.32.0 has no engine argument 'swap_space'" in text
    )
    assert "no CPU swap space" in text
    assert "vllm.max_seq_len_to_capture" in text and "max_cudagraph_capture_size" in text
    assert "vllm.lora.extra_vocab_size (vLLM argument 'lora_extra_vocab_size')" in text


def test_removed_sampling_keys_are_named():
    a = vargs(vllm={"best_of": 3, "use_beam_search": True, "length_penalty": 0.9})
    problems = check_against_installed(
        a.engine, a.sampling, "0.32.0", ENGINE_032, SAMPLING_032, sources=a.sources
    )
    text = "\n".join(problems)
    assert len(problems) == 3
    assert (
        "vllm.best_of (vLLM argument 'best_of'): "
        "vLLM 0.32.0 has no SamplingParams argument 'best_of'" in text
    )
    assert "vllm.use_beam_search" in text and "LLM.beam_search()" in text
    assert "vllm.length_penalty" in text


def test_renamed_nested_keys_are_named():
    a = vargs(vllm={"speculative": {"method": "ngram"}})
    old_spec_fields = {
        "method",
        "num_speculative_tokens",
        "ngram_prompt_lookup_min",
        "ngram_prompt_lookup_max",
    }
    problems = check_against_installed(
        a.engine,
        a.sampling,
        "0.6.3",
        ENGINE_032,
        SAMPLING_032,
        sources=a.sources,
        accepted_nested={"speculative_config": old_spec_fields},
    )
    assert problems == [
        "vllm.speculative.ngram_min (vLLM argument 'speculative_config.prompt_lookup_min'): "
        "vLLM 0.6.3 has no speculative_config field 'prompt_lookup_min'",
        "vllm.speculative.ngram_max (vLLM argument 'speculative_config.prompt_lookup_max'): "
        "vLLM 0.6.3 has no speculative_config field 'prompt_lookup_max'",
    ]


def test_a_release_without_an_argument_we_map_gets_a_hint():
    a = vargs(vllm={"attention": {"backend": "FLASHINFER"}})
    (problem,) = check_against_installed(
        a.engine, a.sampling, "0.5.0", {"model"}, SAMPLING_032, sources=a.sources
    )
    assert problem.startswith(
        "vllm.attention.backend (vLLM argument 'attention_backend'): vLLM 0.5.0"
    )
    assert "VLLM_ATTENTION_BACKEND" in problem


def test_without_sources_the_native_name_is_reported():
    (problem,) = check_against_installed({"swap_space": 8}, {}, "0.32.0", ENGINE_032, SAMPLING_032)
    assert problem.startswith("'swap_space': vLLM 0.32.0 has no engine argument 'swap_space'")


# -- presets -------------------------------------------------------------------------------------
PRESETS = Path(__file__).resolve().parents[2] / "configs" / "presets"


@pytest.mark.parametrize(
    "name", ["vllm-throughput", "vllm-speculative", "vllm-memory-efficient", "vllm-low-latency"]
)
def test_vllm_presets_load_and_map_without_notes(name):
    cfg = resolve_config(config_file=PRESETS / f"{name}.yaml")
    a = build_vllm_args(cfg, translate(cfg, "vllm"))
    assert a.engine and not a.notes
    if name == "vllm-speculative":
        assert a.engine["speculative_config"]["method"] == "ngram"  # needs no draft model
