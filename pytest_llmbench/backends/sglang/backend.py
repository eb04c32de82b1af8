"""SGLang backend: the offline ``sglang.Engine``, batched ``generate`` and streamed ``serve``.

Checked against the source of sglang 0.5.16 (``srt/entrypoints/engine.py``,
``srt/managers/tokenizer_manager.py``, ``srt/utils/watchdog.py``); not yet run on a GPU.
``tests/engines`` test every translation and these facts against stand-ins, not the engine:

- ``Engine(**server_args)`` builds ``ServerArgs``, starts the scheduler and detokenizer processes
  and keeps an event loop in ``engine.loop`` (the running loop, or a new one it sets as current);
  the tokenizer manager lives on it, so async calls run there, never on a fresh loop.
- ``engine.generate(input_ids=[[...], ...], sampling_params=[{...}, ...])`` returns one dict per
  prompt: ``{"text", "output_ids", "meta_info"}``; ``meta_info["completion_tokens"]`` counts the
  output tokens.
- ``await engine.async_generate(input_ids=[...], sampling_params={...}, stream=True)`` returns an
  async generator of such dicts. ``completion_tokens`` is cumulative. ``output_ids`` is cumulative
  (intermediate chunks hand over the live list the engine keeps extending: it is copied at once);
  with ``incremental_streaming_output`` it is the new tokens only, several queued deltas
  concatenated into one chunk.
- ``meta_info["finish_reason"]`` ``{"type": "abort", "message": ...}`` marks a request the engine
  gave up on (a stream's last chunk then holds only the last token): that request failed.
- ``engine.shutdown()`` kills the engine's child processes and waits until the GPU is released.
- A crashed scheduler makes SGLang's watchdog send SIGQUIT to the engine's process, which then
  kills its own process tree: the hosted process dies and the test that was running fails.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from pytest_llmbench.backends.base import (
    Backend,
    BackendSpec,
    Capabilities,
    Completion,
    EngineInfo,
    GenerationRequest,
    Schedule,
)
from pytest_llmbench.backends.overhead import OverheadComparison, compare_paths
from pytest_llmbench.backends.sglang import args as sglang_args
from pytest_llmbench.backends.sglang.install import NOT_INSTALLED, import_engine, sglang_problem
from pytest_llmbench.backends.streaming import TokenClock, run_schedule
from pytest_llmbench.errors import BackendUnavailable, EngineError

__all__ = ["NOT_INSTALLED", "SglangBackend"]


class SglangBackend(Backend):
    name = "sglang"
    extra = "sglang"
    capabilities = Capabilities(
        streaming=True,
        own_batching=True,
        tensor_parallel=True,
        own_process=True,
        timed_arrivals=True,
    )

    def __init__(self, spec: BackendSpec) -> None:
        super().__init__(spec)
        self._engine: Any = None
        self._sampling: dict[str, Any] = {}
        self._kwargs: dict[str, Any] = {}

    @classmethod
    def check_available(cls) -> str | None:
        """Not installed, or installed against another torch / kernel package (metadata only)."""
        return sglang_problem()

    def engine_kwargs(self) -> dict[str, Any]:
        """``sglang.Engine`` arguments for this spec (validated; raises ConfigError)."""
        return sglang_args.engine_kwargs(
            self.spec.config, self.spec.translation, self.spec.model_path
        )

    def start(self) -> None:
        self._kwargs = self.engine_kwargs()
        self._sampling = sglang_args.sampling_params(self.spec.config, self.spec.translation)
        if self.spec.device == "cpu":
            # SGLang's CPU path exists for some Intel CPUs only; benchmarks assume CUDA.
            raise BackendUnavailable("sglang needs a CUDA GPU; this session resolved device cpu")
        engine_cls = import_engine()
        self._engine = engine_cls(**self._kwargs)

    def _require_engine(self) -> Any:
        if self._engine is None:
            raise RuntimeError("start() was not called")
        return self._engine

    # -- offline: one batched call -------------------------------------------------------------
    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        """All requests in one ``Engine.generate`` call; no per-token times (not streamed)."""
        engine = self._require_engine()
        params = [sglang_args.for_request(self._sampling, r) for r in requests]
        start = time.perf_counter()
        outputs = engine.generate(
            input_ids=[list(r.prompt_token_ids) for r in requests], sampling_params=params
        )
        end = time.perf_counter()
        if isinstance(outputs, dict):  # a single prompt comes back unwrapped
            outputs = [outputs]
        if len(outputs) != len(requests):
            raise EngineError(f"sglang returned {len(outputs)} outputs for {len(requests)} prompts")
        completions = []
        for request, out in zip(requests, outputs, strict=True):
            aborted = _abort_message(out)
            ids = () if aborted else tuple(out.get("output_ids") or ())
            completions.append(
                Completion(
                    request_id=request.request_id,
                    input_tokens=request.input_tokens,
                    output_tokens=0 if aborted else _completion_tokens(out, len(ids)),
                    start_s=start,
                    end_s=end,
                    output_token_ids=ids,
                    text=None if aborted else out.get("text"),
                    error=None if aborted is None else f"sglang aborted the request: {aborted}",
                )
            )
        return _unless_all_failed(completions)

    # -- streamed, on a schedule -----------------------------------------------------------------
    def serve(self, requests: Sequence[GenerationRequest], schedule: Schedule) -> list[Completion]:
        """Stream every request (offline too, so TTFT and inter-token times always exist);
        arrivals and the concurrency cap follow ``schedule``."""
        engine = self._require_engine()
        result: list[Completion] = engine.loop.run_until_complete(
            run_schedule(schedule, requests, self._stream_one)
        )
        return _unless_all_failed(result)

    async def _stream_one(self, request: GenerationRequest) -> Completion:
        clock = TokenClock(request)
        stream = await self._engine.async_generate(
            input_ids=list(request.prompt_token_ids),
            sampling_params=sglang_args.for_request(self._sampling, request),
            stream=True,
        )
        async for chunk in stream:
            aborted = _abort_message(chunk)
            if aborted is not None:
                raise EngineError(f"sglang aborted the request: {aborted}")
            ids = chunk.get("output_ids") or ()
            total = _completion_tokens(chunk, len(ids))
            # Cumulative ids have as many entries as tokens so far; deltas fewer.
            clock.update(total, ids, cumulative=len(ids) >= total)
        return clock.completion()

    # -- harness fidelity ------------------------------------------------------------------------
    def harness_overhead(
        self,
        requests: Sequence[GenerationRequest],
        repetitions: int = 5,
        warmup: bool = True,
        harness_first: bool = False,
    ) -> OverheadComparison:
        """Output tok/s of ``generate`` vs ``Engine.generate`` called as a user would, on this
        engine: token-id prompts and sampling dicts prepared once, one batched call."""
        engine = self._require_engine()
        input_ids = [list(r.prompt_token_ids) for r in requests]
        params = [sglang_args.for_request(self._sampling, r) for r in requests]
        # One sampling dict for all when the lengths agree, as a user would write it.
        shared: dict[str, Any] | list[dict[str, Any]] = (
            params[0] if all(p == params[0] for p in params) else params
        )

        def direct() -> int:
            outputs = engine.generate(input_ids=input_ids, sampling_params=shared)
            if isinstance(outputs, dict):
                outputs = [outputs]
            return sum(_completion_tokens(o, len(o.get("output_ids") or ())) for o in outputs)

        def harness() -> int:
            return sum(c.output_tokens for c in self.generate(requests))

        return compare_paths(
            "Engine.generate",
            direct,
            harness,
            expected_tokens=sum(r.max_output_tokens for r in requests),
            repetitions=repetitions,
            warmup=warmup,
            harness_first=harness_first,
        )

    def info(self) -> EngineInfo:
        version = "unknown"
        try:
            import sglang

            version = str(getattr(sglang, "__version__", "unknown"))
        except ImportError:
            pass
        from pytest_llmbench.backends.parallel import sglang_demand

        kw = self._kwargs or self.engine_kwargs()
        details = {k: str(v) for k, v in kw.items() if k != "model_path"}
        return EngineInfo(
            backend=self.name,
            version=version,
            model=self.spec.model_path,
            device=self.spec.device,
            cuda_devices=sglang_demand(kw).cuda_devices,
            details=details,
        )

    def close(self) -> None:
        engine, self._engine = self._engine, None
        if engine is not None:
            engine.shutdown()


def _unless_all_failed(completions: list[Completion]) -> list[Completion]:
    """One request's failure is data; every request failing means the engine is not serving:
    EngineError fails the test, and the session starts a fresh engine for the next one."""
    if completions and all(c.error is not None for c in completions):
        first = completions[0].error
        raise EngineError(f"sglang: all {len(completions)} requests failed; first: {first}")
    return completions


def _abort_message(out: dict[str, Any]) -> str | None:
    """The engine's message when it aborted this request (``finish_reason`` type ``abort``)."""
    reason = (out.get("meta_info") or {}).get("finish_reason")
    if isinstance(reason, dict) and reason.get("type") == "abort":
        return str(reason.get("message") or "no message")
    return None


def _completion_tokens(out: dict[str, Any], fallback: int) -> int:
    meta = out.get("meta_info") or {}
    value = meta.get("completion_tokens")
    return int(value) if value is not None else fallback
