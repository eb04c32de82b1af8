"""TokenClock: per-token timestamps from streamed counts (the driver is tested in tests/openai)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pytest_llmbench.backends import streaming
from pytest_llmbench.backends.base import GenerationRequest

REQ = GenerationRequest("r", (1, 2), 8, 8)


@given(st.lists(st.integers(0, 8), max_size=10))
def test_one_timestamp_per_token_whatever_the_chunking(counts: list[int]) -> None:
    clock = streaming.TokenClock(REQ)
    total = 0
    for c in counts:  # cumulative counts never go backwards
        total = max(total, c)
        clock.update(total, list(range(total)))
    done = clock.completion()
    assert done.output_tokens == len(done.token_times_s) == total
    assert done.output_token_ids == tuple(range(total))
    assert list(done.token_times_s) == sorted(done.token_times_s)
    assert (done.first_token_s is None) == (total == 0)


def test_delta_ids_are_appended() -> None:
    clock = streaming.TokenClock(REQ)
    clock.update(2, [5, 6], cumulative=False)
    clock.update(3, [7], cumulative=False)
    assert clock.completion().output_token_ids == (5, 6, 7)


def test_an_error_ends_the_completion_now() -> None:
    clock = streaming.TokenClock(REQ)
    clock.update(1, [1])
    done = clock.completion(error="boom")
    assert done.error == "boom" and done.end_s >= done.token_times_s[0]
