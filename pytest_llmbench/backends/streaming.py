"""Per-token timestamps from streamed engine outputs, and the async driver the engines share.

Engines stream either cumulative outputs (every token so far) or deltas; both report how many
tokens a request has produced. ``TokenClock`` turns successive counts into one host timestamp per
new token (``time.perf_counter``), which is what ``Completion.token_times_s`` holds.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from pytest_llmbench.backends.base import Completion, GenerationRequest, Schedule

Send = Callable[[GenerationRequest], Awaitable[Completion]]


@dataclass
class TokenClock:
    """Timestamps the tokens of one streamed request as they become visible."""

    request: GenerationRequest
    start_s: float = field(default_factory=time.perf_counter)
    times_s: list[float] = field(default_factory=list)
    token_ids: list[int] = field(default_factory=list)

    def update(
        self, total_tokens: int, token_ids: Sequence[int] = (), cumulative: bool = True
    ) -> None:
        """Record a chunk: ``total_tokens`` produced so far; ``token_ids`` all of them
        (``cumulative``) or only the new ones. Tokens arriving together share one timestamp."""
        now = time.perf_counter()
        new = total_tokens - len(self.times_s)
        if new > 0:
            self.times_s.extend([now] * new)
        if token_ids:
            if cumulative:
                self.token_ids = list(token_ids)
            else:
                self.token_ids.extend(token_ids)

    def completion(self, error: str | None = None) -> Completion:
        end = time.perf_counter()
        times = tuple(self.times_s)
        return Completion(
            request_id=self.request.request_id,
            input_tokens=self.request.input_tokens,
            output_tokens=len(times),
            start_s=self.start_s,
            end_s=times[-1] if times and error is None else end,
            first_token_s=times[0] if times else None,
            token_times_s=times,
            output_token_ids=tuple(self.token_ids[: len(times)]),
            error=error,
        )


async def run_schedule(
    schedule: Schedule, requests: Sequence[GenerationRequest], send: Send
) -> list[Completion]:
    """Send ``requests`` on ``schedule`` (arrival offsets, concurrency cap); request order kept.

    Delegates to ``workload.traffic.run_schedule``, the one driver of the project. Until that
    module is merged here, a minimal equivalent with the same contract runs instead.
    """
    try:
        traffic = importlib.import_module("pytest_llmbench.workload.traffic")
    except ImportError:
        return await _run_schedule_minimal(schedule, requests, send)
    completions: list[Completion] = await traffic.run_schedule(schedule, requests, send)
    return completions


async def _run_schedule_minimal(
    schedule: Schedule, requests: Sequence[GenerationRequest], send: Send
) -> list[Completion]:
    import asyncio

    offsets = schedule.arrival_offsets_s
    if offsets is not None and len(offsets) < len(requests):
        raise ValueError(
            f"schedule has {len(offsets)} arrival offsets for {len(requests)} requests"
        )
    slots = asyncio.Semaphore(schedule.max_concurrency) if schedule.max_concurrency else None
    start = time.perf_counter()

    async def guarded(request: GenerationRequest) -> Completion:
        sent = time.perf_counter()
        try:
            return await send(request)
        except Exception as exc:  # one broken request is a failed Completion, not a crashed run
            return Completion(
                request.request_id,
                request.input_tokens,
                0,
                sent,
                time.perf_counter(),
                error=f"{type(exc).__name__}: {exc}",
            )

    async def one(i: int, request: GenerationRequest) -> Completion:
        if offsets is not None:
            delay = start + offsets[i] - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        if slots is None:
            return await guarded(request)
        async with slots:
            return await guarded(request)

    return list(await asyncio.gather(*(one(i, r) for i, r in enumerate(requests))))
