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
from pytest_llmbench.errors import ConfigError, ConfigErrors


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
    with pytest.raises(ConfigError, match="invalid YAML at line"):
        resolve_config(config_file=path)


@pytest.mark.parametrize(
    ("text", "where", "problem"),
    [
        # A key without ':' on line 3: PyYAML notices on line 4, at the next key's ':'.
        ("runs: 3\ndecoder:\n  temperature 0.7\n  top_p: 0.9\n", "line 3 column 3", "':'"),
        ("decoder:\n  temperature: 0.7\n  top_p 0.9\n", "line 3 column 3", "':'"),
        # An unclosed quote on line 2: noticed only at the end of the file.
        ('decoder:\n  top_p: "0.9\nrunner:\n  repetitions: 3\n', "line 2 column 10", "quoted"),
        # A line indented too far is the line at fault.
        ("decoder:\n  top_p: 0.9\n    top_k: 3\n", "line 3 column 10", "not allowed"),
        # A bracket never closed: the error names where it opened.
        ("decoder: [1, 2\nrunner: 3\n", "line 2", "opened at line 1 column 10"),
    ],
)
def test_invalid_yaml_points_at_the_line_to_edit(
    tmp_path: Path, text: str, where: str, problem: str
) -> None:
    path = tmp_path / "syntax.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        resolve_config(config_file=path)
    message = str(info.value)
    assert message.startswith(f"{path}: invalid YAML at {where}"), message
    assert problem in message and "<file>" not in message and "\n" not in message


def test_a_top_level_list_is_one_line_without_a_placeholder(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError) as info:
        resolve_config(config_file=path)
    assert str(info.value) == f"{path}: the top level must be a mapping of config keys"


def test_every_error_of_a_file_is_reported_at_once(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("decoder:\n  temprature: 0.7\n  top_k: -3\nrunner:\n  repetitions: 0\nzzz: 1\n")
    with pytest.raises(ConfigErrors) as info:
        resolve_config(config_file=path)
    lines = str(info.value).splitlines()
    assert lines[0] == f"{path}: 4 config errors:"
    assert [line.split(": ")[1] for line in lines[1:]] == [
        "decoder.temprature",
        "decoder.top_k",
        "runner.repetitions",
        "zzz",
    ]
    assert all(line.startswith(f"{path}: ") for line in lines)
    assert "-3 is not >= 0" in lines[2] and "0 is not >= 1" in lines[3]


def test_one_error_stays_one_line(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("decoder:\n  top_k: -3\n")
    with pytest.raises(ConfigError) as info:
        resolve_config(config_file=path)
    assert not isinstance(info.value, ConfigErrors)
    assert str(info.value) == f"{path}: decoder.top_k: -3 is not >= 0"


@pytest.mark.parametrize(
    ("override", "meant"),
    [
        ("decoder.temprature=1", "decoder.temperature"),
        ("runner.repetitons=3", "runner.repetitions"),
        ("temperature=1", "decoder.temperature"),  # the right name, one section too high
        ("max_output_token=8", "max_output_tokens"),
    ],
)
def test_an_unknown_key_suggests_the_key_meant(override: str, meant: str) -> None:
    with pytest.raises(ConfigError, match=f"unknown key; did you mean '{meant}'\\? allowed keys"):
        resolve_config(overrides=[parse_override(override)])


def test_an_unknown_key_far_from_any_known_suggests_nothing() -> None:
    with pytest.raises(ConfigError) as info:
        resolve_config(overrides=[parse_override("decoder.zzz=1")])
    assert "did you mean" not in str(info.value)
    assert "decoder.zzz: unknown key; allowed keys here: do_sample," in str(info.value)


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
