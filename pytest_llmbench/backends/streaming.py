"""Per-token timestamps from streamed engine outputs, and the async driver the engines share.

Engines stream either cumulative outputs (every token so far) or deltas; both report how many
tokens a request has produced. ``TokenClock`` turns successive counts into one host timestamp per
new token (``time.perf_counter``), which is what ``Completion.token_times_s`` holds. Arrivals and
the concurrency cap are ``workload.traffic.run_schedule``'s job, re-exported here.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from pytest_llmbench.backends.base import Completion, GenerationRequest
from pytest_llmbench.workload.traffic import run_schedule

__all__ = ["TokenClock", "run_schedule"]


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
