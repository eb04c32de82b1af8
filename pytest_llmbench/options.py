"""Command-line and ini options of the ``llmbench`` group, read into one typed object."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from pytest_llmbench.backends.openai.options import OPTION_SPECS as OPENAI_OPTION_SPECS
from pytest_llmbench.backends.openai.options import OpenAIOptions, options_from_getoption
from pytest_llmbench.errors import ConfigError
from pytest_llmbench.gate.history import DEFAULT_HISTORY_RUNS
from pytest_llmbench.gate.verdicts import DEFAULT_FALSE_ALARM_RATE
from pytest_llmbench.goodput import SLO, parse_slo

UNSUPPORTED_POLICIES = ("skip", "error", "warn")
DEVICES = ("auto", "cpu", "cuda")


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("llmbench", "LLM inference benchmarks (pytest-llmbench)")

    def option(name: str, ini_type: str | None = None, default: Any = None, **kwargs: Any) -> None:
        dest = name.lstrip("-").replace("-", "_")
        help_text = kwargs.pop("help", "")
        # argparse %-formats help strings; ini help is shown verbatim.
        group.addoption(name, dest=dest, default=None, help=help_text.replace("%", "%%"), **kwargs)
        parser.addini(dest, help_text, type=ini_type, default=default)  # type: ignore[arg-type]

    option(
        "--llm-backend",
        "args",
        ["pytorch"],
        action="append",
        metavar="NAME[,NAME]",
        help="Backend(s) to benchmark: pytorch, vllm, sglang, tensorrt, openai or auto "
        "(vllm when CUDA and vLLM are present, else pytorch). Repeatable or comma-separated.",
    )
    option(
        "--llm-model",
        None,
        "",
        metavar="MODEL",
        help="A local model directory, a .gguf file, or a Hugging Face id org/name[@REVISION] "
        "found in the Hugging Face cache (default: the embedded tiny model).",
    )
    option(
        "--llm-allow-download",
        "bool",
        False,
        action="store_true",
        help="Let a Hugging Face id missing from the cache be downloaded from the Hub (default: "
        "the cache only; HF_HUB_OFFLINE=1 still forbids it).",
    )
    option(
        "--llm-config",
        None,
        "",
        metavar="YAML",
        help="Experiment config file (see docs/configuration.md).",
    )
    option(
        "--llm-preset",
        None,
        "",
        metavar="NAME",
        help="A shipped preset from configs/presets/, applied first.",
    )
    option(
        "--llm-set",
        "args",
        [],
        action="append",
        metavar="KEY=VALUE",
        help="Override one config key, e.g. --llm-set decoder.temperature=0.7 (repeatable).",
    )
    option(
        "--llm-device",
        None,
        "",
        choices=DEVICES,
        help="Where the pytorch backend runs (default auto).",
    )
    option(
        "--llm-repeat", None, "", type=int, metavar="N", help="Measured repetitions per benchmark."
    )
    option(
        "--llm-warmup",
        None,
        "",
        type=int,
        metavar="N",
        help="Unmeasured warm-up runs per benchmark.",
    )
    option("--llm-json", None, "", metavar="PATH", help="Write the JSON report here (atomically).")
    option(
        "--llm-html",
        None,
        "",
        metavar="PATH",
        help="Write a self-contained HTML report with plots here at the end of the session.",
    )
    option(
        "--llm-keep-samples",
        "bool",
        False,
        action="store_true",
        help="Keep every latency sample (TTFT, inter-token, end-to-end) in the JSON report; by "
        "default each repetition keeps exact percentiles, count, mean, min, max and a histogram.",
    )
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
    option(
        "--llm-energy",
        None,
        "auto",
        metavar="METER",
        help="Energy meter: auto (NVML counter, else NVML power sampling, else RAPL for CPU "
        "backends), nvml, nvml-power, rapl, none, or a meter a plugin registers. Unreadable "
        "meters report 'unavailable'.",
    )
    option(
        "--llm-slo",
        None,
        "",
        metavar="KEY:SECONDS[,...]",
        help="Service-level objectives for goodput, as vllm bench serve --goodput: e.g. "
        "ttft:0.2,tpot:0.05,e2e:2 (seconds; keys ttft, tpot, e2e). Results gain goodput: "
        "requests per second that met every threshold.",
    )
    option(
        "--llm-slo-attainment",
        None,
        "",
        metavar="P",
        help="Fraction of requests that must meet every --llm-slo threshold for a load to meet "
        "the SLO in a peak-goodput search (llm_bench.peak_goodput; default 0.9).",
    )
    option(
        "--llm-min-energy-window",
        None,
        "",
        type=int,
        metavar="N",
        help="Minimum counter updates (or samples) per energy window; shorter workloads repeat "
        "inside the window (default 20, ~2 s on an H100's counter).",
    )
    option(
        "--llm-energy-interval",
        None,
        "",
        type=float,
        metavar="S",
        help="Power sampling / polling interval in seconds (default 0.05).",
    )
    option(
        "--llm-energy-idle",
        None,
        "",
        type=float,
        metavar="S",
        help="Seconds of idle baseline per device before the first engine loads "
        "(default 5; 0: none).",
    )
    option(
        "--llm-energy-idle-max-age",
        None,
        "",
        type=float,
        metavar="S",
        help="Reuse a cached idle baseline of the same GPUs up to this age (default 86400 s).",
    )
    option(
        "--llm-compare",
        "args",
        [],
        action="append",
        nargs="?",
        const="",
        metavar="BASELINE",
        help="Compare with a baseline history: report files, folders of reports, globs, saved "
        "run numbers or names (repeatable), or the last --llm-history saved runs when no value "
        "is given.",
    )
    option(
        "--llm-history",
        None,
        "",
        metavar="N",
        help="Use at most the newest N runs of the baseline history "
        f"(default {DEFAULT_HISTORY_RUNS}).",
    )
    option(
        "--llm-false-alarm-rate",
        None,
        "",
        metavar="P",
        help="Probability that unchanged code fails the gate, over all gated rules and tests "
        f"(default {DEFAULT_FALSE_ALARM_RATE}).",
    )
    option(
        "--llm-fail-on",
        "args",
        [],
        action="append",
        metavar="RULES",
        help="Fail (exit 11) on significant regressions beyond thresholds, e.g. "
        "'energy_per_output_token:+5%,output_throughput:-3%' (needs --llm-compare).",
    )
    option(
        "--llm-allow-unmeasured",
        "bool",
        False,
        action="store_true",
        help="Let gated rules whose metric this run could not measure (e.g. energy rules on a "
        "CPU runner without a meter) pass instead of failing the gate with exit 12.",
    )
    option(
        "--llm-allow-mixed-backends",
        "bool",
        False,
        action="store_true",
        help="Allow comparing or merging results of different backends (labelled as mixed).",
    )
    option(
        "--llm-save",
        None,
        "",
        metavar="NAME",
        help="Save the report in the storage folder under NAME.",
    )
    option(
        "--llm-autosave",
        "bool",
        False,
        action="store_true",
        help="Save every run in the storage folder.",
    )
    option(
        "--llm-storage",
        None,
        "",
        metavar="DIR",
        help="Storage folder of saved runs (default .llmbench).",
    )
    for name, _dest, help_text, extra in OPENAI_OPTION_SPECS:
        repeated = extra.get("action") == "append"  # ini: one shell-split line of arguments
        option(name, "args" if repeated else None, [] if repeated else "", help=help_text, **extra)
    option(
        "--llm-unsupported",
        None,
        "skip",
        choices=UNSUPPORTED_POLICIES,
        help="When the config sets a parameter a backend lacks: skip its tests (default), "
        "error, or warn.",
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
    energy: EnergyOptions
    baseline: BaselineOptions
    slo: SLO | None = None
    slo_attainment: float = 0.9  # a load meets the SLO at this share of good requests
    html_path: str | None = None
    keep_samples: bool = False  # every latency sample in the report (--llm-keep-samples)
    allow_download: bool = False  # a Hugging Face id may be downloaded (--llm-allow-download)


@dataclass(frozen=True)
class EnergyOptions:
    choice: str = "auto"
    min_updates: int | None = None  # None: the meter's default
    interval_s: float = 0.05
    idle_s: float = 5.0
    idle_max_age_s: float = 86400.0


@dataclass(frozen=True)
class BaselineOptions:
    compare: tuple[str, ...] | None = None  # None: not given; "": the last saved runs
    history_runs: int = DEFAULT_HISTORY_RUNS
    false_alarm_rate: float = DEFAULT_FALSE_ALARM_RATE
    allow_unmeasured: bool = False
    fail_on: tuple[str, ...] = ()
    allow_mixed: bool = False
    save: str | None = None
    autosave: bool = False
    storage: str = ".llmbench"


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
        raise ConfigError(
            "llm_unsupported", f"{unsupported!r} is not one of {', '.join(UNSUPPORTED_POLICIES)}"
        )
    repeat = _int(config, "llm_repeat", "--llm-repeat")
    if repeat == 0:
        raise ConfigError("--llm-repeat", "0 is not >= 1")
    return Options(
        backends=tuple(parse_backend_option(_value(config, "llm_backend") or ["pytorch"])),
        model=_value(config, "llm_model"),
        allow_download=bool(_value(config, "llm_allow_download")),
        config_file=_value(config, "llm_config"),
        preset=_value(config, "llm_preset"),
        overrides=tuple(_value(config, "llm_set") or ()),
        device=device,
        repeat=repeat,
        warmup=_int(config, "llm_warmup", "--llm-warmup"),
        json_path=_value(config, "llm_json"),
        html_path=_value(config, "llm_html"),
        keep_samples=bool(_value(config, "llm_keep_samples")),
        gpus_per_worker=_int(config, "llm_gpus_per_worker", "--llm-gpus-per-worker") or None,
        ignore_backend_warnings=bool(_value(config, "llm_ignore_backend_warnings")),
        unsupported=unsupported,
        openai=options_from_getoption(lambda dest: _typed(config, dest)),
        energy=_energy_options(config),
        baseline=BaselineOptions(
            compare=_compare_values(config),
            history_runs=_history_runs(config),
            false_alarm_rate=_float(
                config, "llm_false_alarm_rate", "--llm-false-alarm-rate", DEFAULT_FALSE_ALARM_RATE
            ),
            fail_on=tuple(_value(config, "llm_fail_on") or ()),
            allow_mixed=bool(_value(config, "llm_allow_mixed_backends")),
            allow_unmeasured=bool(_value(config, "llm_allow_unmeasured")),
            save=_value(config, "llm_save"),
            autosave=bool(_value(config, "llm_autosave")),
            storage=_value(config, "llm_storage") or ".llmbench",
        ),
        slo=_slo(config),
        slo_attainment=_attainment(config),
    )


def _attainment(config: pytest.Config) -> float:
    value = _float(config, "llm_slo_attainment", "--llm-slo-attainment", 0.9)
    if not 0 < value <= 1:
        raise ConfigError("--llm-slo-attainment", f"{value:g} is not within (0, 1]")
    return value


def _history_runs(config: pytest.Config) -> int:
    runs = _int(config, "llm_history", "--llm-history")
    if runs == 0:
        raise ConfigError("--llm-history", "0 is not >= 1")
    return DEFAULT_HISTORY_RUNS if runs is None else runs


def _compare_values(config: pytest.Config) -> tuple[str, ...] | None:
    """``--llm-compare`` values (``""`` for a bare flag), or the ini line, or None."""
    given = config.getoption("llm_compare")
    if given is not None:
        return tuple(given)
    ini = config.getini("llm_compare")
    return tuple(ini) if ini else None


def _slo(config: pytest.Config) -> SLO | None:
    """``--llm-slo`` parsed; errors name the option, not the parser's internal field."""
    text = _value(config, "llm_slo")
    if text is None:
        return None
    try:
        slo = parse_slo(text)
    except ConfigError as exc:
        key = exc.field.removeprefix("slo").lstrip(".")
        raise ConfigError("--llm-slo", f"{key} {exc.detail}" if key else exc.detail) from None
    if slo == SLO():
        raise ConfigError("--llm-slo", f"{text!r} sets no threshold; e.g. ttft:0.2,e2e:2")
    return slo


def _float(config: pytest.Config, dest: str, option: str, default: float) -> float:
    value = _value(config, dest)
    if value is None:
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(option, f"{value!r} is not a number") from None
    if number < 0:
        raise ConfigError(option, f"{number:g} is not >= 0")
    return number


def _energy_options(config: pytest.Config) -> EnergyOptions:
    choice = _value(config, "llm_energy") or "auto"  # checked with plugin meters by the session
    interval = _float(config, "llm_energy_interval", "--llm-energy-interval", 0.05)
    if interval == 0:
        raise ConfigError("--llm-energy-interval", "0 is not > 0")
    return EnergyOptions(
        choice=choice,
        min_updates=_int(config, "llm_min_energy_window", "--llm-min-energy-window"),
        interval_s=interval,
        idle_s=_float(config, "llm_energy_idle", "--llm-energy-idle", 5.0),
        idle_max_age_s=_float(
            config, "llm_energy_idle_max_age", "--llm-energy-idle-max-age", 86400.0
        ),
    )
