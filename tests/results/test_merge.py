"""Merging: associative, loses nothing, refuses mixed backends with the exact message."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_llmbench.errors import MixedBackendsError
from pytest_llmbench.merge import by_backend, check_single_backend, merge_reports, pooled_values
from pytest_llmbench.results import Report
from tests.results.factories import H100, make_report, make_result

MIXED = (
    "Mixed backends detected: pytorch, vllm. Aggregating results from different backends "
    "produces statistically invalid comparisons."
)
A100 = {
    **H100,
    "machine_id": "a100",
    "gpus": {"available": True, "devices": [{"index": 0, "name": "A100"}]},
}


@st.composite
def reports(draw: st.DrawFn, backends: tuple[str, ...] = ("pytorch",)) -> Report:
    n = draw(st.integers(0, 3))
    results = [
        make_result(
            name=f"t{draw(st.integers(0, 5))}",
            backend=draw(st.sampled_from(backends)),
            energy_per_token=draw(st.lists(st.floats(0.1, 2.0), min_size=1, max_size=3)),
        )
        for _ in range(n)
    ]
    hour = draw(st.integers(0, 9))
    finished = draw(st.sampled_from([f"2025-01-01T1{hour}:00:00Z", None]))
    return make_report(
        results,
        machine=draw(st.sampled_from([H100, A100, {}])),
        started_at=f"2025-01-01T0{hour}:00:00Z",
        finished_at=finished,
        complete=draw(st.booleans()),
    )


@given(reports(), reports(), reports())
@settings(max_examples=40, deadline=None)
def test_merge_is_associative(a: Report, b: Report, c: Report) -> None:
    left = merge_reports([merge_reports([a, b]), c])
    right = merge_reports([a, merge_reports([b, c])])
    assert left == right == merge_reports([a, b, c])


@given(st.lists(reports(("pytorch", "vllm", "sglang")), min_size=1, max_size=4))
@settings(max_examples=40, deadline=None)
def test_merge_loses_no_result(parts: list[Report]) -> None:
    merged = merge_reports(parts, allow_mixed=True)
    expected = [r for p in parts for r in p.results]
    assert list(merged.results) == expected
    assert merged.complete == all(p.complete for p in parts)
    assert merged.mixed_backends == (len({r.backend for r in expected}) > 1)


def test_merge_refuses_mixed_backends_with_the_exact_message() -> None:
    a = make_report([make_result(backend="vllm")])
    b = make_report([make_result(backend="pytorch")])
    with pytest.raises(MixedBackendsError) as info:
        merge_reports([a, b])
    assert str(info.value) == MIXED


def test_allowed_mixed_merge_is_labelled() -> None:
    a = make_report([make_result(backend="vllm")])
    b = make_report([make_result(backend="pytorch")])
    merged = merge_reports([a, b], allow_mixed=True)
    assert merged.mixed_backends and merged.to_dict()["mixed_backends"] is True
    assert "mixed_backends" not in merge_reports([a, a]).to_dict()


def test_merge_keeps_distinct_machines_and_the_span() -> None:
    a = make_report([], machine=H100, started_at="2025-01-02", finished_at="2025-01-03")
    b = make_report([], machine=A100, started_at="2025-01-01", finished_at="2025-01-02")
    merged = merge_reports([a, b, a])
    assert merged.machine == {"mixed": True, "machines": [H100, A100]}
    assert (merged.started_at, merged.finished_at) == ("2025-01-01", "2025-01-03")
    assert merge_reports([a, a]).machine == H100


def test_pooled_aggregates_refuse_mixed_backends() -> None:
    results = [make_result(backend="vllm"), make_result(backend="pytorch")]
    with pytest.raises(MixedBackendsError, match="^Mixed backends detected: pytorch, vllm\\."):
        pooled_values(results, "energy_per_output_token")
    same = [make_result(energy_per_token=(1.0,)), make_result(energy_per_token=(2.0, 3.0))]
    assert pooled_values(same, "energy_per_output_token") == pytest.approx([1.0, 2.0, 3.0])
    assert list(by_backend(results)) == ["vllm", "pytorch"]  # side by side is fine
    assert check_single_backend(["vllm", "vllm"]) is False
