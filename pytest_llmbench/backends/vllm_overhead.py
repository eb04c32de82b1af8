"""How much throughput the harness costs on vLLM: VllmBackend.generate vs vLLM used directly.

Runs inside the engine's process, on the engine the backend already holds, so both paths see the
same weights, KV cache and warm state. The direct path is what a user would write by hand: prompts
and SamplingParams built once, then only the engine call is timed. Runs alternate between the two
paths so that drift (thermals, caches) hits both alike; medians are reported.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pytest_llmbench.backends.base import GenerationRequest

if TYPE_CHECKING:
    from pytest_llmbench.backends.vllm import VllmBackend


@dataclass(frozen=True)
class OverheadComparison:
    """Output tokens per second of both paths (medians over ``repetitions``)."""

    engine: str  # "LLM" (offline engine) or "AsyncLLM"
    repetitions: int
    output_tokens: int  # per run, both paths
    direct_tok_s: float
    harness_tok_s: float

    @property
    def ratio(self) -> float:
        """harness / direct: 1.0 means the harness costs nothing measurable."""
        return self.harness_tok_s / self.direct_tok_s


def compare_generate(
    backend: VllmBackend,
    requests: Sequence[GenerationRequest],
    repetitions: int = 5,
    warmup: bool = True,
    harness_first: bool = False,
) -> OverheadComparison:
    """Time ``backend.generate(requests)`` against the engine's own call on the same requests.

    The order within a repetition alternates (``harness_first`` says how it starts). With a fixed
    order (direct first) an H100 run put this in-process harness at 0.85 of direct while the same
    ``generate`` called from the pytest process, after both, reached 0.99: order effects that a
    fixed order turns into bias.
    """
    if repetitions < 1:
        raise ValueError(f"repetitions must be >= 1, not {repetitions}")
    prompts = [{"prompt_token_ids": list(r.prompt_token_ids)} for r in requests]
    llm, async_engine, loop = backend._llm, backend._async, backend._loop
    # The async engine streams cumulative outputs unless told otherwise; a direct user asks for the
    # final output only.
    kind = "final" if llm is not None else "FINAL_ONLY"
    params = [backend._sampling(r, kind) for r in requests]
    expected = sum(r.max_output_tokens for r in requests)

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

    if warmup:
        direct(), harness()
    direct_rates: list[float] = []
    harness_rates: list[float] = []
    pair = [(direct, direct_rates), (harness, harness_rates)]
    for i in range(repetitions):
        order = pair[::-1] if (i % 2 == 0) == harness_first else pair
        for run, rates in order:
            t0 = time.perf_counter()
            tokens = run()
            elapsed = time.perf_counter() - t0
            if tokens != expected:
                raise AssertionError(
                    f"{run.__name__} produced {tokens} tokens, expected {expected}"
                )
            rates.append(tokens / elapsed)
    return OverheadComparison(
        engine="LLM" if llm is not None else "AsyncLLM",
        repetitions=repetitions,
        output_tokens=expected,
        direct_tok_s=statistics.median(direct_rates),
        harness_tok_s=statistics.median(harness_rates),
    )


async def _direct_async(engine: Any, prompts: list[dict[str, Any]], params: list[Any]) -> list[Any]:
    async def one(i: int) -> Any:
        last = None
        async for out in engine.generate(prompts[i], params[i], request_id=f"direct-{i}"):
            last = out
        return last

    return list(await asyncio.gather(*(one(i) for i in range(len(prompts)))))
