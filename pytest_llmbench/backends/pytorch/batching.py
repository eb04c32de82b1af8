"""How the pytorch backend groups requests: exact static batches or token-aware dynamic ones."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from pytest_llmbench.backends.base import GenerationRequest

R = TypeVar("R", bound=GenerationRequest)


def static_batches(requests: Sequence[R], batch_size: int) -> list[list[R]]:
    """Consecutive batches of exactly ``batch_size`` (the last may be smaller)."""
    return [list(requests[i : i + batch_size]) for i in range(0, len(requests), batch_size)]


def dynamic_batches(requests: Sequence[R], max_tokens: int, max_batch: int) -> list[list[R]]:
    """Token-aware batches: similar lengths together, padded cost within ``max_tokens``.

    A left-padded batch costs ``len(batch) x (longest prompt + max output)`` tokens of KV cache;
    requests are sorted by length so that padding stays small. A request bigger than the budget
    runs alone rather than being dropped.
    """
    ordered = sorted(requests, key=lambda r: r.input_tokens + r.max_output_tokens)
    batches: list[list[R]] = []
    current: list[R] = []
    longest = 0
    for req in ordered:
        cost = req.input_tokens + req.max_output_tokens
        new_longest = max(longest, cost)
        if current and (new_longest * (len(current) + 1) > max_tokens or len(current) >= max_batch):
            batches.append(current)
            current, new_longest = [], cost
        current.append(req)
        longest = new_longest
    if current:
        batches.append(current)
    return batches
