"""GGUF conversion of a model directory (the gguf package; llama.cpp itself is not needed)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

np = pytest.importorskip("numpy")
gguf = pytest.importorskip("gguf")
pytest.importorskip("safetensors")

from pytest_llmbench.backends.llamacpp.gguf_convert import (  # noqa: E402
    GGUF_TYPES,
    architecture,
    ensure_gguf,
    gguf_name,
    permute_rotary,
)
from pytest_llmbench.errors import ConfigError  # noqa: E402
from pytest_llmbench.workload.tinymodel import ensure_tiny_model  # noqa: E402


@pytest.fixture(scope="module")
def tiny() -> Path:
    return ensure_tiny_model()


def test_tensor_names_follow_llama_cpp() -> None:
    assert gguf_name("model.embed_tokens.weight") == "token_embd.weight"
    assert gguf_name("lm_head.weight") == "output.weight"
    assert gguf_name("model.layers.3.self_attn.q_proj.weight") == "blk.3.attn_q.weight"
    assert gguf_name("model.layers.0.self_attn.k_proj.bias") == "blk.0.attn_k.bias"
    assert gguf_name("model.layers.11.mlp.down_proj.weight") == "blk.11.ffn_down.weight"
    with pytest.raises(ConfigError, match="tensor 'model.layers.0.mlp.experts.0.w1' has no GGUF"):
        gguf_name("model.layers.0.mlp.experts.0.w1")


def test_rotary_permutation_interleaves_each_heads_halves() -> None:
    heads, head_dim = 2, 4
    rows = np.arange(heads * head_dim)[:, None] * np.ones((1, 3))
    out = permute_rotary(rows, heads)[:, 0].astype(int).tolist()
    # head 0 rows 0..3 hold halves [0, 1] and [2, 3]: llama.cpp wants pairs (0, 2), (1, 3)
    assert out == [0, 2, 1, 3, 4, 6, 5, 7]


def test_only_known_architectures_convert() -> None:
    assert architecture({"architectures": ["Qwen2ForCausalLM"]}) == "qwen2"
    with pytest.raises(ConfigError, match="converts LlamaForCausalLM, Qwen2ForCausalLM models"):
        architecture({"architectures": ["GPT2LMHeadModel"]})


def test_the_gguf_holds_every_tensor_and_the_tokenizer(tiny: Path, tmp_path: Path) -> None:
    path = ensure_gguf(tiny, "q8_0", tmp_path)
    reader = gguf.GGUFReader(str(path))
    config = json.loads((tiny / "config.json").read_text())
    tensors = {t.name: t for t in reader.tensors}
    layers = config["num_hidden_layers"]
    assert len(tensors) == 3 + 9 * layers  # embeddings, norm, head; 9 per layer (no biases)
    assert tensors["blk.0.attn_q.weight"].tensor_type == gguf.GGMLQuantizationType.Q8_0
    assert tensors["blk.0.attn_norm.weight"].tensor_type == gguf.GGMLQuantizationType.F32
    fields = reader.fields

    def scalar(key: str) -> int:
        field = fields[key]
        return int(field.parts[field.data[0]][0])

    assert scalar("llama.block_count") == layers
    assert scalar("llama.attention.head_count_kv") == config["num_key_value_heads"]
    assert scalar("tokenizer.ggml.eos_token_id") == config["eos_token_id"]
    assert len(fields["tokenizer.ggml.tokens"].data) == config["vocab_size"]


def test_conversion_is_cached_by_content_and_type(tiny: Path, tmp_path: Path) -> None:
    a = ensure_gguf(tiny, "f16", tmp_path)
    assert ensure_gguf(tiny, "f16", tmp_path) == a
    assert ensure_gguf(tiny, "f32", tmp_path) != a
    copy = tmp_path / "copy" / tiny.name
    shutil.copytree(tiny, copy)
    config = json.loads((copy / "config.json").read_text())
    config["rms_norm_eps"] = 1e-5  # any change to a source file is a new file
    (copy / "config.json").write_text(json.dumps(config))
    assert ensure_gguf(copy, "f16", tmp_path) != a
    assert not list(tmp_path.glob("*.part"))


def test_bad_inputs_name_the_field(tiny: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"llamacpp.quantization: 'q4_k' is not one of"):
        ensure_gguf(tiny, "q4_k", tmp_path)
    with pytest.raises(ConfigError, match="has no config.json: not a model directory"):
        ensure_gguf(tmp_path, "f32", tmp_path)
    assert set(GGUF_TYPES) == {"f32", "f16", "bf16", "q8_0"}


def test_rope_theta_is_read_where_each_transformers_release_writes_it() -> None:
    from pytest_llmbench.backends.llamacpp.gguf_convert import rope_theta

    # transformers 5 nests it (a Qwen2 saved today); older releases write it at the top
    assert rope_theta({"rope_parameters": {"rope_theta": 1e6, "rope_type": "default"}}) == 1e6
    assert rope_theta({"rope_theta": 5e5, "rope_scaling": None}) == 5e5
    assert rope_theta({}) == 10000.0
    with pytest.raises(ConfigError, match="rotary scaling 'llama3' is not converted"):
        rope_theta({"rope_parameters": {"rope_theta": 5e5, "rope_type": "llama3", "factor": 8.0}})
    with pytest.raises(ConfigError, match="rotary scaling 'linear' is not converted"):
        rope_theta({"rope_theta": 1e4, "rope_scaling": {"type": "linear", "factor": 2.0}})
    with pytest.raises(ConfigError, match="rope_parameters per layer type"):
        rope_theta({"rope_parameters": {"full_attention": {"rope_theta": 1e6}}})


def test_pre_tokenizer_is_named_from_the_tokenizer_not_guessed() -> None:
    from pytest_llmbench.backends.llamacpp.gguf_convert import _SPLIT_PATTERNS, pre_tokenizer

    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "use_regex": True}
    assert pre_tokenizer({"pre_tokenizer": byte_level}) == "gpt-2"
    for pattern, name in _SPLIT_PATTERNS.items():
        split = {"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated"}
        steps = [split, {**byte_level, "use_regex": False}]
        assert pre_tokenizer({"pre_tokenizer": {"type": "Sequence", "pretokenizers": steps}}) == (
            name
        )
    metaspace = {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first"}
    with pytest.raises(ConfigError, match=r"pre-tokenizer \['Metaspace'\] is not one"):
        pre_tokenizer({"pre_tokenizer": metaspace})
    with pytest.raises(ConfigError, match="adds a prefix space"):
        pre_tokenizer({"pre_tokenizer": {**byte_level, "add_prefix_space": True}})
    odd = {"type": "Split", "pattern": {"Regex": r"\s+"}, "behavior": "Isolated"}
    with pytest.raises(ConfigError, match=r"\['Split', 'ByteLevel'\] is not one"):
        pre_tokenizer({"pre_tokenizer": {"type": "Sequence", "pretokenizers": [odd, byte_level]}})
