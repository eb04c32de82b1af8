"""Command-line and ini options of the ``llmbench`` group, read into one typed object."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from pytest_llmbench.backends.openai_options import OPTION_SPECS as OPENAI_OPTION_SPECS
from pytest_llmbench.backends.openai_options import OpenAIOptions, options_from_getoption
from pytest_llmbench.errors import ConfigError

UNSUPPORTED_POLICIES = ("skip", "error", "warn")
DEVICES = ("auto", "cpu", "cuda")


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("llmbench", "LLM inference benchmarks (pytest-llmbench)")

    def option(name: str, ini_type: str | None = None, default: Any = None, **kwargs: Any) -> None:
        dest = name.lstrip("-").replace("-", "_")
        group.addoption(name, dest=dest, default=None, **kwargs)
        parser.addini(dest, kwargs.get("help", ""), type=ini_type, default=default)  # type: ignore[arg-type]

    option(
        "--llm-backend",
        "args",
        ["pytorch"],
        action="append",
        metavar="NAME[,NAME]",
        help="Backend(s) to benchmark: pytorch, vllm, sglang, tensorrt, openai or auto "
        "(vllm when CUDA and vLLM are present, else pytorch). Repeatable or comma-separated.",
    )
    option("--llm-model", None, "", metavar="DIR", help="Local model directory (default: the embedded tiny model).")
    option("--llm-config", None, "", metavar="YAML", help="Experiment config file (see docs/configuration.md).")
    option("--llm-preset", None, "", metavar="NAME", help="A shipped preset from configs/presets/, applied first.")
    option(
        "--llm-set",
        "args",
        [],
        action="append",
        metavar="KEY=VALUE",
        help="Override one config key, e.g. --llm-set decoder.temperature=0.7 (repeatable).",
    )
    option("--llm-device", None, "", choices=DEVICES, help="Where the pytorch backend runs (default auto).")
    option("--llm-repeat", None, "", type=int, metavar="N", help="Measured repetitions per benchmark.")
    option("--llm-warmup", None, "", type=int, metavar="N", help="Unmeasured warm-up runs per benchmark.")
    option("--llm-json", None, "", metavar="PATH", help="Write the JSON report here (atomically).")
    option(
        "--llm-ignore-backend-warnings",
        "bool",
        False,
        action="store_true",
        help="Do not warn about parameters a backend translates with different semantics.",
    )
    option(
        "--llm-gpus-per-worker",
        None,
        "",
        type=int,
        metavar="K",
        help="With pytest-xdist (-n N): give each worker its own K GPUs via CUDA_VISIBLE_DEVICES.",
    )
    for name, _dest, help_text, extra in OPENAI_OPTION_SPECS:
        option(name, None, "", help=help_text, **extra)
    option(
        "--llm-unsupported",
        None,
        "skip",
        choices=UNSUPPORTED_POLICIES,
        help="When the config sets a parameter a backend lacks: skip its tests (default), error, or warn.",
    )


@dataclass(frozen=True)
class Options:
    backends: tuple[str, ...]
    model: str | None
    config_file: str | None
    preset: str | None
    overrides: tuple[str, ...]
    device: str | None
    repeat: int | None
    warmup: int | None
    json_path: str | None
    gpus_per_worker: int | None
    ignore_backend_warnings: bool
    unsupported: str
    openai: OpenAIOptions


def _value(config: pytest.Config, dest: str) -> Any:
    """The command line wins over the ini file; empty ini strings mean 'not set'."""
    value = config.getoption(dest)
    if value is None:
        value = config.getini(dest)
    return value if value not in ("", []) else None


def _int(config: pytest.Config, dest: str, option: str) -> int | None:
    value = _value(config, dest)
    if value is None:
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ConfigError(option, f"{value!r} is not an integer") from None
    if number < 0:
        raise ConfigError(option, f"{number} is not >= 0")
    return number


_OPENAI_TYPES = {dest: extra.get("type") for _n, dest, _h, extra in OPENAI_OPTION_SPECS}


def _typed(config: pytest.Config, dest: str) -> Any:
    """An option value of the type the command line would give it (ini values are strings)."""
    value = _value(config, dest)
    kind = _OPENAI_TYPES.get(dest)
    if value is None or kind is None or not isinstance(value, str):
        return value
    try:
        return kind(value)
    except ValueError:
        raise ConfigError(dest, f"{value!r} is not a {kind.__name__}") from None


def read_options(config: pytest.Config) -> Options:
    from pytest_llmbench.backends.registry import parse_backend_option

    device = _value(config, "llm_device")
    if device is not None and device not in DEVICES:
        raise ConfigError("llm_device", f"{device!r} is not one of {', '.join(DEVICES)}")
    unsupported = _value(config, "llm_unsupported") or "skip"
    if unsupported not in UNSUPPORTED_POLICIES:
        raise ConfigError("llm_unsupported", f"{unsupported!r} is not one of {', '.join(UNSUPPORTED_POLICIES)}")
    repeat = _int(config, "llm_repeat", "--llm-repeat")
    if repeat == 0:
        raise ConfigError("--llm-repeat", "0 is not >= 1")
    return Options(
        backends=tuple(parse_backend_option(_value(config, "llm_backend") or ["pytorch"])),
        model=_value(config, "llm_model"),
        config_file=_value(config, "llm_config"),
        preset=_value(config, "llm_preset"),
        overrides=tuple(_value(config, "llm_set") or ()),
        device=device,
        repeat=repeat,
        warmup=_int(config, "llm_warmup", "--llm-warmup"),
        json_path=_value(config, "llm_json"),
        gpus_per_worker=_int(config, "llm_gpus_per_worker", "--llm-gpus-per-worker") or None,
        ignore_backend_warnings=bool(_value(config, "llm_ignore_backend_warnings")),
        unsupported=unsupported,
        openai=options_from_getoption(lambda dest: _typed(config, dest)),
    )
