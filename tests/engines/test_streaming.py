"""TokenClock: per-token timestamps from streamed counts; the schedule driver the engines use."""

from __future__ import annotations

import asyncio
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_llmbench.backends import streaming
from pytest_llmbench.backends.base import Completion, GenerationRequest, Schedule

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


async def _send(request: GenerationRequest) -> Completion:
    start = time.perf_counter()
    if request.request_id == "bad":
        raise RuntimeError("engine said no")
    await asyncio.sleep(0.01)
    return Completion(request.request_id, request.input_tokens, 1, start, time.perf_counter())


@pytest.mark.parametrize("driver", [streaming.run_schedule, streaming._run_schedule_minimal])
def test_driver_keeps_order_cap_and_offsets_and_turns_errors_into_data(driver) -> None:
    reqs = [GenerationRequest(i, (1,), 1, 1) for i in ("a", "bad", "c")]
    capped = asyncio.run(driver(Schedule(max_concurrency=1), reqs, _send))
    assert [c.request_id for c in capped] == ["a", "bad", "c"]
    assert capped[1].error == "RuntimeError: engine said no"
    assert capped[2].start_s >= capped[0].end_s
    t0 = time.perf_counter()
    timed = asyncio.run(driver(Schedule(arrival_offsets_s=(0.0, 0.0, 0.05)), reqs, _send))
    assert timed[2].start_s - t0 >= 0.05
