"""The direct vLLM path for :mod:`pytest_llmbench.backends.overhead`: the engine used by hand.

Prompts and SamplingParams are built once, as a user would; only the engine call is timed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Protocol

from pytest_llmbench.backends.base import Completion, GenerationRequest
from pytest_llmbench.backends.overhead import OverheadComparison, compare_paths


class HeldVllmEngine(Protocol):
    """What the comparison needs of the backend (a protocol, so this module never imports it)."""

    _llm: Any  # vllm.LLM, or None once the async engine took over
    _async: Any  # AsyncLLM, or None
    _loop: asyncio.AbstractEventLoop | None

    def _sampling(self, request: GenerationRequest, kind: str = "final") -> Any: ...

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]: ...


def compare_generate(
    backend: HeldVllmEngine,
    requests: Sequence[GenerationRequest],
    repetitions: int = 5,
    warmup: bool = True,
    harness_first: bool = False,
) -> OverheadComparison:
    """Time ``backend.generate(requests)`` against the engine's own call on the same requests."""
    prompts = [{"prompt_token_ids": list(r.prompt_token_ids)} for r in requests]
    llm, async_engine, loop = backend._llm, backend._async, backend._loop
    # The async engine streams cumulative outputs unless told otherwise; a direct user asks for the
    # final output only.
    kind = "final" if llm is not None else "FINAL_ONLY"
    params = [backend._sampling(r, kind) for r in requests]
    # One SamplingParams for all when the lengths agree, as a user would write it.
    shared = params[0] if all(p is params[0] for p in params) else params

    def direct() -> int:
        if llm is not None:
            outputs = llm.generate(prompts, shared, use_tqdm=False)
        else:
            assert loop is not None
            outputs = loop.run_until_complete(_direct_async(async_engine, prompts, params))
        return sum(len(o.outputs[0].token_ids) for o in outputs)

    def harness() -> int:
        return sum(c.output_tokens for c in backend.generate(requests))

    return compare_paths(
        "LLM" if llm is not None else "AsyncLLM",
        direct,
        harness,
        expected_tokens=sum(r.max_output_tokens for r in requests),
        repetitions=repetitions,
        warmup=warmup,
        harness_first=harness_first,
    )


async def _direct_async(engine: Any, prompts: list[dict[str, Any]], params: list[Any]) -> list[Any]:
    async def one(i: int) -> Any:
        last = None
        async for out in engine.generate(prompts[i], params[i], request_id=f"direct-{i}"):
            last = out
        return last

    return list(await asyncio.gather(*(one(i) for i in range(len(prompts)))))
