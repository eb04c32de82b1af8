"""When requests are sent: arrival schedules and an async driver that keeps to them.

Arrivals follow the method of ``vllm bench serve``: inter-arrival intervals are drawn from a gamma
distribution with shape ``burstiness`` and scale ``1 / (rate * burstiness)``, so the mean interval
is ``1 / rate`` whatever the shape; shape 1 is the exponential distribution (a Poisson process),
shape < 1 is burstier (coefficient of variation ``1 / sqrt(shape)``), shape > 1 more regular.
Two choices differ from vLLM: the first request is sent at offset 0 (no idle lead-in inside the
energy window), and the sampled intervals are not rescaled to make the total exactly
``n / rate`` (rescaling would distort the distribution that the statistical tests check). A rate
sweep reuses the seed, so the schedules of different rates are the same pattern, time-scaled:
rates are compared on common random numbers.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from pytest_llmbench.backends.base import Completion, GenerationRequest, Schedule
from pytest_llmbench.config.schema import TrafficConfig
from pytest_llmbench.errors import ConfigError


class Sendable(Protocol):
    """What the driver needs of a request (a GenerationRequest, or a client's prepared one)."""

    @property
    def request_id(self) -> str: ...

    @property
    def input_tokens(self) -> int: ...


R = TypeVar("R", bound=Sendable)
Send = Callable[[GenerationRequest], Awaitable[Completion]]


def offline_schedule() -> Schedule:
    """Everything at once (the backend or its client bounds what is in flight)."""
    return Schedule()


def concurrency_schedule(concurrency: int) -> Schedule:
    """A closed loop: ``concurrency`` requests in flight, the next sent when one finishes."""
    if concurrency < 1:
        raise ConfigError("traffic_simulation.concurrency", f"{concurrency} is not >= 1")
    return Schedule(max_concurrency=concurrency)


def gamma_offsets(
    num_requests: int, rate: float, burstiness: float = 1.0, seed: int = 0
) -> tuple[float, ...]:
    """Arrival offsets (seconds from the start, first 0) with gamma intervals of mean 1/rate."""
    if num_requests < 0:
        raise ValueError(f"num_requests must be >= 0, not {num_requests}")
    if not rate > 0:
        raise ConfigError("traffic_simulation.request_rate", f"{rate} is not > 0")
    if not burstiness > 0:
        raise ConfigError("traffic_simulation.burstiness", f"{burstiness} is not > 0")
    rng = random.Random(seed)
    scale = 1.0 / (rate * burstiness)
    offsets: list[float] = []
    t = 0.0
    for i in range(num_requests):
        if i:
            t += rng.gammavariate(burstiness, scale)
        offsets.append(t)
    return tuple(offsets)


def poisson_schedule(num_requests: int, rate: float, seed: int = 0) -> Schedule:
    """Open-loop Poisson arrivals at ``rate`` requests per second (exponential intervals)."""
    return Schedule(arrival_offsets_s=gamma_offsets(num_requests, rate, 1.0, seed))


def gamma_schedule(num_requests: int, rate: float, burstiness: float, seed: int = 0) -> Schedule:
    """Open-loop gamma arrivals: mean interval 1/rate, shape ``burstiness`` (< 1 is burstier)."""
    return Schedule(arrival_offsets_s=gamma_offsets(num_requests, rate, burstiness, seed))


@dataclass(frozen=True)
class RatedSchedule:
    """One schedule of a traffic config; ``rate`` is None for offline and fixed concurrency."""

    rate: float | None
    schedule: Schedule

    @property
    def label(self) -> str:
        """Short id for test ids and reports: ``offline``, ``c4``, ``poisson-2.5rps``."""
        s = self.schedule
        if s.offline:
            return "offline"
        if s.arrival_offsets_s is None:
            return f"c{s.max_concurrency}"
        return f"{self.rate:g}rps"


def schedules_for(traffic: TrafficConfig, num_requests: int) -> list[RatedSchedule]:
    """The schedules a traffic config asks for: one per rate of a sweep, else exactly one."""
    if traffic.mode == "offline":
        return [RatedSchedule(None, offline_schedule())]
    if traffic.mode == "concurrency":
        return [RatedSchedule(None, concurrency_schedule(traffic.concurrency))]
    shape = 1.0 if traffic.mode == "poisson" else traffic.burstiness
    rates = list(traffic.rate_sweep) or [traffic.request_rate]
    return [
        RatedSchedule(rate, Schedule(gamma_offsets(num_requests, rate, shape, traffic.seed)))
        for rate in rates
    ]


def _failed(request: Sendable, start_s: float, error: str) -> Completion:
    return Completion(
        request_id=request.request_id,
        input_tokens=request.input_tokens,
        output_tokens=0,
        start_s=start_s,
        end_s=time.perf_counter(),
        error=error,
    )


async def run_schedule(
    schedule: Schedule,
    requests: Sequence[R],
    send: Callable[[R], Awaitable[Completion]],
    start_s: float | None = None,
) -> list[Completion]:
    """Send every request on ``schedule`` and return their completions in request order.

    A schedule with arrival offsets must have exactly one per request (ValueError otherwise).

    Each request starts at its offset from one common start (perf_counter; ``start_s``, e.g.
    shared by several client processes, or now) and, when the schedule caps concurrency, only
    once a slot is free; ``send`` measures its own timestamps. Each completion's
    ``scheduled_s`` is when its request became due: its arrival time, or when the slot it took
    was freed, whichever is later (the sender's lag is ``start_s - scheduled_s``). A ``send``
    that raises yields a failed Completion (error set): one request's failure never aborts the
    run, and nothing is retried. Cancellation propagates.

    One dispatcher hands out requests in order of their due times, and a request's task is
    created when it is due and has a slot, not before: a schedule of 20,000 requests would
    otherwise start with 20,000 tasks created and stepped to their first sleep, which held the
    first sends back by half a second on one core (the client then called itself client-bound,
    rightly, for its own start-up).
    """
    offsets = schedule.arrival_offsets_s
    if offsets is not None and len(offsets) != len(requests):
        # One offset per request: extra offsets would be dropped silently, so both are refused.
        raise ValueError(
            f"schedule has {len(offsets)} arrival offsets for {len(requests)} requests "
            "(one per request)"
        )
    start = time.perf_counter() if start_s is None else start_s
    cap = schedule.max_concurrency
    # Free slots, each holding the moment it was freed: a request that waited for one was due
    # then, not at its arrival.
    slots: asyncio.Queue[float] | None = None
    if cap:
        slots = asyncio.Queue()
        for _ in range(min(cap, len(requests))):
            slots.put_nowait(start)

    async def one(request: R, due: float) -> Completion:
        sent = time.perf_counter()
        try:
            completion = await send(request)
        except Exception as exc:  # a broken request is data, not a crash of the whole run
            completion = _failed(request, sent, f"{type(exc).__name__}: {exc}")
        finally:
            if slots is not None:
                slots.put_nowait(time.perf_counter())
        return dataclasses.replace(completion, scheduled_s=due)

    order: Sequence[int] = range(len(requests))
    if offsets is not None:
        order = sorted(order, key=offsets.__getitem__)
    tasks: list[asyncio.Task[Completion] | None] = [None] * len(requests)
    try:
        for i in order:
            due = start if offsets is None else start + offsets[i]
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            if slots is not None:
                due = max(due, await slots.get())
            tasks[i] = asyncio.ensure_future(one(requests[i], due))
        return list(await asyncio.gather(*(t for t in tasks if t is not None)))
    except BaseException:
        for task in tasks:
            if task is not None:
                task.cancel()
        raise
