"""The session's state: resolved config, engines (one per backend and settings), results.

Engines are expensive (a vLLM start takes a minute), so each (backend, model, settings) is
started once and reused; engines that manage CUDA themselves run in their own process and only
one of them is alive at a time, so that, e.g., vLLM and TensorRT-LLM never share a GPU context.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pytest_llmbench import compat
from pytest_llmbench.backends.base import Backend, BackendSpec, EngineInfo
from pytest_llmbench.backends.registry import AUTO, Registry
from pytest_llmbench.config.load import parse_override, resolve_config
from pytest_llmbench.config.schema import ExperimentConfig
from pytest_llmbench.energy.base import EnergyMeter, UnavailableMeter
from pytest_llmbench.energy.plugins import MeterRegistry, MeterRequest
from pytest_llmbench.energy.telemetry import GpuTelemetry
from pytest_llmbench.errors import (
    BackendUnavailable,
    ConfigError,
    EngineError,
    LLMBenchError,
    UnsupportedParameter,
)
from pytest_llmbench.models import ContextLimit, ResolvedModel, effective_limit
from pytest_llmbench.options import Options
from pytest_llmbench.quality.perplexity import Perplexity
from pytest_llmbench.quality.probe import ProbeOutput
from pytest_llmbench.results import BenchmarkResult


class BackendWarning(UserWarning):
    """A parameter is translated with different semantics on a backend."""


class ModelWarning(UserWarning):
    """Something about the model the user should know once (a local folder shadows an id)."""


@dataclass
class EngineHandle:
    """A started engine and what the benchmarks need to know about it."""

    name: str
    backend: Backend
    spec: BackendSpec
    info: EngineInfo
    meter: EnergyMeter
    meter_note: str
    telemetry: GpuTelemetry | None = None  # GPU state around each window; None off-GPU
    quality: EngineQuality | None = None  # the probe and perplexity, measured once per engine
    probe_recorded: bool = False  # its probe rode on a test report already


@dataclass(frozen=True)
class EngineQuality:
    """What ``pytest_llmbench.quality`` measured on one engine right after it started."""

    perplexity: Perplexity
    probe: ProbeOutput
    dtype: str

    def section(self) -> dict[str, Any]:
        """A result's ``quality`` section."""
        from pytest_llmbench.quality.perplexity import quality_section

        return quality_section(self.perplexity, self.dtype)


@dataclass
class _Failure:
    message: str


