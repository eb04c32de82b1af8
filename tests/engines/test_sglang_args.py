"""SGLang translation: every ``sglang:`` key and universal parameter, refusals and conflicts.

SGLang is not installed here; these pin the mapping onto the ServerArgs / SamplingParams names
read from sgl-project/sglang (see the module docstring of ``backends/sglang/args.py``).
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_llmbench import compat
from pytest_llmbench.backends.base import GenerationRequest
from pytest_llmbench.backends.sglang import args as sglang_args
from pytest_llmbench.config.load import parse_override, resolve_config
from pytest_llmbench.config.schema import ExperimentConfig
from pytest_llmbench.errors import ConfigError

MODEL = "/models/m"
# ServerArgs fields (sglang 001067ff and the 0.5.16 release, server_args.py) that our translation
# may produce.
SERVER_ARGS_FIELDS = {
    "model_path", "tp_size", "pp_size", "dp_size", "mem_fraction_static", "context_length",
    "chunked_prefill_size", "max_running_requests", "schedule_policy", "disable_radix_cache",
    "disable_prefill_cuda_graph", "attention_backend", "kv_cache_dtype", "quantization", "dtype",
    "random_seed",
    "speculative_algorithm", "speculative_draft_model_path", "speculative_num_steps",
    "speculative_eagle_topk", "speculative_num_draft_tokens",
}  # fmt: skip
SAMPLING_FIELDS = {
    "max_new_tokens", "min_new_tokens", "ignore_eos", "temperature", "top_p", "top_k", "min_p",
    "repetition_penalty",
}  # fmt: skip


def config(*overrides: str) -> ExperimentConfig:
    return resolve_config(overrides=[parse_override(o) for o in overrides])


def kwargs(*overrides: str) -> dict:
    c = config(*overrides)
    return sglang_args.engine_kwargs(c, compat.translate(c, "sglang"), MODEL)


def request(max_tokens: int = 16, min_tokens: int = 16) -> GenerationRequest:
    return GenerationRequest("r0", (1, 2, 3), max_tokens, min_tokens)


def test_defaults_pass_only_the_model_and_the_seed() -> None:
    assert kwargs() == {"model_path": MODEL, "random_seed": 0}


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("sglang.tp_size=4", {"tp_size": 4}),
        ("sglang.dp_size=2", {"dp_size": 2}),
        ("sglang.mem_fraction_static=0.8", {"mem_fraction_static": 0.8}),
        ("sglang.context_length=8192", {"context_length": 8192}),
        ("sglang.chunked_prefill_size=4096", {"chunked_prefill_size": 4096}),
        ("sglang.chunked_prefill_size=-1", {"chunked_prefill_size": -1}),
        ("sglang.max_running_requests=128", {"max_running_requests": 128}),
        ("sglang.schedule_policy=lpm", {"schedule_policy": "lpm"}),
        ("sglang.disable_radix_cache=true", {"disable_radix_cache": True}),
        ("sglang.disable_prefill_cuda_graph=true", {"disable_prefill_cuda_graph": True}),
        ("sglang.attention_backend=fa3", {"attention_backend": "fa3"}),
        ("sglang.kv_cache_dtype=fp8_e5m2", {"kv_cache_dtype": "fp8_e5m2"}),
        ("sglang.quantization=fp8", {"quantization": "fp8"}),
        ("fp_precision=bfloat16", {"dtype": "bfloat16"}),
        ("random_seed=7", {"random_seed": 7}),
        ("batching.batch_size=64", {"max_running_requests": 64}),
        ("batching.max_tokens_per_batch=2048", {"chunked_prefill_size": 2048}),
        ("sharding.strategy=tensor_parallel", {}),  # num_devices 1: tp_size 1 is the default
        ("sglang.extra={enable_torch_compile: true}", {"enable_torch_compile": True}),
    ],
)
def test_each_key_reaches_its_server_arg(override: str, expected: dict) -> None:
    got = kwargs(override)
    assert got == {"model_path": MODEL, "random_seed": got["random_seed"], **expected}


def test_sharding_becomes_tp_or_pp() -> None:
    tp = kwargs("sharding.strategy=tensor_parallel", "sharding.num_devices=4")
    assert tp["tp_size"] == 4 and "pp_size" not in tp
    pp = kwargs("sharding.strategy=pipeline_parallel", "sharding.num_devices=2")
    assert pp["pp_size"] == 2 and "tp_size" not in pp
    assert (
        kwargs("sharding.strategy=tensor_parallel", "sharding.num_devices=4", "sglang.tp_size=4")[
            "tp_size"
        ]
        == 4
    )


def test_speculative_options() -> None:
    got = kwargs(
        "sglang.speculative.algorithm=EAGLE",
        "sglang.speculative.draft_model_path=/models/draft",
        "sglang.speculative.num_steps=3",
        "sglang.speculative.eagle_topk=4",
        "sglang.speculative.num_draft_tokens=8",
    )
    assert {k: v for k, v in got.items() if k.startswith("speculative_")} == {
        "speculative_algorithm": "EAGLE",
        "speculative_draft_model_path": "/models/draft",
        "speculative_num_steps": 3,
        "speculative_eagle_topk": 4,
        "speculative_num_draft_tokens": 8,
    }
    assert kwargs("sglang.speculative.algorithm=NGRAM")["speculative_algorithm"] == "NGRAM"


@pytest.mark.parametrize(
    ("overrides", "field", "mentions"),
    [
        (["sglang.tp_size=2", "sharding.strategy=tensor_parallel", "sharding.num_devices=4"],
         "sglang.tp_size", "sharding.num_devices"),
        (["sglang.max_running_requests=8", "batching.batch_size=16"],
         "sglang.max_running_requests", "batching.batch_size"),
        (["sglang.chunked_prefill_size=512", "batching.max_tokens_per_batch=1024"],
         "sglang.chunked_prefill_size", "batching.max_tokens_per_batch"),
        (["sglang.schedule_policy=lpm", "sglang.disable_radix_cache=true"],
         "sglang.schedule_policy", "sglang.disable_radix_cache"),
        (["sglang.extra={tp_size: 8}", "sglang.tp_size=2"], "sglang.extra.tp_size", "typed"),
        (["sglang.extra={skip_tokenizer_init: true}"],
         "sglang.extra.skip_tokenizer_init", "min_output_tokens"),
        (["sglang.speculative.num_steps=3"], "sglang.speculative.num_steps",
         "sglang.speculative.algorithm"),
        (["sglang.speculative.algorithm=EAGLE"], "sglang.speculative.draft_model_path",
         "sglang.speculative.algorithm"),
        (["sglang.chunked_prefill_size=0"], "sglang.chunked_prefill_size", "-1"),
        (["sglang.extra={model_path: /x}"], "sglang.extra.model_path", "model_name"),
    ],
)  # fmt: skip
def test_conflicts_name_both_fields(overrides: list[str], field: str, mentions: str) -> None:
    with pytest.raises(ConfigError) as info:
        kwargs(*overrides)
    assert info.value.field == field
    assert mentions in str(info.value)


def test_agreeing_duplicates_are_not_conflicts() -> None:
    got = kwargs("sglang.max_running_requests=16", "batching.batch_size=16")
    assert got["max_running_requests"] == 16


def test_universal_parameters_sglang_lacks_are_reported_not_translated() -> None:
    c = config("quantization.load_in_4bit=true", "decoder.no_repeat_ngram_size=3")
    t = compat.translate(c, "sglang")
    assert [p for p, _ in t.unsupported] == [
        "decoder.no_repeat_ngram_size",
        "quantization.load_in_4bit",
    ]
    assert "no_repeat_ngram_size" not in sglang_args.sampling_params(c, t)
    assert "quantization" not in sglang_args.engine_kwargs(c, t, MODEL)


# -- sampling ------------------------------------------------------------------------------------
def sampling(*overrides: str) -> dict:
    c = config(*overrides)
    return sglang_args.sampling_params(c, compat.translate(c, "sglang"))


def test_greedy_is_temperature_zero_and_defaults_are_left_out() -> None:
    assert sampling() == {"temperature": 0.0}
    assert sampling("decoder.do_sample=true") == {}  # temperature 1, top_k -1 ...: all defaults


def test_sampling_translation() -> None:
    got = sampling(
        "decoder.do_sample=true",
        "decoder.temperature=0.7",
        "decoder.top_p=0.9",
        "decoder.top_k=40",
        "decoder.min_p=0.05",
        "decoder.repetition_penalty=1.1",
    )
    assert got == {
        "temperature": 0.7,
        "top_p": 0.9,
        "top_k": 40,
        "min_p": 0.05,
        "repetition_penalty": 1.1,
    }


def test_repetition_penalty_outside_sglang_range_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"decoder.repetition_penalty: 2.5 is outside"):
        sampling("decoder.repetition_penalty=2.5")


def test_forced_length_per_request() -> None:
    forced = sglang_args.for_request({"temperature": 0.0}, request(16, 16))
    assert forced == {
        "temperature": 0.0,
        "max_new_tokens": 16,
        "min_new_tokens": 16,
        "ignore_eos": True,
    }
    # A minimum below the maximum lets EOS end the request after the minimum.
    assert sglang_args.for_request({}, request(16, 4)) == {
        "max_new_tokens": 16,
        "min_new_tokens": 4,
    }
    assert sglang_args.for_request({}, request(16, 0)) == {"max_new_tokens": 16}


# -- server mode ---------------------------------------------------------------------------------
def test_launch_server_flags_mirror_the_engine_kwargs() -> None:
    c = config(
        "model_name=null",
        "sglang.tp_size=2",
        "sglang.disable_radix_cache=true",
        "sglang.disable_prefill_cuda_graph=true",
        "sglang.mem_fraction_static=0.85",
        "sglang.extra={cuda_graph_bs: [1, 2, 4], json_model_override_args: {a: 1}}",
    )
    args = sglang_args.sglang_server_args(c, compat.translate(c, "sglang"), MODEL)
    assert args == [
        "--model-path", MODEL,
        "--tp-size", "2",
        "--mem-fraction-static", "0.85",
        "--disable-radix-cache",
        "--disable-prefill-cuda-graph",
        "--random-seed", "0",
        "--cuda-graph-bs", "1", "2", "4",
        "--json-model-override-args", '{"a": 1}',
    ]  # fmt: skip


def test_server_mode_refusals() -> None:
    c = ExperimentConfig()
    with pytest.raises(ConfigError, match="model_name: server mode needs a local model"):
        sglang_args.sglang_server_args(c, compat.translate(c, "sglang"))
    c = config("sglang.extra={enable_metrics: false}")
    with pytest.raises(ConfigError, match="sglang.extra.enable_metrics: false cannot be"):
        sglang_args.sglang_server_args(c, compat.translate(c, "sglang"), MODEL)


# -- properties ----------------------------------------------------------------------------------
_sglang_section = st.fixed_dictionaries(
    {},
    optional={
        "tp_size": st.integers(1, 8),
        "dp_size": st.integers(1, 4),
        "mem_fraction_static": st.floats(0.1, 1.0),
        "context_length": st.integers(1, 1 << 17),
        "max_running_requests": st.integers(1, 1024),
        "schedule_policy": st.sampled_from(["random", "fcfs", "dfs-weight", "lof"]),
        "disable_radix_cache": st.booleans(),
        "disable_prefill_cuda_graph": st.booleans(),
        "attention_backend": st.sampled_from(["flashinfer", "triton", "fa3"]),
        "kv_cache_dtype": st.sampled_from(["auto", "fp8_e5m2", "fp8_e4m3"]),
        "quantization": st.sampled_from(["fp8", "awq", "gptq"]),
    },
)


@settings(max_examples=200, deadline=None)
@given(section=_sglang_section, precision=st.sampled_from(["auto", "float16", "bfloat16"]))
def test_every_produced_key_is_a_server_arg_and_no_default_is_passed(
    section: dict, precision: str
) -> None:
    c = resolve_config(overrides=[{"sglang": section, "fp_precision": precision}])
    got = sglang_args.engine_kwargs(c, compat.translate(c, "sglang"), MODEL)
    assert set(got) <= SERVER_ARGS_FIELDS
    for key, default in sglang_args.SERVER_DEFAULTS.items():
        assert got.get(key, object()) != default
    flags = sglang_args.sglang_server_args(c, compat.translate(c, "sglang"), MODEL)
    named = {f[2:].replace("-", "_") for f in flags if f.startswith("--")}
    assert named == set(got)


@settings(max_examples=200, deadline=None)
@given(
    do_sample=st.booleans(),
    temperature=st.floats(0, 2),
    top_p=st.floats(0.01, 1),
    top_k=st.integers(0, 100),
    min_p=st.floats(0, 1),
    penalty=st.floats(0.1, 2),
)
def test_sampling_keys_are_sampling_params_fields(
    do_sample: bool, temperature: float, top_p: float, top_k: int, min_p: float, penalty: float
) -> None:
    decoder = {
        "do_sample": do_sample,
        "temperature": temperature,
        "top_p": top_p,
        "top_k": top_k,
        "min_p": min_p,
        "repetition_penalty": penalty,
    }
    c = resolve_config(overrides=[{"decoder": decoder}])
    params = sglang_args.for_request(
        sglang_args.sampling_params(c, compat.translate(c, "sglang")), request()
    )
    assert set(params) <= SAMPLING_FIELDS
    assert params.get("top_k", -1) == -1 or params["top_k"] >= 1  # SGLang: -1 or >= 1
    if c.decoder.greedy:
        assert params["temperature"] == 0.0
