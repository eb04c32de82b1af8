"""ExperimentConfig validation and layering."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_llmbench.config.fields import build
from pytest_llmbench.config.load import (
    available_presets,
    deep_merge,
    parse_override,
    resolve_config,
)
from pytest_llmbench.config.schema import ExperimentConfig
from pytest_llmbench.errors import ConfigError


def error_of(data: dict) -> str:
    with pytest.raises(ConfigError) as info:
        build(ExperimentConfig, data)
    return str(info.value)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"decoder": {"temperature": -1}}, "decoder.temperature: -1 is not >= 0"),
        ({"decoder": {"top_p": 0}}, "decoder.top_p: 0 is not > 0"),
        ({"decoder": {"top_p": 1.5}}, "decoder.top_p: 1.5 is not <= 1"),
        ({"decoder": {"do_sample": "yes"}}, "decoder.do_sample: 'yes' is not a boolean"),
        ({"max_output_tokens": 0}, "max_output_tokens: 0 is not >= 1"),
        ({"max_output_tokens": 2.5}, "max_output_tokens: 2.5 is not an integer"),
        (
            {"batching": {"strategy": "greedy"}},
            "batching.strategy: 'greedy' is not one of 'static' | 'dynamic'",
        ),
        ({"batching": 3}, "batching: 3 is not a mapping"),
        ({"nosuch": 1}, "nosuch: unknown key; allowed keys here: batching,"),
        (
            {"quantization": {"load_in_4bit": True, "load_in_8bit": True}},
            "quantization.load_in_8bit: cannot be true together with load_in_4bit",
        ),
        (
            {"max_output_tokens": 8, "min_output_tokens": 9},
            "min_output_tokens: 9 is not <= max_output_tokens (8)",
        ),
        (
            {"traffic_simulation": {"rate_sweep": [1, -2]}},
            "traffic_simulation.rate_sweep[1]: -2.0 is not > 0",
        ),
        (
            {"pytorch": {"torch_compile": {"mode": "fast"}}},
            "pytorch.torch_compile.mode: 'fast' is not one of",
        ),
        ({"vllm": {"gpu_memory_utilization": 1.2}}, "vllm.gpu_memory_utilization: 1.2 is not <= 1"),
        (
            {"vllm": {"speculative": {"method": "draft_model"}}},
            "vllm.speculative.model: is required when method is 'draft_model'",
        ),
        ({"sglang": {"schedule_policy": "x"}}, "sglang.schedule_policy: 'x' is not one of"),
        (
            {"tensorrt": {"kv_cache_config": {"free_gpu_memory_fraction": 0}}},
            "tensorrt.kv_cache_config.free_gpu_memory_fraction: 0 is not > 0",
        ),
    ],
)
def test_bad_values_name_the_dotted_field(data: dict, message: str) -> None:
    assert message in error_of(data)


def test_defaults_force_output_length() -> None:
    config = ExperimentConfig()
    assert config.forced_min_tokens == config.max_output_tokens
    assert config.decoder.greedy


def test_every_preset_is_valid() -> None:
    names = available_presets()
    assert {"pytorch-optimized", "pytorch-speculative", "pytorch-compatible"} <= set(names)
    for name in names:
        resolve_config(preset=name)


def test_layers_apply_in_order(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("preset: pytorch-compatible\nmax_output_tokens: 64\nmin_output_tokens: 32\n")
    config = resolve_config(config_file=path, overrides=[parse_override("max_output_tokens=48")])
    assert config.pytorch.attn_implementation == "eager"  # from the preset named in the file
    assert (config.max_output_tokens, config.min_output_tokens) == (48, 32)


def test_error_names_the_layer_that_brought_it(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("decoder:\n  top_k: -3\n")
    with pytest.raises(ConfigError, match=r"c\.yaml: decoder\.top_k: -3 is not >= 0"):
        resolve_config(config_file=path)
    with pytest.raises(ConfigError, match=r"command line: decoder\.top_k"):
        resolve_config(overrides=[parse_override("decoder.top_k=-1")])


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("decoder:\n  top_k: [1\n")
    with pytest.raises(ConfigError, match="invalid YAML line"):
        resolve_config(config_file=path)


def test_digest_changes_with_any_setting() -> None:
    assert (
        ExperimentConfig().digest()
        != resolve_config(overrides=[parse_override("decoder.top_k=5")]).digest()
    )
    assert ExperimentConfig().digest() == ExperimentConfig().digest()


keys = st.text(alphabet="abcdefghij_", min_size=1, max_size=6)
values = st.one_of(st.integers(), st.booleans(), st.text(alphabet="xz", min_size=1, max_size=4))


@given(st.lists(keys, min_size=1, max_size=4), values)
def test_override_parses_into_nested_mapping(path: list[str], value: object) -> None:
    text = f"{'.'.join(path)}={value if not isinstance(value, bool) else str(value).lower()}"
    nested = parse_override(text)
    for part in path:
        nested = nested[part]
    assert nested == value


@given(
    st.dictionaries(
        keys, st.one_of(st.integers(), st.dictionaries(keys, st.integers(), max_size=3)), max_size=4
    ),
    st.dictionaries(
        keys, st.one_of(st.integers(), st.dictionaries(keys, st.integers(), max_size=3)), max_size=4
    ),
)
def test_deep_merge_keeps_every_key_and_later_wins(a: dict, b: dict) -> None:
    merged = deep_merge(a, b)
    assert set(merged) == set(a) | set(b)
    for key, value in b.items():
        if isinstance(value, dict) and isinstance(a.get(key), dict):
            assert merged[key] == {**a[key], **value}
        else:
            assert merged[key] == value


def test_engine_digest_ignores_per_benchmark_settings() -> None:
    base = ExperimentConfig()
    per_benchmark = resolve_config(
        overrides=[
            parse_override(o)
            for o in (
                "workload.num_prompts=64",
                "runner.repetitions=9",
                "traffic_simulation.mode=poisson",
            )
        ]
    )
    assert per_benchmark.engine_digest() == base.engine_digest()
    assert per_benchmark.digest() != base.digest()
    engine = resolve_config(overrides=[parse_override("vllm.max_num_seqs=8")])
    assert engine.engine_digest() != base.engine_digest()
