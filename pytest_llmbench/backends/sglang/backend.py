"""SGLang backend: the offline ``sglang.Engine``, batched ``generate`` and streamed ``serve``.

Written against sgl-project/sglang commit 001067fffe33427bee0ed2f007fb7551a1d76b44
(``srt/entrypoints/engine.py``) and never run: SGLang needs CUDA and was not installed where
this was written; ``tests/engines`` test every translation, not the engine. Facts relied on:

- ``sglang.Engine(**server_args)`` starts the scheduler and detokenizer processes and keeps an
  event loop in ``engine.loop``; the tokenizer manager lives on that loop, so async calls run
  there (``engine.loop.run_until_complete``), never on a fresh loop.
- ``engine.generate(input_ids=[[...], ...], sampling_params=[{...}, ...])`` returns one dict per
  prompt: ``meta_info["completion_tokens"]`` counts the output tokens; ``output_ids`` is present
  in recent releases.
- ``await engine.async_generate(input_ids=[...], sampling_params={...}, stream=True)`` returns an
  async iterator of dicts whose ``meta_info["completion_tokens"]`` is cumulative; ``output_ids``
  is cumulative, or a delta when the server runs with incremental streaming output.
- ``engine.shutdown()`` stops the child processes.
"""

from __future__ import annotations

import importlib.util
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
from pytest_llmbench.backends.sglang import args as sglang_args
from pytest_llmbench.backends.streaming import TokenClock, run_schedule
from pytest_llmbench.errors import BackendUnavailable, EngineError

NOT_INSTALLED = "sglang is not installed: pip install pytest-llmbench[sglang]"


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
        if importlib.util.find_spec("sglang") is None:
            return NOT_INSTALLED
        return None

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
        try:
            import sglang
        except ImportError as exc:
            raise BackendUnavailable(f"{NOT_INSTALLED} ({exc})") from exc
        self._engine = sglang.Engine(**self._kwargs)

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
            ids = tuple(out.get("output_ids") or ())
            completions.append(
                Completion(
                    request_id=request.request_id,
                    input_tokens=request.input_tokens,
                    output_tokens=_completion_tokens(out, len(ids)),
                    start_s=start,
                    end_s=end,
                    output_token_ids=ids,
                    text=out.get("text"),
                )
            )
        return completions

    # -- streamed, on a schedule -----------------------------------------------------------------
    def serve(self, requests: Sequence[GenerationRequest], schedule: Schedule) -> list[Completion]:
        """Stream every request (offline too, so TTFT and inter-token times always exist);
        arrivals and the concurrency cap follow ``schedule``."""
        engine = self._require_engine()
        result: list[Completion] = engine.loop.run_until_complete(
            run_schedule(schedule, requests, self._stream_one)
        )
        return result

    async def _stream_one(self, request: GenerationRequest) -> Completion:
        clock = TokenClock(request)
        stream = await self._engine.async_generate(
            input_ids=list(request.prompt_token_ids),
            sampling_params=sglang_args.for_request(self._sampling, request),
            stream=True,
        )
        async for chunk in stream:
            ids = chunk.get("output_ids") or ()
            total = _completion_tokens(chunk, len(ids))
            # Cumulative ids have as many entries as tokens so far; deltas fewer.
            clock.update(total, ids, cumulative=len(ids) >= total)
        return clock.completion()

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


def _completion_tokens(out: dict[str, Any], fallback: int) -> int:
    meta = out.get("meta_info") or {}
    value = meta.get("completion_tokens")
    return int(value) if value is not None else fallback