@dataclass
class LLMBenchSession:
    options: Options
    config: ExperimentConfig
    registry: Registry
    backends: tuple[str, ...]
    meter_registry: MeterRegistry = field(default_factory=MeterRegistry)
    results: list[BenchmarkResult] = field(default_factory=list)
    model: ResolvedModel = field(default_factory=lambda: _embedded(0))
    _engines: dict[tuple[str, str, str, str], EngineHandle | _Failure] = field(default_factory=dict)
    _warned: set[str] = field(default_factory=set)
    _meters: list[EnergyMeter] = field(default_factory=list)
    _fixture_meter: tuple[EnergyMeter, str] | None = None
    _idle_done: bool = False

    @classmethod
    def create(
        cls, options: Options, registry: Registry, meter_registry: MeterRegistry | None = None
    ) -> LLMBenchSession:
        """Validate everything the user typed; raises ConfigError with the field named."""
        meter_registry = meter_registry or MeterRegistry()
        meter_registry.check_choice(options.energy.choice)
        overrides: list[Mapping[str, Any]] = [parse_override(o) for o in options.overrides]
        cli: dict[str, object] = {}
        if options.model:
            cli["model_name"] = options.model
        if options.device:
            cli["device"] = options.device
        runner: dict[str, int] = {}
        if options.repeat is not None:
            runner["repetitions"] = options.repeat
        if options.warmup is not None:
            runner["warmup"] = options.warmup
        if runner:
            cli["runner"] = runner
        config = resolve_config(
            preset=options.preset,
            config_file=options.config_file,
            overrides=[*overrides, cli] if cli else overrides,
        )
        for name in options.backends:
            registry.check_name(name)
        backends = tuple(
            dict.fromkeys(
                registry.resolve_auto(config.device) if b == AUTO else b for b in options.backends
            )
        )
        session = cls(
            options=options,
            config=config,
            registry=registry,
            backends=backends,
            meter_registry=meter_registry,
            model=_session_model(options, config),
        )
        session.check_model()
        return session

    # -- GPUs ----------------------------------------------------------------------------------
    def check_gpus(self, per_worker: int | None = None) -> None:
        """ConfigError now, before any engine starts, when a selected engine needs more GPUs than
        this session has: those CUDA sees here, or ``per_worker`` each (the xdist controller
        with ``--llm-gpus-per-worker``). Skipped where no GPU is countable (engines run on the
        CPU there) and for engines of one GPU."""
        from pytest_llmbench.backends.parallel import check_fits, engine_demand

        if self.config.device == "cpu":
            return
        server = None if self.options.openai.server_url else self.options.openai.server
        demands = {}
        for backend in self.backends:
            demand = engine_demand(self.config, backend, server=server)
            if demand is not None and demand.needed > 1:
                demands[backend] = demand
        if not demands:
            return
        if per_worker:
            where = f"each xdist worker gets {per_worker} (--llm-gpus-per-worker {per_worker})"
            check_fits(demands, per_worker, where)
            return
        import os

        from pytest_llmbench.energy.gpus import count_visible_gpus

        visible = count_visible_gpus()
        if not visible:
            return
        shown = os.environ.get("CUDA_VISIBLE_DEVICES", "unset")
        verb = "is" if visible == 1 else "are"
        where = f"only {visible} {verb} visible (CUDA_VISIBLE_DEVICES={shown})"
        check_fits(demands, visible, where)

    # -- model ---------------------------------------------------------------------------------
    def model_path(self, backend: str | None = None) -> str:
        """The path ``backend``'s engine loads (None: where the harness's tokenizer loads from);
        the embedded model is built on first use."""
        if self.model.kind == "embedded" and self.model.directory is None:
            from pytest_llmbench.workload.tinymodel import TinyModelSpec, ensure_tiny_model

            built = ensure_tiny_model(TinyModelSpec(seed=self.config.random_seed))
            self.model = dataclasses.replace(self.model, directory=str(built))
        if backend is None:
            return self.model.tokenizer_path()
        return self.model.engine_path(backend, self._server_kind(backend))

    def _server_kind(self, backend: str) -> str | None:
        """The managed server behind the openai backend; None for other backends or a URL."""
        openai = self.options.openai
        return openai.server if backend == "openai" and not openai.server_url else None

    def context_limit(self, backend: str) -> ContextLimit | None:
        """Tokens (prompt plus output) one request may hold on ``backend``; None if unknown."""
        return effective_limit(self.model.context, backend, self.config, self._server_kind(backend))

    def check_model(self) -> None:
        """Before any engine starts: every selected backend can load the model, and the lengths
        the config sets fit each one's context. ConfigError naming the option or key."""
        from pytest_llmbench.models.fit import check_config
        from pytest_llmbench.workload.tokenizer import load_tokenizer

        if self.model.kind != "embedded":
            for name in self.backends:
                self.model.engine_path(name, self._server_kind(name))
        check_config(
            self.config,
            {name: self.context_limit(name) for name in self.backends},
            lambda: load_tokenizer(self.model_path()),
        )

    def config_digest(self) -> str:
        """The config's hash as results record it, with the model's commit where the name typed
        does not pin it (two commits of one Hugging Face id are two configs)."""
        return self.config.digest(self.model.identity)

    # -- compatibility -------------------------------------------------------------------------
    def check_parameters(self, backend: str, required: tuple[str, ...]) -> str | None:
        """A skip reason, or None. Applies the ``--llm-unsupported`` policy to the config."""
        for parameter in required:
            reason = compat.unsupported_reason(parameter, backend)
            if reason:
                return reason
        translation = compat.translate(self.config, backend)
        if translation.unsupported:
            text = "; ".join(f"{p}: {why}" for p, why in translation.unsupported)
            message = f"{backend} does not support parameters set in the config: {text}"
            if self.options.unsupported == "error":
                raise UnsupportedParameter(message)
            if self.options.unsupported == "skip":
                return message
            self._warn_once(f"unsupported:{backend}", message)
        if translation.notes and not self.options.ignore_backend_warnings:
            text = "; ".join(f"{p}: {note}" for p, note in translation.notes)
            self._warn_once(f"notes:{backend}", f"{backend} translates: {text}")
        return None

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            warnings.warn(BackendWarning(message), stacklevel=3)

    # -- engines -------------------------------------------------------------------------------
    def engine(self, name: str) -> EngineHandle:
        """The started engine for ``name``; BackendUnavailable (skip) or EngineError (fail)."""
        backend_cls = self.registry.load(name)
        reason = backend_cls.check_available()
        if reason:
            raise BackendUnavailable(reason)
        device = self._device_for(name)
        model = self.model_path(name)
        key = (name, model, self.config.engine_digest(), device)
        cached = self._engines.get(key)
        if isinstance(cached, _Failure):
            raise EngineError(cached.message)
        if cached is not None:
            return cached
        if backend_cls.capabilities.own_process:
            self._close_own_process_engines()
        self.measure_idle_before_engines()
        spec = BackendSpec(
            model,
            self.config,
            compat.translate(self.config, name),
            device,
            options={"openai": self.options.openai},
        )
        backend = self._build(name, backend_cls, spec)
        try:
            backend.start()
            info = backend.info()
        except (UnsupportedParameter, BackendUnavailable):
            backend.close()
            raise
        except Exception as exc:
            backend.close()
            message = f"{name} engine failed to start: {exc}"
            self._engines[key] = _Failure(message)
            raise EngineError(message) from exc
        meter, note = self._meter_for(info)
        telemetry = None
        if info.device == "cuda":
            from pytest_llmbench.energy.telemetry import open_telemetry

            telemetry, _ = open_telemetry(info.cuda_devices)
        handle = EngineHandle(name, backend, spec, info, meter, note, telemetry)
        self._engines[key] = handle
        return handle

    def quality(self, handle: EngineHandle) -> EngineQuality:
        """The agreement probe and the perplexity of the reference text on ``handle``'s engine,
        measured at its first use (while it is alive: only one own-process engine is)."""
        if handle.quality is None:
            from pytest_llmbench.quality.perplexity import measure_perplexity, reference_ids
            from pytest_llmbench.quality.probe import run_probe
            from pytest_llmbench.workload.tokenizer import load_tokenizer

            ids = reference_ids(load_tokenizer(self.model_path()))
            dtype = engine_dtype(handle.info, self.config)
            try:
                probe = run_probe(
                    handle.backend, ids, backend=handle.name, model=handle.info.model, dtype=dtype
                )
                perplexity = measure_perplexity(handle.backend, ids)
            except EngineError:
                self.discard(handle.name)
                raise
            handle.quality = EngineQuality(perplexity, probe, dtype)
        return handle.quality

    def _build(self, name: str, backend_cls: type[Backend], spec: BackendSpec) -> Backend:
        if backend_cls.capabilities.own_process:
            from pytest_llmbench.backends.host import HostedBackend

            # The class, not the name: the child process has no pytest hooks, so a backend
            # registered through pytest_llmbench_register_backends has no name there.
            return HostedBackend(backend_cls, spec)
        return backend_cls(spec)

    def _device_for(self, name: str) -> str:
        if name == "pytorch":
            from pytest_llmbench.backends.pytorch.backend import resolve_device

            return resolve_device(self.config.device)
        if name == "openai" and self.options.openai.server_url:
            return "remote"  # another machine's energy is not ours to measure
        if name == "llamacpp" and not self.config.llamacpp.extra.get("n_gpu_layers"):
            return "cpu"  # llama.cpp computes on the CPU unless layers are offloaded to a GPU
        from pytest_llmbench.backends.registry import _cuda_available

        return "cuda" if _cuda_available() and self.config.device != "cpu" else "cpu"

    # -- energy --------------------------------------------------------------------------------
    def check_energy_choice(self) -> None:
        """An explicit ``--llm-energy`` meter that cannot read here is a usage error now, before
        any test runs, rather than one setup error per test. ``auto`` and ``none`` never fail."""
        choice = self.options.energy.choice
        if choice in ("auto", "none"):
            return
        if choice in ("nvml", "nvml-power") and self.config.device == "cpu":
            raise ConfigError(
                "--llm-energy",
                f"{choice}: the config runs every backend on the CPU (device: cpu), so no GPU "
                "is measured; use rapl, auto or none",
            )
        meter, _ = self._build_meter(None)  # every device the session can see
        close = getattr(meter, "close", None)
        if callable(close):
            close()

    def _select(self, cuda_devices: tuple[int, ...] | None) -> tuple[EnergyMeter, str]:
        meter, note = self._build_meter(cuda_devices)
        self._meters.append(meter)
        if not isinstance(meter, UnavailableMeter) and self.options.energy.idle_s > 0:
            self._establish_idle(meter)
        return meter, note

    def _build_meter(self, cuda_devices: tuple[int, ...] | None) -> tuple[EnergyMeter, str]:
        """The chosen meter; ConfigError naming ``--llm-energy`` if an explicit one cannot read."""
        from pytest_llmbench.energy.select import select_meter

        e = self.options.energy
        meter: EnergyMeter
        try:
            if e.choice in self.meter_registry.names():
                request = MeterRequest(cuda_devices, e.interval_s, e.min_updates)
                meter, note = self.meter_registry.create(e.choice, request)
            else:
                meter, note = select_meter(
                    e.choice,  # type: ignore[arg-type]
                    cuda_devices,
                    sample_interval_s=e.interval_s,
                    min_updates=e.min_updates,
                )
        except LLMBenchError as exc:  # an explicit --llm-energy choice that cannot read
            detail = str(exc).removeprefix("--llm-energy").lstrip(": ")  # name the option once
            raise ConfigError("--llm-energy", detail) from None
        return meter, note

    def _establish_idle(self, meter: EnergyMeter) -> None:
        from pytest_llmbench.energy.idle import establish_idle
        from pytest_llmbench.workload.tinymodel import cache_root

        e = self.options.energy
        establish_idle(
            meter,  # type: ignore[arg-type]
            duration_s=e.idle_s,
            cache_path=cache_root() / "idle.json",
            max_age_s=e.idle_max_age_s,
        )

    def measure_idle_before_engines(self) -> None:
        """Idle power of every visible device, measured once before any engine loads (engines
        keep GPUs busy or clocked up), and cached by GPU UUID for the per-engine meters."""
        if not self._idle_done:
            self._idle_done = True
            self.fixture_meter()

    def fixture_meter(self) -> tuple[EnergyMeter, str]:
        """The meter behind the ``energy`` fixture: every device the session can see."""
        if self._fixture_meter is None:
            self._fixture_meter = self._select(None)
        return self._fixture_meter

    def _meter_for(self, info: EngineInfo) -> tuple[EnergyMeter, str]:
        if info.device == "remote":
            meter = UnavailableMeter(
                "the server runs elsewhere: its energy is not measurable from here"
            )
            return meter, meter.describe()
        return self._select(info.cuda_devices if info.device == "cuda" else ())

    def discard(self, name: str) -> None:
        """Close and forget ``name``'s engines after a crash, so the next test starts afresh."""
        for key, handle in list(self._engines.items()):
            if key[0] == name:
                if isinstance(handle, EngineHandle):
                    _close_handle(handle)
                del self._engines[key]

    def _close_own_process_engines(self) -> None:
        for key, handle in list(self._engines.items()):
            if isinstance(handle, EngineHandle) and handle.backend.capabilities.own_process:
                _close_handle(handle)
                del self._engines[key]

    def close(self) -> None:
        for handle in self._engines.values():
            if isinstance(handle, EngineHandle):
                _close_handle(handle)
        self._engines.clear()
        for meter in self._meters:
            close = getattr(meter, "close", None)
            if callable(close):
                close()
        self._meters.clear()


