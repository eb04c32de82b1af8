"""Plain JSON values: what a result may hold, so it survives json and pytest-xdist unchanged.

Results ride on test reports, which pytest-xdist ships from workers to the controller through
execnet; execnet serialises exact builtin types only. Engines hand us look-alikes (torch's
``TorchVersion`` is a ``str`` subclass, numpy scalars are numbers), so every value entering a
result is converted here, where it is built, never later.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from typing import Any

JSONScalar = str | int | float | bool | None


def plain_str(value: object, where: str = "value") -> str:
    """A string as an exact ``str`` (a subclass such as TorchVersion loses its class)."""
    if not isinstance(value, str):
        raise TypeError(f"{where}: expected a string, found {type(value).__name__}")
    return str.__str__(value)


def as_text(value: object) -> str:
    """Any engine fact (a version object, a number) as an exact ``str``."""
    return str.__str__(value) if isinstance(value, str) else str.__str__(str(value))


def plain_float(value: object, where: str = "value") -> float:
    """A real number as an exact ``float``; TypeError naming ``where`` for anything else."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{where}: expected a number, found {type(value).__name__}")
    return float(value)


def plain_int(value: object, where: str = "value") -> int:
    """An integral number as an exact ``int``; TypeError naming ``where`` for anything else."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{where}: expected an integer, found {type(value).__name__}")
    return int(value)


def plain_json(value: Any, where: str = "value") -> Any:
    """A deep copy of ``value`` made of dict/list/str/int/float/bool/None only.

    Tuples become lists (as JSON would make them); subclasses of str and numbers become the
    builtin type. Anything else (an object, bytes, a set) is a TypeError naming the dotted
    path ``where``: a bug in whatever built the value, caught before it reaches a report.
    """
    if value is None or isinstance(value, bool):
        return value if value is None else bool(value)
    if isinstance(value, str):
        return plain_str(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{where}: key {key!r} is not a string")
            out[str.__str__(key)] = plain_json(item, f"{where}.{key}")
        return out
    if isinstance(value, (list, tuple)):
        return [plain_json(item, f"{where}[{i}]") for i, item in enumerate(value)]
    raise TypeError(f"{where}: {type(value).__name__} is not a JSON value")


def plain_str_dict(value: Mapping[Any, Any]) -> dict[str, str]:
    """A mapping of strings to strings (engine details), whatever the engine handed us."""
    return {as_text(k): as_text(v) for k, v in value.items()}
