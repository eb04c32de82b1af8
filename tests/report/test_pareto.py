from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pytest_llmbench.report.pareto import FrontierPoint, pareto_frontier


def test_dominated_point_is_dropped_and_frontier_is_sorted_by_throughput() -> None:
    fast = FrontierPoint("fast", energy_j_per_token=2.0, tok_per_s=100.0)
    frugal = FrontierPoint("frugal", energy_j_per_token=0.5, tok_per_s=10.0)
    worse = FrontierPoint("worse", energy_j_per_token=2.5, tok_per_s=50.0)
    assert pareto_frontier([worse, fast, frugal]) == [frugal, fast]


def test_equal_points_are_both_kept() -> None:
    a = FrontierPoint("a", 1.0, 10.0)
    b = FrontierPoint("b", 1.0, 10.0)
    assert pareto_frontier([a, b]) == [a, b]


def test_empty_input_has_empty_frontier() -> None:
    assert pareto_frontier([]) == []


finite = st.floats(min_value=0.001, max_value=1e6, allow_nan=False)


@given(st.lists(st.tuples(finite, finite), min_size=1, max_size=20))
def test_no_frontier_point_is_dominated_and_every_other_point_is(
    pairs: list[tuple[float, float]],
) -> None:
    points = [FrontierPoint(str(i), e, t) for i, (e, t) in enumerate(pairs)]
    frontier = pareto_frontier(points)
    assert frontier

    def dominates(q: FrontierPoint, p: FrontierPoint) -> bool:
        return (
            q.energy_j_per_token <= p.energy_j_per_token
            and q.tok_per_s >= p.tok_per_s
            and (q.energy_j_per_token < p.energy_j_per_token or q.tok_per_s > p.tok_per_s)
        )

    for p in points:
        assert (p in frontier) == (not any(dominates(q, p) for q in points))