def engine_dtype(info: EngineInfo, config: ExperimentConfig) -> str:
    """The weights' dtype as the engine reports it, else as configured (``auto``: the engine's
    own default, which the report cannot see)."""
    dtype = info.details.get("dtype")
    if dtype:
        return dtype
    if config.fp_precision != "auto":
        return config.fp_precision
    return "auto (engine default)"


def _close_handle(handle: EngineHandle) -> None:
    _close_quietly(handle.backend)
    if handle.telemetry is not None:
        handle.telemetry.close()


def _close_quietly(backend: Backend) -> None:
    try:
        backend.close()
    except Exception as exc:  # closing must not hide the test outcome
        warnings.warn(f"closing {backend.name} failed: {exc}", stacklevel=2)


def _embedded(seed: int) -> ResolvedModel:
    from pytest_llmbench.models import embedded_model
    from pytest_llmbench.workload.tinymodel import TinyModelSpec

    tokens = TinyModelSpec(seed=seed).max_position_embeddings
    where = "max_position_embeddings of the embedded model"
    return embedded_model(None, ContextLimit(tokens, where))


def _session_model(options: Options, config: ExperimentConfig) -> ResolvedModel:
    """The session's model, resolved once. Errors name what the user typed: ``--llm-model``
    (or its ini key) when given there, else ``model_name`` and the file that set it."""
    if config.model_name is None:
        return _embedded(config.random_seed)
    from pytest_llmbench.config.load import setting_source
    from pytest_llmbench.models import resolve_model

    if options.model:
        field_name, source = "--llm-model", None
    else:
        field_name = "model_name"
        source = setting_source(
            "model_name",
            preset=options.preset,
            config_file=options.config_file,
            overrides=[parse_override(o) for o in options.overrides],
        )
    return resolve_model(
        config.model_name, field=field_name, source=source, allow_download=options.allow_download
    )
