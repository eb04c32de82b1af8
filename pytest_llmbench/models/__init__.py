"""The session's model: named as a local directory, a ``.gguf`` file or a Hugging Face
id[@revision], resolved once through huggingface_hub's cache, with its context limit, and what
each engine receives (:mod:`.resolve`)."""

from __future__ import annotations

from pytest_llmbench.models.context import ContextLimit, effective_limit, overflow
from pytest_llmbench.models.resolve import ResolvedModel, embedded_model, resolve_model

__all__ = [
    "ContextLimit",
    "ResolvedModel",
    "effective_limit",
    "embedded_model",
    "overflow",
    "resolve_model",
]
