"""Context limits: how many tokens (prompt plus output) a request may hold on each backend.

The model's own limit comes from its ``config.json`` (``max_position_embeddings`` and the other
names architectures use) or, for a GGUF, from its ``<arch>.context_length`` metadata. An engine
setting lowers it where set: ``vllm.max_model_len``, ``sglang.context_length``,
``tensorrt.max_seq_len``, ``llamacpp.n_ctx`` (always set: llama.cpp allocates that context).
Lengths are checked against the limit before any engine sees them, because engines answer an
overlong prompt differently: transformers runs past its trained positions without a word, llama.cpp
fails with ``llama_decode returned 1``, vLLM refuses the request.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# config.json keys that hold the trained context, by architecture family, first found wins.
CONFIG_KEYS: tuple[str, ...] = (
    "max_position_embeddings",
    "n_positions",  # GPT-2
    "max_sequence_length",
    "seq_length",  # ChatGLM, Qwen (v1)
    "max_seq_len",  # MPT
    "n_ctx",
)

# The engine setting that caps the context, per backend (also per managed openai server kind).
ENGINE_KEYS: dict[str, str] = {
    "vllm": "vllm.max_model_len",
    "sglang": "sglang.context_length",
    "tensorrt": "tensorrt.max_seq_len",
    "llamacpp": "llamacpp.n_ctx",
}


@dataclass(frozen=True)
class ContextLimit:
    """At most ``tokens`` tokens per request, prompt and output together; ``source`` says where
    the number comes from, for messages."""

    tokens: int
    source: str

    def to_dict(self) -> dict[str, Any]:
        return {"tokens": self.tokens, "source": self.source}


def config_context(config: Mapping[str, Any], where: str = "config.json") -> ContextLimit | None:
    """The trained context in a transformers config (its ``text_config`` for multimodal ones)."""
    for section, prefix in ((config, ""), (config.get("text_config") or {}, "text_config.")):
        if not isinstance(section, Mapping):
            continue
        for key in CONFIG_KEYS:
            value = section.get(key)
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                return ContextLimit(value, f"{prefix}{key} in {where}")
    return None


def model_context(path: Path) -> ContextLimit | None:
    """The context of a model directory (its config.json) or a ``.gguf`` file; None when the
    files do not say (the engines then decide alone)."""
    if path.is_dir():
        config_file = path / "config.json"
        try:
            config = json.loads(config_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return config_context(config) if isinstance(config, dict) else None
    return gguf_context(path)


def gguf_context(path: Path) -> ContextLimit | None:
    """``<arch>.context_length`` of a GGUF file, read with the ``gguf`` package (llamacpp extra)."""
    try:
        from gguf import GGUFReader
    except ImportError:
        return None
    try:
        reader = GGUFReader(str(path))
        arch_field = reader.fields["general.architecture"]
        arch = bytes(arch_field.parts[arch_field.data[0]]).decode()
        field = reader.fields[f"{arch}.context_length"]
        tokens = int(field.parts[field.data[0]][0])
    except (OSError, ValueError, KeyError, IndexError):
        return None
    return ContextLimit(tokens, f"{arch}.context_length in {path.name}")


def engine_setting(engine: str, config: Any) -> ContextLimit | None:
    """The context ``engine``'s own setting asks for, where the config sets it."""
    key = ENGINE_KEYS.get(engine)
    if key is None:
        return None
    section_name, name = key.split(".")
    section = getattr(config, section_name)
    value = section.extra.get(name, getattr(section, name))  # extra is passed last, so it wins
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        where = f"{section_name}.extra.{name}" if name in section.extra else key
        return ContextLimit(value, where)
    return None


def effective_limit(
    model: ContextLimit | None, engine: str, config: Any, server_kind: str | None = None
) -> ContextLimit | None:
    """The tighter of the model's context and the engine's setting. ``engine`` is a backend
    name; for the openai backend, ``server_kind`` names the managed server (None: an external
    server, whose own setting cannot be seen from here)."""
    setting = engine_setting(server_kind if engine == "openai" and server_kind else engine, config)
    if setting is None or (model is not None and model.tokens <= setting.tokens):
        return model
    return setting


def overflow(
    input_tokens: int, output_tokens: int, limit: ContextLimit | None, backend: str
) -> str | None:
    """None when a request of these lengths fits ``limit`` on ``backend``, else the sentence
    that says it does not: the lengths, the limit, where the limit comes from."""
    if limit is None or input_tokens + output_tokens <= limit.tokens:
        return None
    room = limit.tokens - output_tokens
    fit = f"at most {room} input tokens fit" if room > 0 else "the output alone does not fit"
    return (
        f"{input_tokens} input + {output_tokens} output tokens = {input_tokens + output_tokens} "
        f"exceed the context of {limit.tokens} tokens on {backend} ({limit.source}); {fit}"
    )
