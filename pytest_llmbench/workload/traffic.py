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
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from pytest_llmbench.backends.base import Completion, GenerationRequest, Schedule
from pytest_llmbench.config.schema import TrafficConfig
from pytest_llmbench.errors import ConfigError

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


def _failed(request: GenerationRequest, start_s: float, error: str) -> Completion:
    return Completion(
        request_id=request.request_id,
        input_tokens=request.input_tokens,
        output_tokens=0,
        start_s=start_s,
        end_s=time.perf_counter(),
        error=error,
    )


async def run_schedule(
    schedule: Schedule, requests: Sequence[GenerationRequest], send: Send
) -> list[Completion]:
    """Send every request on ``schedule`` and return their completions in request order.

    A schedule with arrival offsets must have exactly one per request (ValueError otherwise).

    Each request starts at its offset from one common start (perf_counter) and, when the schedule
    caps concurrency, only once a slot is free; ``send`` measures its own timestamps. A ``send``
    that raises yields a failed Completion (error set): one request's failure never aborts the
    run, and nothing is retried. Cancellation propagates.
    """
    offsets = schedule.arrival_offsets_s
    if offsets is not None and len(offsets) != len(requests):
        # One offset per request: extra offsets would be dropped silently, so both are refused.
        raise ValueError(
            f"schedule has {len(offsets)} arrival offsets for {len(requests)} requests "
            "(one per request)"
        )
    slots = asyncio.Semaphore(schedule.max_concurrency) if schedule.max_concurrency else None
    start = time.perf_counter()

    async def one(i: int, request: GenerationRequest) -> Completion:
        if offsets is not None:
            delay = start + offsets[i] - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        if slots is None:
            return await _guarded(request)
        async with slots:
            return await _guarded(request)

    async def _guarded(request: GenerationRequest) -> Completion:
        sent = time.perf_counter()
        try:
            return await send(request)
        except Exception as exc:  # a broken request is data, not a crash of the whole run
            return _failed(request, sent, f"{type(exc).__name__}: {exc}")

    return list(await asyncio.gather(*(one(i, r) for i, r in enumerate(requests))))
