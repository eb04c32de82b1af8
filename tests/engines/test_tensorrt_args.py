"""TensorRT-LLM translation: every ``tensorrt:`` key, the sampling translation, conflicts.

TensorRT-LLM is not installed here; these pin the mapping onto the LLM API names read from
NVIDIA/TensorRT-LLM (see the module docstring of ``backends/tensorrt/args.py``).
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_llmbench import compat
from pytest_llmbench.backends.base import GenerationRequest
from pytest_llmbench.backends.tensorrt import args as tensorrt_args
from pytest_llmbench.config.load import parse_override, resolve_config
from pytest_llmbench.config.schema import ExperimentConfig
from pytest_llmbench.errors import ConfigError

MODEL = "/models/m"
# SamplingParams fields (tensorrt_llm/sampling_params.py) that our translation may produce.
SAMPLING_FIELDS = {
    "max_tokens", "min_tokens", "ignore_eos", "end_id", "top_k", "top_p", "temperature", "min_p",
    "repetition_penalty", "no_repeat_ngram_size", "seed",
}  # fmt: skip


def config(*overrides: str) -> ExperimentConfig:
    return resolve_config(overrides=[parse_override(o) for o in overrides])


def plan(*overrides: str) -> tensorrt_args.LlmPlan:
    c = config(*overrides)
    return tensorrt_args.llm_plan(c, compat.translate(c, "tensorrt"), MODEL)


def request(max_tokens: int = 16, min_tokens: int = 16) -> GenerationRequest:
    return GenerationRequest("r0", (1, 2, 3), max_tokens, min_tokens)


def test_defaults_pass_only_the_model_to_the_release_default_llm() -> None:
    assert plan() == tensorrt_args.LlmPlan(None, {"model": MODEL})


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("tensorrt.tensor_parallel_size=4", {"tensor_parallel_size": 4}),
        ("tensorrt.pipeline_parallel_size=2", {"pipeline_parallel_size": 2}),
        ("tensorrt.max_batch_size=256", {"max_batch_size": 256}),
        ("tensorrt.max_num_tokens=8192", {"max_num_tokens": 8192}),
        ("tensorrt.max_seq_len=4096", {"max_seq_len": 4096}),
        ("tensorrt.kv_cache_config.free_gpu_memory_fraction=0.85",
         {"kv_cache_config": {"free_gpu_memory_fraction": 0.85}}),
        ("tensorrt.kv_cache_config.enable_block_reuse=false",
         {"kv_cache_config": {"enable_block_reuse": False}}),
        ("batching.batch_size=64", {"max_batch_size": 64}),
        ("batching.max_tokens_per_batch=2048", {"max_num_tokens": 2048}),
        ("fp_precision=float16", {"dtype": "float16"}),
        ("tensorrt.extra={enable_chunked_prefill: true}", {"enable_chunked_prefill": True}),
    ],
)  # fmt: skip
def test_each_key_reaches_its_llm_argument(override: str, expected: dict) -> None:
    assert plan(override) == tensorrt_args.LlmPlan(None, {"model": MODEL, **expected})


def test_backend_choice() -> None:
    assert plan("tensorrt.backend=pytorch") == tensorrt_args.LlmPlan(
        "pytorch", {"model": MODEL, "backend": "pytorch"}
    )
    assert plan("tensorrt.backend=_autodeploy").kwargs["backend"] == "_autodeploy"
    # The engine LLM is its own class: no backend argument.
    assert plan("tensorrt.backend=tensorrt") == tensorrt_args.LlmPlan("tensorrt", {"model": MODEL})
    got = plan("tensorrt.kv_cache_config.dtype=fp8", "tensorrt.backend=pytorch")
    assert got.kwargs["kv_cache_config"] == {"dtype": "fp8"}


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("tensorrt.quantization=fp8", {"quant_config": {"quant_algo": "FP8"}}),
        ("tensorrt.quantization=W4A16_AWQ", {"quant_config": {"quant_algo": "W4A16_AWQ"}}),
        ("tensorrt.build={max_beam_width: 1, gather_context_logits: false}",
         {"build_config": {"max_beam_width": 1, "gather_context_logits": False}}),
    ],
)  # fmt: skip
def test_engine_only_keys_select_the_tensorrt_engine_llm(override: str, expected: dict) -> None:
    assert plan(override) == tensorrt_args.LlmPlan("tensorrt", {"model": MODEL, **expected})


def test_prebuilt_engine_directory_is_the_model_and_the_hf_dir_the_tokenizer() -> None:
    got = plan("tensorrt.engine_dir=/engines/llama")
    assert got == tensorrt_args.LlmPlan("tensorrt", {"model": "/engines/llama", "tokenizer": MODEL})


def test_sharding_becomes_tp_or_pp() -> None:
    tp = plan("sharding.strategy=tensor_parallel", "sharding.num_devices=4").kwargs
    assert tp["tensor_parallel_size"] == 4 and "pipeline_parallel_size" not in tp
    pp = plan("sharding.strategy=pipeline_parallel", "sharding.num_devices=2").kwargs
    assert pp["pipeline_parallel_size"] == 2 and "tensor_parallel_size" not in pp


@pytest.mark.parametrize(
    ("overrides", "field", "mentions"),
    [
        (["tensorrt.tensor_parallel_size=2", "sharding.strategy=tensor_parallel",
          "sharding.num_devices=4"], "tensorrt.tensor_parallel_size", "sharding.num_devices"),
        (["tensorrt.pipeline_parallel_size=2", "sharding.strategy=pipeline_parallel",
          "sharding.num_devices=4"], "tensorrt.pipeline_parallel_size", "sharding.num_devices"),
        (["tensorrt.max_batch_size=8", "batching.batch_size=16"],
         "tensorrt.max_batch_size", "batching.batch_size"),
        (["tensorrt.max_num_tokens=512", "batching.max_tokens_per_batch=1024"],
         "tensorrt.max_num_tokens", "batching.max_tokens_per_batch"),
        (["tensorrt.quantization=FP8", "tensorrt.backend=pytorch"],
         "tensorrt.quantization", "tensorrt.backend"),
        (["tensorrt.engine_dir=/e", "tensorrt.backend=pytorch"],
         "tensorrt.engine_dir", "tensorrt.backend"),
        (["tensorrt.build={max_beam_width: 2}", "tensorrt.backend=_autodeploy"],
         "tensorrt.build", "tensorrt.backend"),
        (["tensorrt.engine_dir=/e", "tensorrt.build={max_beam_width: 2}"],
         "tensorrt.build", "tensorrt.engine_dir"),
        (["tensorrt.engine_dir=/e", "tensorrt.quantization=FP8"],
         "tensorrt.quantization", "tensorrt.engine_dir"),
        (["tensorrt.kv_cache_config.dtype=fp8", "tensorrt.backend=tensorrt"],
         "tensorrt.kv_cache_config.dtype", "tensorrt.backend"),
        (["tensorrt.kv_cache_config.dtype=fp8", "tensorrt.quantization=FP8"],
         "tensorrt.kv_cache_config.dtype", "tensorrt.quantization"),
        (["tensorrt.build={max_batch_size: 64}", "tensorrt.max_batch_size=128"],
         "tensorrt.build.max_batch_size", "tensorrt.max_batch_size"),
        (["tensorrt.extra={max_seq_len: 10}", "tensorrt.max_seq_len=20"],
         "tensorrt.extra.max_seq_len", "typed"),
        (["tensorrt.extra={model: /x}"], "tensorrt.extra.model", "model_name"),
    ],
)  # fmt: skip
def test_conflicts_name_both_fields(overrides: list[str], field: str, mentions: str) -> None:
    with pytest.raises(ConfigError) as info:
        plan(*overrides)
    assert info.value.field == field
    assert mentions in str(info.value)


def test_universal_parameters_tensorrt_lacks_are_reported() -> None:
    c = config("quantization.load_in_8bit=true")
    assert [p for p, _ in compat.translate(c, "tensorrt").unsupported] == [
        "quantization.load_in_8bit"
    ]


# -- sampling ------------------------------------------------------------------------------------
def sampling(*overrides: str, req: GenerationRequest | None = None, eos_field: bool = True) -> dict:
    c = config(*overrides)
    return tensorrt_args.sampling_kwargs(
        compat.translate(c, "tensorrt"), req or request(), ignore_eos_field=eos_field
    )


def test_greedy_is_top_k_one_with_top_p_and_temperature_unset() -> None:
    got = sampling("decoder.temperature=0.7", "decoder.min_p=0.1")  # do_sample false: greedy
    assert got == {
        "top_k": 1,
        "seed": 0,
        "max_tokens": 16,
        "min_tokens": 16,
        "ignore_eos": True,
    }


def test_sampling_passes_top_p_so_the_runtime_does_not_fall_back_to_greedy() -> None:
    got = sampling("decoder.do_sample=true")
    assert got["top_p"] == 1.0 and got["temperature"] == 1.0 and "top_k" not in got


def test_sampling_translation() -> None:
    got = sampling(
        "decoder.do_sample=true",
        "decoder.temperature=0.7",
        "decoder.top_p=0.9",
        "decoder.top_k=40",
        "decoder.min_p=0.05",
        "decoder.repetition_penalty=1.1",
        "decoder.no_repeat_ngram_size=3",
        "random_seed=11",
    )
    assert got == {
        "temperature": 0.7,
        "top_p": 0.9,
        "top_k": 40,
        "min_p": 0.05,
        "repetition_penalty": 1.1,
        "no_repeat_ngram_size": 3,
        "seed": 11,
        "max_tokens": 16,
        "min_tokens": 16,
        "ignore_eos": True,
    }


def test_forced_length_and_the_end_id_idiom_of_older_releases() -> None:
    assert sampling(eos_field=False)["end_id"] == -1
    assert "ignore_eos" not in sampling(eos_field=False)
    free = sampling(req=request(16, 4))
    assert free["min_tokens"] == 4 and "ignore_eos" not in free and "end_id" not in free
    assert "min_tokens" not in sampling(req=request(16, 0))


# -- server mode ---------------------------------------------------------------------------------
def test_trtllm_serve_flags() -> None:
    c = config(
        "tensorrt.backend=pytorch",
        "tensorrt.tensor_parallel_size=2",
        "tensorrt.max_batch_size=64",
        "tensorrt.max_num_tokens=4096",
        "tensorrt.max_seq_len=2048",
        "tensorrt.kv_cache_config.free_gpu_memory_fraction=0.8",
    )
    t = compat.translate(c, "tensorrt")
    assert tensorrt_args.trtllm_extra_llm_api_options(c, t, MODEL) == {}
    assert tensorrt_args.trtllm_serve_args(c, t, MODEL) == [
        MODEL,
        "--backend", "pytorch",
        "--max_batch_size", "64",
        "--max_num_tokens", "4096",
        "--max_seq_len", "2048",
        "--tp_size", "2",
        "--kv_cache_free_gpu_memory_fraction", "0.8",
    ]  # fmt: skip


def test_settings_without_a_flag_go_to_the_extra_options_yaml() -> None:
    c = config(
        "tensorrt.quantization=fp8",
        "tensorrt.kv_cache_config.enable_block_reuse=true",
        "tensorrt.kv_cache_config.free_gpu_memory_fraction=0.8",
        "tensorrt.extra={enable_chunked_prefill: true}",
    )
    t = compat.translate(c, "tensorrt")
    assert tensorrt_args.trtllm_extra_llm_api_options(c, t, MODEL) == {
        "kv_cache_config": {"enable_block_reuse": True},
        "quant_config": {"quant_algo": "FP8"},
        "enable_chunked_prefill": True,
    }
    with pytest.raises(ConfigError, match="need --extra_llm_api_options"):
        tensorrt_args.trtllm_serve_args(c, t, MODEL)
    args = tensorrt_args.trtllm_serve_args(c, t, MODEL, extra_options_file="/tmp/x.yaml")
    assert args[:3] == [MODEL, "--backend", "tensorrt"]
    assert args[-2:] == ["--extra_llm_api_options", "/tmp/x.yaml"]


def test_serving_a_prebuilt_engine_names_the_tokenizer() -> None:
    c = config("tensorrt.engine_dir=/engines/e")
    args = tensorrt_args.trtllm_serve_args(c, compat.translate(c, "tensorrt"), MODEL)
    assert args == ["/engines/e", "--tokenizer", MODEL, "--backend", "tensorrt"]


# -- properties ----------------------------------------------------------------------------------
@settings(max_examples=200, deadline=None)
@given(
    do_sample=st.booleans(),
    temperature=st.floats(0, 2),
    top_p=st.floats(0.01, 1),
    top_k=st.integers(0, 100),
    min_p=st.floats(0, 1),
    penalty=st.floats(0.1, 2),
    ngram=st.integers(0, 5),
    max_tokens=st.integers(1, 64),
    min_fraction=st.floats(0, 1),
)
def test_sampling_keys_are_fields_and_greedy_is_recognisable(
    do_sample: bool,
    temperature: float,
    top_p: float,
    top_k: int,
    min_p: float,
    penalty: float,
    ngram: int,
    max_tokens: int,
    min_fraction: float,
) -> None:
    decoder = {
        "do_sample": do_sample,
        "temperature": temperature,
        "top_p": top_p,
        "top_k": top_k,
        "min_p": min_p,
        "repetition_penalty": penalty,
        "no_repeat_ngram_size": ngram,
    }
    c = resolve_config(overrides=[{"decoder": decoder}])
    req = request(max_tokens, int(max_tokens * min_fraction))
    got = tensorrt_args.sampling_kwargs(compat.translate(c, "tensorrt"), req)
    assert set(got) <= SAMPLING_FIELDS
    assert got["max_tokens"] == max_tokens
    # TensorRT-LLM's _greedy_decoding: top_k None or 1, and top_p None or 0.
    trt_greedy = got.get("top_k") in (None, 1) and got.get("top_p") in (None, 0.0)
    assert trt_greedy == c.decoder.greedy
    if c.decoder.greedy:
        assert "temperature" not in got and "min_p" not in got
