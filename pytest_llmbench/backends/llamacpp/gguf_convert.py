"""A Hugging Face model directory -> one GGUF file, written here with the ``gguf`` package.

llama.cpp reads GGUF only. Its own ``convert_hf_to_gguf.py`` is a script of the llama.cpp source
tree, not part of any wheel we can depend on, so the two layouts we need are mapped here:
``LlamaForCausalLM`` and ``Qwen2ForCausalLM`` (weights in safetensors, a fast tokenizer in
``tokenizer.json`` of the byte-level BPE kind, as GPT-2, Llama 3 and Qwen2 use).

What has to be right for llama.cpp to compute what transformers computes:

- Llama's rotary embedding: transformers stores q/k projections with each head's rotary pairs in
  two halves ("rotate_half"); llama.cpp's ``llama`` graph rotates adjacent pairs. The q and k
  rows are therefore permuted per head (interleaving the halves). Qwen2 runs llama.cpp's NEOX
  rotation, which matches transformers' layout: no permutation.
- Norm weights and biases stay f32 (llama.cpp expects them so); 2-D weights take the file type:
  f32, f16, bf16 or q8_0 (blocks of 32 along a row; every row length here is a multiple of 32).
- The rotary base: transformers 5 writes it inside ``rope_parameters``, older releases at the top
  of the config; scaled rotaries (linear, yarn, llama3, ...) are refused, not written wrongly.
- The vocabulary: every id up to the model's embedding size, special tokens marked CONTROL, ids
  beyond the tokenizer's vocabulary (a padded embedding) marked UNUSED. The pre-tokenizer name
  (``gpt-2``, ``llama-bpe``, ``qwen2``) comes from ``tokenizer.json``'s own split rule, so text
  splits in llama.cpp as in transformers; a rule llama.cpp has no name for is refused.

Converted files are cached under the tiny-model cache by a hash of the source files, the type
and :data:`CONVERTER_VERSION`, and written atomically (a reader never sees half a file).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pytest_llmbench.errors import ConfigError

GGUF_TYPES: tuple[str, ...] = ("f32", "f16", "bf16", "q8_0")
CONVERTER_VERSION = "2"  # bump when what is written changes
_ARCHITECTURES = {"LlamaForCausalLM": "llama", "Qwen2ForCausalLM": "qwen2"}
_PERMUTED = {"llama"}  # architectures whose q/k rows llama.cpp wants interleaved

# HF tensor name (after "model.layers.N.") -> GGUF tensor name (after "blk.N.")
_LAYER_NAMES = {
    "input_layernorm.weight": "attn_norm.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.o_proj.weight": "attn_output.weight",
    "self_attn.q_proj.bias": "attn_q.bias",
    "self_attn.k_proj.bias": "attn_k.bias",
    "self_attn.v_proj.bias": "attn_v.bias",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}
_TOP_NAMES = {
    "model.embed_tokens.weight": "token_embd.weight",
    "model.norm.weight": "output_norm.weight",
    "lm_head.weight": "output.weight",
}


def gguf_name(hf_name: str) -> str:
    """The GGUF tensor name of a transformers tensor name; ConfigError for one we cannot map."""
    if hf_name in _TOP_NAMES:
        return _TOP_NAMES[hf_name]
    parts = hf_name.split(".", 3)
    if len(parts) == 4 and parts[:2] == ["model", "layers"] and parts[3] in _LAYER_NAMES:
        return f"blk.{parts[2]}.{_LAYER_NAMES[parts[3]]}"
    raise ConfigError("model_name", f"tensor {hf_name!r} has no GGUF counterpart here")


def permute_rotary(weight: Any, heads: int) -> Any:
    """Reorder each head's rows from transformers' split halves to llama.cpp's adjacent pairs."""
    rows = weight.shape[0]
    return (
        weight.reshape(heads, 2, rows // heads // 2, *weight.shape[1:])
        .swapaxes(1, 2)
        .reshape(weight.shape)
    )


def architecture(config: dict[str, Any]) -> str:
    """The llama.cpp architecture of a transformers config; ConfigError naming what is allowed."""
    names = config.get("architectures") or []
    for name in names:
        if name in _ARCHITECTURES:
            return _ARCHITECTURES[name]
    raise ConfigError(
        "model_name",
        f"llamacpp converts {', '.join(sorted(_ARCHITECTURES))} models, not {names or 'unknown'}; "
        "pass a .gguf file instead",
    )


def rope_theta(config: dict[str, Any]) -> float:
    """The rotary base of a transformers config; ConfigError for rotary scaling not converted here.

    transformers 5 writes it inside ``rope_parameters`` (with ``rope_type``), older releases as
    ``rope_theta`` beside ``rope_scaling``. A scaled rotary (linear, dynamic, yarn, llama3) needs
    GGUF keys and factors this converter does not write: refused rather than converted wrongly.
    """
    params = config.get("rope_parameters") or {}
    if any(isinstance(v, dict) for v in params.values()):
        raise ConfigError(
            "model_name", "rope_parameters per layer type are not converted; pass a .gguf file"
        )
    scaling = config.get("rope_scaling") or {}
    rope_type = params.get("rope_type") or scaling.get("rope_type") or scaling.get("type")
    if rope_type not in (None, "default"):
        raise ConfigError(
            "model_name",
            f"rotary scaling {rope_type!r} is not converted here (only the default rotary); "
            "pass a .gguf file instead",
        )
    return float(params.get("rope_theta", config.get("rope_theta", 10000.0)))


def source_digest(model_dir: Path, gguf_type: str) -> str:
    """Hash of everything the GGUF is made from (config, tokenizer, weights), type and version."""
    digest = hashlib.sha256(f"{CONVERTER_VERSION}:{gguf_type}".encode())
    for path in _source_files(model_dir):
        digest.update(path.name.encode())
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def _source_files(model_dir: Path) -> list[Path]:
    files = [model_dir / "config.json", model_dir / "tokenizer.json"]
    files += sorted(model_dir.glob("*.safetensors"))
    for path in files[:2]:
        if not path.is_file():
            raise ConfigError(
                "model_name", f"{model_dir} has no {path.name}: not a model directory"
            )
    if len(files) == 2:
        raise ConfigError("model_name", f"{model_dir} has no *.safetensors weights")
    return files


def ensure_gguf(model_dir: str | Path, gguf_type: str, cache_dir: Path | None = None) -> Path:
    """The GGUF file of ``model_dir`` in ``gguf_type``, converting it once (cached by hash)."""
    if gguf_type not in GGUF_TYPES:
        raise ConfigError("llamacpp.quantization", f"{gguf_type!r} is not one of {GGUF_TYPES}")
    model_dir = Path(model_dir)
    if cache_dir is None:
        from pytest_llmbench.workload.tinymodel import cache_root

        cache_dir = cache_root() / "gguf"
    target = cache_dir / f"{model_dir.name}-{source_digest(model_dir, gguf_type)}-{gguf_type}.gguf"
    if target.is_file():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=cache_dir, suffix=".gguf.part")
    os.close(fd)
    try:
        write_gguf(model_dir, Path(tmp), gguf_type)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def write_gguf(model_dir: Path, out: Path, gguf_type: str) -> None:
    """Convert ``model_dir`` into ``out`` (see the module docstring for what is mapped)."""
    import gguf

    config = json.loads((model_dir / "config.json").read_text())
    arch = architecture(config)
    if config.get("use_sliding_window"):
        raise ConfigError(
            "model_name", "sliding-window attention is not converted here; pass a .gguf file"
        )
    heads = int(config["num_attention_heads"])
    kv_heads = int(config.get("num_key_value_heads") or heads)
    hidden = int(config["hidden_size"])
    head_dim = int(config.get("head_dim") or hidden // heads)
    tensors = dict(_read_tensors(model_dir))
    if "lm_head.weight" not in tensors:
        if not config.get("tie_word_embeddings"):
            raise ConfigError("model_name", f"{model_dir}: no lm_head.weight and untied embeddings")
        tensors["lm_head.weight"] = tensors["model.embed_tokens.weight"]
    vocab = int(tensors["model.embed_tokens.weight"].shape[0])

    writer = gguf.GGUFWriter(str(out), arch)
    writer.add_name(model_dir.name)
    writer.add_context_length(int(config.get("max_position_embeddings", 2048)))
    writer.add_embedding_length(hidden)
    writer.add_block_count(int(config["num_hidden_layers"]))
    writer.add_feed_forward_length(int(config["intermediate_size"]))
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_key_length(head_dim)
    writer.add_value_length(head_dim)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(rope_theta(config))
    writer.add_layer_norm_rms_eps(float(config.get("rms_norm_eps", 1e-6)))
    writer.add_vocab_size(vocab)
    writer.add_file_type(_file_type(gguf, gguf_type))
    _add_tokenizer(writer, model_dir, config, vocab)

    for name, array in tensors.items():
        target = gguf_name(name)
        if arch in _PERMUTED and name.endswith("q_proj.weight"):
            array = permute_rotary(array, heads)
        elif arch in _PERMUTED and name.endswith("k_proj.weight"):
            array = permute_rotary(array, kv_heads)
        data, raw_type = _encode(gguf, array, gguf_type)
        writer.add_tensor(target, data, raw_dtype=raw_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def _read_tensors(model_dir: Path) -> Iterator[tuple[str, Any]]:
    """(name, float32 numpy array) of every tensor in the directory's safetensors files."""
    import numpy as np
    from safetensors import safe_open

    for path in sorted(model_dir.glob("*.safetensors")):
        with safe_open(str(path), framework="pt") as f:  # pt: reads bf16, which numpy lacks
            for name in f.keys():  # noqa: SIM118 - safe_open has keys(), no iteration
                if name.endswith("rotary_emb.inv_freq"):
                    continue  # recomputed by llama.cpp from rope_freq_base
                yield name, np.ascontiguousarray(f.get_tensor(name).float().numpy())


def _file_type(gguf: Any, gguf_type: str) -> int:
    names = {"f32": "ALL_F32", "f16": "MOSTLY_F16", "bf16": "MOSTLY_BF16", "q8_0": "MOSTLY_Q8_0"}
    return int(getattr(gguf.LlamaFileType, names[gguf_type]))


def _encode(gguf: Any, array: Any, gguf_type: str) -> tuple[Any, Any]:
    """(data, raw GGML type or None) for one tensor: 1-D tensors (norms, biases) stay f32."""
    import numpy as np

    if array.ndim < 2 or gguf_type == "f32":
        return array.astype(np.float32), None
    if gguf_type == "f16":
        return array.astype(np.float16), None
    qtype = {"bf16": gguf.GGMLQuantizationType.BF16, "q8_0": gguf.GGMLQuantizationType.Q8_0}
    return gguf.quants.quantize(array.astype(np.float32), qtype[gguf_type]), qtype[gguf_type]


# The split patterns of the byte-level BPE families llama.cpp names (its tokenizer.ggml.pre):
# Llama 3 groups digits by up to three, Qwen2 splits every digit.
_SPLIT_PATTERNS = {
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+": "llama-bpe",
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+": "qwen2",
}


def pre_tokenizer(tokenizer: dict[str, Any], model_dir: Path | str = "the model") -> str:
    """llama.cpp's pre-tokenizer name for a ``tokenizer.json``; ConfigError for one it lacks.

    GPT-2's ByteLevel split (the embedded model's), or a Split by Llama 3's or Qwen2's pattern
    followed by a ByteLevel mapping. Anything else would tokenise text differently in llama.cpp
    than in transformers, so it is refused rather than guessed.
    """
    pre = tokenizer.get("pre_tokenizer") or {}
    steps = pre.get("pretokenizers", []) if pre.get("type") == "Sequence" else [pre]
    kinds = [step.get("type") for step in steps]
    if kinds == ["ByteLevel"] and steps[0].get("use_regex", True):
        if steps[0].get("add_prefix_space"):
            raise ConfigError(
                "model_name",
                f"{model_dir}/tokenizer.json: a ByteLevel pre-tokenizer that adds a prefix space "
                "is not mapped (llama.cpp's gpt-2 adds none); pass a .gguf file instead",
            )
        return "gpt-2"
    if kinds == ["Split", "ByteLevel"] and not steps[1].get("use_regex", True):
        pattern = (steps[0].get("pattern") or {}).get("Regex")
        if pattern in _SPLIT_PATTERNS:
            return _SPLIT_PATTERNS[pattern]
    raise ConfigError(
        "model_name",
        f"{model_dir}/tokenizer.json: pre-tokenizer {kinds or 'none'} is not one this converter "
        "maps (GPT-2 byte-level, Llama 3 or Qwen2 split); pass a .gguf file instead",
    )


def _add_tokenizer(writer: Any, model_dir: Path, config: dict[str, Any], vocab: int) -> None:
    """Byte-level BPE vocabulary, merges and special ids, padded to the embedding size."""
    import gguf

    data = json.loads((model_dir / "tokenizer.json").read_text())
    model = data.get("model", {})
    if model.get("type") != "BPE":
        raise ConfigError(
            "model_name",
            f"{model_dir}/tokenizer.json is a {model.get('type')!r} tokenizer; llamacpp converts "
            "byte-level BPE tokenizers only (pass a .gguf file instead)",
        )
    by_id: dict[int, str] = {int(i): t for t, i in model["vocab"].items()}
    special = {int(t["id"]) for t in data.get("added_tokens", []) if t.get("special")}
    for t in data.get("added_tokens", []):
        by_id[int(t["id"])] = t["content"]
    tokens, types = [], []
    for i in range(vocab):
        if i in by_id:
            tokens.append(by_id[i])
            control = i in special
            types.append(gguf.TokenType.CONTROL if control else gguf.TokenType.NORMAL)
        else:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre_tokenizer(data, model_dir))
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    for key, add in (
        ("bos_token_id", writer.add_bos_token_id),
        ("eos_token_id", writer.add_eos_token_id),
        ("pad_token_id", writer.add_pad_token_id),
    ):
        value = config.get(key)
        if isinstance(value, list):
            value = value[0] if value else None
        if value is not None:
            add(int(value))
    writer.add_add_bos_token(False)  # prompts arrive as token ids; nothing is prepended
