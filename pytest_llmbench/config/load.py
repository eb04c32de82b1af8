"""Build the session's ExperimentConfig from defaults, a preset, a YAML file and overrides."""

from __future__ import annotations

from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from pytest_llmbench.config.fields import build
from pytest_llmbench.config.schema import ExperimentConfig
from pytest_llmbench.errors import ConfigError

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

PRESET_PACKAGE = "pytest_llmbench.presets"


def _preset_root() -> Traversable:
    """Installed: the package ``pytest_llmbench.presets``; a bare source checkout on
    PYTHONPATH (as on the GPU machine): ``configs/presets`` beside the package."""
    try:
        return resources.files(PRESET_PACKAGE)
    except ModuleNotFoundError:
        return resources.files("pytest_llmbench").joinpath("..").joinpath("configs/presets")


def available_presets() -> list[str]:
    """Names of the presets shipped with the package (``configs/presets/*.yaml``)."""
    root = _preset_root()
    return sorted(p.name[: -len(".yaml")] for p in root.iterdir() if p.name.endswith(".yaml"))


def _read_yaml(text: str, source: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError("", yaml_error(text, exc), source=source) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError("", "the top level must be a mapping of config keys", source=source)
    return data


# Problems PyYAML notices only after the construct at fault: an unclosed quote or bracket at the
# end of the file, a key without ':' on the next line. Its context mark is where the fault is.
_AT_CONTEXT = ("while scanning a simple key", "while scanning a quoted scalar")


def yaml_error(text: str, exc: yaml.YAMLError) -> str:
    """One line: ``invalid YAML at line L column C: problem``, L and C (1-based) where the
    user must edit, which is not always where PyYAML noticed (its problem mark)."""
    problem = getattr(exc, "problem", None) or str(exc).strip().splitlines()[0]
    mark = getattr(exc, "problem_mark", None)
    context = getattr(exc, "context", None)
    context_mark = getattr(exc, "context_mark", None)
    if context in _AT_CONTEXT and context_mark is not None:
        mark, problem = context_mark, f"{problem} ({context})"
    elif str(context).startswith("while parsing a flow") and context_mark is not None:
        # Either a ',' is missing here or the bracket opened there is never closed: name both.
        opened = f"line {context_mark.line + 1} column {context_mark.column + 1}"
        problem = f"{problem} ({context} opened at {opened})"
    elif problem == "mapping values are not allowed here" and mark is not None:
        # "a 1\n  b: 2" reads as the key "a 1 b": the ':' PyYAML trips on follows a plain value
        # that began a line of its own earlier on, whose own ':' is missing.
        start = _plain_value_start(text)
        lines = text.splitlines()
        if start is not None and start.line < mark.line:
            before = lines[start.line][: start.column].strip()
            if before in ("", "-"):
                mark = start
                line = lines[start.line].strip()
                problem = f"{line!r} is not 'key: value' (missing ':'?)"
    if mark is None:
        return f"invalid YAML: {problem}"
    return f"invalid YAML at line {mark.line + 1} column {mark.column + 1}: {problem}"


def _plain_value_start(text: str) -> yaml.Mark | None:
    """Where the last value read before a scanner error began."""
    last: yaml.Token | None = None
    try:
        for token in yaml.scan(text):
            last = token
    except yaml.YAMLError:
        pass
    if isinstance(last, yaml.ScalarToken) and last.plain:
        return last.start_mark
    return None


def load_preset(name: str) -> dict[str, Any]:
    """The raw mapping of a shipped preset; unknown names list the available ones."""
    names = available_presets()
    if name not in names:
        raise ConfigError("--llm-preset", f"{name!r} is not one of {', '.join(names)}")
    text = _preset_root().joinpath(f"{name}.yaml").read_text()
    return _read_yaml(text, f"preset {name}")


def load_file(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise ConfigError("--llm-config", f"{str(p)!r} is not a readable file")
    return _read_yaml(p.read_text(), str(p))


def deep_merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """``update`` wins key by key; nested mappings merge instead of being replaced."""
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def parse_override(text: str) -> dict[str, Any]:
    """``decoder.temperature=0.7`` -> ``{"decoder": {"temperature": 0.7}}`` (value read as YAML)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError("--llm-set", f"{text!r} is not of the form dotted.key=value")
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        value = raw
    nested: dict[str, Any] = {}
    cursor = nested
    parts = key.strip().split(".")
    for part in parts[:-1]:
        cursor = cursor.setdefault(part, {})
    cursor[parts[-1]] = value
    return nested


def resolve_config(
    *,
    preset: str | None = None,
    config_file: str | Path | None = None,
    overrides: list[Mapping[str, Any]] | None = None,
) -> ExperimentConfig:
    """Defaults < preset < config file (its own ``preset:`` key first) < overrides."""
    layers: list[tuple[str, Mapping[str, Any]]] = []
    file_data: dict[str, Any] = {}
    if config_file is not None:
        file_data = load_file(config_file)
        file_preset = file_data.pop("preset", None)
        if file_preset is not None and preset is None:
            preset = str(file_preset)
    if preset:
        layers.append((f"preset {preset}", load_preset(preset)))
    if config_file is not None:
        layers.append((str(config_file), file_data))
    for override in overrides or []:
        layers.append(("command line", override))
    merged: dict[str, Any] = {}
    config = ExperimentConfig()
    for source, layer in layers:
        merged = deep_merge(merged, layer)
        # Validating after each layer lets an error name the file that brought the bad value.
        try:
            config = build(ExperimentConfig, merged)
        except ConfigError as exc:
            raise exc.with_source(source) from None
    return config


def setting_source(
    key: str,
    *,
    preset: str | None = None,
    config_file: str | Path | None = None,
    overrides: list[Mapping[str, Any]] | None = None,
) -> str | None:
    """Which layer of :func:`resolve_config` set the top-level ``key`` last, named as its errors
    name it (the file, ``preset NAME``, ``command line``); None for the default."""
    if any(key in override for override in overrides or []):
        return "command line"
    if config_file is not None:
        file_data = load_file(config_file)
        if key in file_data:
            return str(config_file)
        preset = preset or (str(file_data["preset"]) if "preset" in file_data else None)
    if preset and key in load_preset(preset):
        return f"preset {preset}"
    return None
