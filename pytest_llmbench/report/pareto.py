"""The energy-throughput frontier: which points no other point beats on both J/token and tok/s."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class FrontierPoint:
    """One test or config of one backend: less energy_j_per_token and more tok_per_s are better."""

    label: str
    energy_j_per_token: float
    tok_per_s: float


def pareto_frontier(points: Sequence[FrontierPoint]) -> list[FrontierPoint]:
    """Points not dominated by another, sorted by throughput; call it per backend, never pooled.

    A point is dominated when another uses no more energy per token, is no slower, and is
    strictly better on one of the two. Equal points are all kept.
    """
    frontier: list[FrontierPoint] = []
    for p in points:
        dominated = any(
            q.energy_j_per_token <= p.energy_j_per_token
            and q.tok_per_s >= p.tok_per_s
            and (q.energy_j_per_token < p.energy_j_per_token or q.tok_per_s > p.tok_per_s)
            for q in points
        )
        if not dominated:
            frontier.append(p)
    return sorted(frontier, key=lambda p: (p.tok_per_s, -p.energy_j_per_token))
