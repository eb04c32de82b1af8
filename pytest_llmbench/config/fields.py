"""Declarative field constraints and the generic mapping -> dataclass validator.

Config sections are plain dataclasses whose fields carry their constraints in metadata, so one
validator produces every error message in the same shape: ``dotted.field: value is not allowed``.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
from collections.abc import Mapping
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

from pytest_llmbench.errors import ConfigError, ConfigErrors

T = TypeVar("T")


def setting(
    default: Any = dataclasses.MISSING,
    *,
    doc: str,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    factory: Any = dataclasses.MISSING,
) -> Any:
    """A dataclass field with a docstring and numeric bounds checked by :func:`build`."""
    meta = {"doc": doc, "ge": ge, "gt": gt, "le": le, "lt": lt}
    if factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def _describe(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) if a is not None else "null" for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in get_args(tp))
    if tp is type(None):
        return "null"
    if origin in (dict, Mapping):
        return "a mapping"
    if origin in (list, tuple):
        return "a list"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return getattr(tp, "__name__", str(tp))


def _fmt(value: Any) -> str:
    if isinstance(value, str):
        return repr(value)
    if value is None:
        return "null"
    return str(value)


def _coerce(value: Any, tp: Any, path: str) -> Any:
    """Return ``value`` checked against ``tp``; raise ConfigError naming ``path`` otherwise."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin is Literal:
        if value in get_args(tp):
            return value
        raise ConfigError(path, f"{_fmt(value)} is not one of {_describe(tp)}")
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, path)
            except ConfigError as exc:
                errors.append(exc)
        if len(errors) == 1:
            raise errors[0]
        raise ConfigError(path, f"{_fmt(value)} is not {_describe(tp)}")
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise ConfigError(path, f"{_fmt(value)} is not a mapping")
        return build(tp, value, path)  # type: ignore[arg-type]
    if origin in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise ConfigError(path, f"{_fmt(value)} is not a mapping")
        key_tp, val_tp = get_args(tp) or (str, Any)
        return {
            _coerce(k, key_tp, path): _coerce(v, val_tp, f"{path}.{k}") for k, v in value.items()
        }
    if origin in (list, tuple):
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise ConfigError(path, f"{_fmt(value)} is not a list")
        (item_tp, *_) = get_args(tp) or (Any,)
        items = [_coerce(v, item_tp, f"{path}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(path, f"{_fmt(value)} is not a boolean (true or false)")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(path, f"{_fmt(value)} is not an integer")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(path, f"{_fmt(value)} is not a number")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(path, f"{_fmt(value)} is not a string")
    raise TypeError(f"unsupported config type {tp!r} at {path}")  # our bug, not the user's


def _check_bounds(value: Any, meta: Mapping[str, Any], path: str) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return
    if meta.get("ge") is not None and not value >= meta["ge"]:
        raise ConfigError(path, f"{_fmt(value)} is not >= {_fmt(meta['ge'])}")
    if meta.get("gt") is not None and not value > meta["gt"]:
        raise ConfigError(path, f"{_fmt(value)} is not > {_fmt(meta['gt'])}")
    if meta.get("le") is not None and not value <= meta["le"]:
        raise ConfigError(path, f"{_fmt(value)} is not <= {_fmt(meta['le'])}")
    if meta.get("lt") is not None and not value < meta["lt"]:
        raise ConfigError(path, f"{_fmt(value)} is not < {_fmt(meta['lt'])}")


def build(cls: type[T], data: Mapping[str, Any], path: str = "") -> T:
    """Validate ``data`` against dataclass ``cls`` and return an instance.

    Unknown keys are errors (a typo must not silently fall back to a default). A section may define
    ``validate(self, path)`` for rules that span several fields.
    """
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    kwargs: dict[str, Any] = {}
    errors: list[ConfigError] = []  # every bad key of the mapping, not only the first
    for key, value in data.items():
        dotted = f"{path}.{key}" if path else str(key)
        try:
            if key not in fields:
                raise ConfigError(dotted, _unknown_key(str(key), path, cls))
            coerced = _coerce(value, hints[key], dotted)
            _check_bounds(value, fields[key].metadata, dotted)  # the value as typed
        except ConfigErrors as exc:
            errors += exc.errors
        except ConfigError as exc:
            errors.append(exc)
        else:
            kwargs[key] = coerced
    if len(errors) > 1:
        raise ConfigErrors(errors)
    if errors:
        raise errors[0]
    instance = cls(**kwargs)
    validate = getattr(instance, "validate", None)
    if callable(validate):
        validate(path)
    return instance


def _unknown_key(key: str, path: str, cls: type) -> str:
    """The unknown-key message, with the key the user probably meant: a near spelling here
    (``decoder.temprature``), else the same name one section down (``temperature`` at the top
    level for ``decoder.temperature``)."""
    prefix = f"{path}." if path else ""
    names = [f.name for f in dataclasses.fields(cls)]
    close = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
    if close:
        meant = prefix + close[0]
    else:
        hints = get_type_hints(cls)
        below = [
            f"{prefix}{name}.{key}"
            for name in names
            if dataclasses.is_dataclass(hints[name])
            and key in {f.name for f in dataclasses.fields(hints[name])}
        ]
        meant = below[0] if len(below) == 1 else ""
    hint = f"did you mean {meant!r}? " if meant else ""
    return f"unknown key; {hint}allowed keys here: {', '.join(sorted(names))}"


def field_docs(cls: type, prefix: str = "") -> list[tuple[str, str, str, Any]]:
    """(dotted name, type, doc, default) of every leaf field: the config reference's source."""
    rows: list[tuple[str, str, str, Any]] = []
    hints = get_type_hints(cls)
    for f in dataclasses.fields(cls):
        name = f"{prefix}{f.name}"
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            rows.extend(field_docs(tp, f"{name}."))  # type: ignore[arg-type]
            continue
        factory: Any = f.default_factory
        default = f.default if f.default is not dataclasses.MISSING else factory()
        rows.append((name, _describe(tp), f.metadata.get("doc", ""), default))
    return rows
