"""A JSON Schema of the experiment config, generated from its dataclasses (docs/schema/).

Editors that speak JSON Schema (VS Code's YAML extension, JetBrains IDEs) complete and check a
config file from it: keys, types, allowed values, bounds and each key's description. It is
derived from the same fields the validator reads (:mod:`pytest_llmbench.config.fields`), so the
two cannot disagree on what a key accepts; rules that span several keys stay the validator's.
"""

from __future__ import annotations

import dataclasses
import json
import types
from collections.abc import Mapping
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from pytest_llmbench.config.schema import ExperimentConfig

CONFIG_SCHEMA_PATH = "schema/config.json"
"""Where ``llmbench docs`` writes it, under the docs folder."""
DIALECT = "https://json-schema.org/draft/2020-12/schema"
_BOUNDS = {"ge": "minimum", "gt": "exclusiveMinimum", "le": "maximum", "lt": "exclusiveMaximum"}


def config_schema() -> dict[str, Any]:
    """The JSON Schema of a config file: an :class:`ExperimentConfig` plus its ``preset:`` key."""
    schema = _object(ExperimentConfig)
    schema["properties"] = {
        "preset": {
            "type": "string",
            "description": "A shipped preset applied before this file (as --llm-preset).",
        },
        **schema["properties"],
    }
    return {
        "$schema": DIALECT,
        "title": "pytest-llmbench experiment config",
        **schema,
    }


def config_schema_text() -> str:
    return json.dumps(config_schema(), indent=2) + "\n"


def _object(cls: type) -> dict[str, Any]:
    hints = get_type_hints(cls)
    properties: dict[str, Any] = {}
    for field in dataclasses.fields(cls):
        prop = _type(hints[field.name])
        doc = field.metadata.get("doc") or _first_line(hints[field.name])
        if doc:
            prop["description"] = doc
        for key, word in _BOUNDS.items():
            if field.metadata.get(key) is not None:
                prop[word] = field.metadata[key]
        default = _default(field)
        if default is not dataclasses.MISSING:
            prop["default"] = default
        properties[field.name] = prop
    out: dict[str, Any] = {"type": "object"}
    if cls.__doc__:
        out["description"] = _first_line(cls)
    out["properties"] = properties
    out["additionalProperties"] = False  # the validator rejects unknown keys too
    return out


def _first_line(tp: Any) -> str:
    doc = getattr(tp, "__doc__", None) if dataclasses.is_dataclass(tp) else None
    return " ".join(doc.strip().split("\n\n")[0].split()) if doc else ""


def _default(field: dataclasses.Field[Any]) -> Any:
    """The field's default as JSON, or MISSING when it has none or it is a section."""
    if field.default is not dataclasses.MISSING:
        value = field.default
    elif field.default_factory is not dataclasses.MISSING:
        value = field.default_factory()
    else:
        return dataclasses.MISSING
    if dataclasses.is_dataclass(value):
        return dataclasses.MISSING
    return list(value) if isinstance(value, tuple) else value


def _type(tp: Any) -> dict[str, Any]:
    origin = get_origin(tp)
    if tp is Any:
        return {}
    if origin is Literal:
        return {"enum": list(get_args(tp))}
    if origin in (Union, types.UnionType):
        return {"anyOf": [_type(arg) for arg in get_args(tp)]}
    if tp is type(None):
        return {"type": "null"}
    if dataclasses.is_dataclass(tp):
        return _object(tp)  # type: ignore[arg-type]
    if origin in (dict, Mapping):
        _, value_tp = get_args(tp) or (str, Any)
        return {"type": "object", "additionalProperties": _type(value_tp)}
    if origin in (list, tuple):
        (item_tp, *_) = get_args(tp) or (Any,)
        return {"type": "array", "items": _type(item_tp)}
    simple = {bool: "boolean", int: "integer", float: "number", str: "string"}
    if tp in simple:
        return {"type": simple[tp]}
    raise TypeError(f"no JSON Schema for config type {tp!r}")  # our bug, not the user's
