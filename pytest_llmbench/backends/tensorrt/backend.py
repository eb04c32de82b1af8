"""TensorRT-LLM backend: the LLM API (``tensorrt_llm.LLM``), batched generate, streamed serve.

Written against NVIDIA/TensorRT-LLM (commits in ``tensorrt_args.py``) and never run: it needs
CUDA and was not installed where this was written; ``tests/engines`` test every translation.
Facts relied on:

- ``LLM.generate([[ids...], ...], sampling_params=[SamplingParams, ...], use_tqdm=False)``
  returns one ``RequestOutput`` per prompt; ``.outputs[0].token_ids`` are the generated ids.
- ``LLM.generate_async(ids, sampling_params, streaming=True)`` returns a ``RequestOutput`` that
  is an async iterator; each item's ``.outputs[0].token_ids`` holds every token so far. It must
  be called inside the running event loop that iterates it.
- ``LLM.shutdown()`` stops the executor and its MPI workers.
"""

from __future__ import annotations

import asyncio
import dataclasses
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
from pytest_llmbench.backends.streaming import TokenClock, run_schedule
from pytest_llmbench.backends.tensorrt import args as tensorrt_args
from pytest_llmbench.errors import BackendUnavailable, ConfigError, EngineError

NOT_INSTALLED = "tensorrt_llm is not installed: pip install pytest-llmbench[tensorrt]"


def llm_class(llm_backend: str | None) -> Any:
    """The LLM class for ``LlmPlan.llm_backend`` in the installed release."""
    if llm_backend == "tensorrt":
        try:
            from tensorrt_llm._tensorrt_engine import LLM
        except ImportError:  # before 1.0, tensorrt_llm.LLM was the TensorRT-engine LLM
            from tensorrt_llm import LLM
        return LLM
    from tensorrt_llm import LLM

    return LLM


def materialize(plan_kwargs: dict[str, Any]) -> dict[str, Any]:
    """Plain dicts of ``LlmPlan.kwargs`` -> the LLM API's config objects."""
    from tensorrt_llm.llmapi import BuildConfig, KvCacheConfig, QuantAlgo, QuantConfig

    kwargs = dict(plan_kwargs)
    if "kv_cache_config" in kwargs:
        kwargs["kv_cache_config"] = KvCacheConfig(**kwargs["kv_cache_config"])
    if "quant_config" in kwargs:
        name = kwargs["quant_config"]["quant_algo"]
        members = list(QuantAlgo.__members__)
        if name not in members:
            raise ConfigError(
                "tensorrt.quantization",
                f"{name!r} is not a QuantAlgo of this TensorRT-LLM; allowed: {', '.join(members)}",
            )
        kwargs["quant_config"] = QuantConfig(quant_algo=QuantAlgo[name])
    if "build_config" in kwargs:
        kwargs["build_config"] = BuildConfig(**kwargs["build_config"])
    return kwargs


class TensorrtBackend(Backend):
    name = "tensorrt"
    extra = "tensorrt"
    capabilities = Capabilities(
        streaming=True,
        own_batching=True,
        tensor_parallel=True,
        own_process=True,
        timed_arrivals=True,
    )

    def __init__(self, spec: BackendSpec) -> None:
        super().__init__(spec)
        self._llm: Any = None
        self._plan: tensorrt_args.LlmPlan | None = None
        self._ignore_eos_field = True

    @classmethod
    def check_available(cls) -> str | None:
        if importlib.util.find_spec("tensorrt_llm") is None:
            return NOT_INSTALLED
        return None

    def plan(self) -> tensorrt_args.LlmPlan:
        """LLM class choice and arguments for this spec (validated; raises ConfigError)."""
        return tensorrt_args.llm_plan(self.spec.config, self.spec.translation, self.spec.model_path)

    def start(self) -> None:
        self._plan = self.plan()
        if self.spec.device == "cpu":
            raise BackendUnavailable(
                "tensorrt_llm needs a CUDA GPU; this session resolved device cpu"
            )
        try:
            cls = llm_class(self._plan.llm_backend)
            from tensorrt_llm import SamplingParams
        except ImportError as exc:
            raise BackendUnavailable(f"{NOT_INSTALLED} ({exc})") from exc
        fields = {f.name for f in dataclasses.fields(SamplingParams)}
        self._ignore_eos_field = "ignore_eos" in fields
        self._llm = cls(**materialize(self._plan.kwargs))

    def _sampling(self, request: GenerationRequest) -> Any:
        from tensorrt_llm import SamplingParams

        return SamplingParams(
            **tensorrt_args.sampling_kwargs(
                self.spec.translation, request, ignore_eos_field=self._ignore_eos_field
            )
        )

    def _require_llm(self) -> Any:
        if self._llm is None:
            raise RuntimeError("start() was not called")
        return self._llm

    # -- offline: one batched call -------------------------------------------------------------
    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        """All requests in one ``LLM.generate`` call; no per-token times (not streamed)."""
        llm = self._require_llm()
        params = [self._sampling(r) for r in requests]
        start = time.perf_counter()
        outputs = llm.generate(
            [list(r.prompt_token_ids) for r in requests], sampling_params=params, use_tqdm=False
        )
        end = time.perf_counter()
        if len(outputs) != len(requests):
            raise EngineError(
                f"tensorrt_llm returned {len(outputs)} outputs for {len(requests)} prompts"
            )
        completions = []
        for request, out in zip(requests, outputs, strict=True):
            ids = tuple(out.outputs[0].token_ids)
            completions.append(
                Completion(
                    request_id=request.request_id,
                    input_tokens=request.input_tokens,
                    output_tokens=len(ids),
                    start_s=start,
                    end_s=end,
                    output_token_ids=ids,
                )
            )
        return completions

    # -- streamed, on a schedule -----------------------------------------------------------------
    def serve(self, requests: Sequence[GenerationRequest], schedule: Schedule) -> list[Completion]:
        """Stream every request (offline too, so TTFT and inter-token times always exist);
        arrivals and the concurrency cap follow ``schedule``."""
        self._require_llm()
        return asyncio.run(run_schedule(schedule, requests, self._stream_one))

    async def _stream_one(self, request: GenerationRequest) -> Completion:
        clock = TokenClock(request)
        stream = self._llm.generate_async(
            list(request.prompt_token_ids), self._sampling(request), streaming=True
        )
        async for out in stream:
            ids = out.outputs[0].token_ids
            clock.update(len(ids), ids, cumulative=True)
        return clock.completion()

    def info(self) -> EngineInfo:
        version = "unknown"
        try:
            import tensorrt_llm

            version = str(getattr(tensorrt_llm, "__version__", "unknown"))
        except ImportError:
            pass
        from pytest_llmbench.backends.parallel import tensorrt_demand

        plan = self._plan or self.plan()
        kw = plan.kwargs
        details = {k: str(v) for k, v in kw.items() if k not in ("model", "tokenizer")}
        details["llm_backend"] = plan.llm_backend or "release default"
        return EngineInfo(
            backend=self.name,
            version=version,
            model=self.spec.model_path,
            device=self.spec.device,
            cuda_devices=tensorrt_demand(kw).cuda_devices,
            details=details,
        )

    def close(self) -> None:
        llm, self._llm = self._llm, None
        if llm is not None:
            llm.shutdown()
