"""Context limits per backend: the model's, lowered by the engine's own setting."""

from __future__ import annotations

import pytest

from pytest_llmbench.config.load import parse_override, resolve_config
from pytest_llmbench.models.context import (
    ContextLimit,
    config_context,
    effective_limit,
    engine_setting,
    overflow,
)

MODEL = ContextLimit(2048, "max_position_embeddings in config.json")


def config(*overrides: str):  # type: ignore[no-untyped-def]
    return resolve_config(overrides=[parse_override(o) for o in overrides])


@pytest.mark.parametrize(
    ("data", "tokens", "source"),
    [
        ({"max_position_embeddings": 4096, "n_positions": 1}, 4096, "max_position_embeddings"),
        ({"n_positions": 1024}, 1024, "n_positions"),
        ({"seq_length": 8192}, 8192, "seq_length"),
        ({"text_config": {"max_position_embeddings": 32768}}, 32768, "text_config."),
    ],
)
def test_the_models_context_from_its_config(data: dict, tokens: int, source: str) -> None:
    limit = config_context(data)
    assert limit is not None and limit.tokens == tokens and limit.source.startswith(source)


def test_a_config_without_a_context_says_none() -> None:
    assert config_context({"hidden_size": 64, "max_position_embeddings": True}) is None


@pytest.mark.parametrize(
    ("backend", "setting", "tokens", "source"),
    [
        ("pytorch", None, 2048, MODEL.source),
        ("vllm", "vllm.max_model_len=512", 512, "vllm.max_model_len"),
        ("vllm", "vllm.max_model_len=8192", 2048, MODEL.source),  # cannot exceed the model
        ("sglang", "sglang.context_length=1000", 1000, "sglang.context_length"),
        ("tensorrt", "tensorrt.max_seq_len=300", 300, "tensorrt.max_seq_len"),
        ("llamacpp", "llamacpp.n_ctx=512", 512, "llamacpp.n_ctx"),
        ("llamacpp", "llamacpp.extra={n_ctx: 256}", 256, "llamacpp.extra.n_ctx"),
        ("llamacpp", None, 2048, MODEL.source),  # n_ctx defaults to 2048, as the model
        ("openai", "vllm.max_model_len=512", 2048, MODEL.source),  # an external server
    ],
)
def test_each_backends_limit(backend: str, setting: str | None, tokens: int, source: str) -> None:
    cfg = config(*([setting] if setting else []))
    limit = effective_limit(MODEL, backend, cfg)
    assert limit == ContextLimit(tokens, source)


@pytest.mark.parametrize(
    ("kind", "setting", "tokens"),
    [
        ("vllm", "vllm.max_model_len=512", 512),
        ("sglang", "sglang.context_length=600", 600),
        ("tensorrt", "tensorrt.max_seq_len=700", 700),
        ("llamacpp", "llamacpp.n_ctx=800", 800),
    ],
)
def test_a_managed_servers_setting_limits_the_openai_backend(
    kind: str, setting: str, tokens: int
) -> None:
    limit = effective_limit(MODEL, "openai", config(setting), server_kind=kind)
    assert limit is not None and limit.tokens == tokens


def test_without_a_model_limit_the_engine_setting_holds() -> None:
    assert effective_limit(None, "vllm", config("vllm.max_model_len=64")) == ContextLimit(
        64, "vllm.max_model_len"
    )
    assert effective_limit(None, "pytorch", config()) is None
    assert engine_setting("echo", config()) is None


def test_the_overflow_sentence() -> None:
    assert overflow(2032, 16, MODEL, "pytorch") is None
    assert overflow(5000, 16, MODEL, "pytorch") == (
        "5000 input + 16 output tokens = 5016 exceed the context of 2048 tokens on pytorch "
        "(max_position_embeddings in config.json); at most 2032 input tokens fit"
    )
    assert overflow(1, 4096, MODEL, "vllm").endswith("; the output alone does not fit")  # type: ignore[union-attr]
