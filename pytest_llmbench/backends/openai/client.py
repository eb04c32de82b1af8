"""The HTTP client's hot loop: send prepared requests on a schedule, read their streams, time them.

Everything here runs once per request or per streamed event on the client's one thread, so the
work that does not depend on the response is done before the run (:class:`Prepared` holds the
body as bytes; headers, timeout and URL are built once per run), and what remains per event
is a bytes split, one JSON decode and a tuple (:mod:`.sse`). Used in the benchmark's process
and, unchanged, in each client process (:mod:`.processes`): it needs none of the backend object.

Timing, per request, all ``time.perf_counter`` on this host (the method of ``vllm bench
serve``): ``start_s`` just before the request is handed to the connection, ``token_times_s``
the time of each network read that brings output (events read together were not seen apart, so
they share one time rather than made-up zero gaps), ``end_s`` when the stream ended.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from pytest_llmbench.backends.base import Completion, Schedule
from pytest_llmbench.backends.openai.connections import (
    ConnectionPool,
    Target,
    Timeout,
    TransportError,
)
from pytest_llmbench.backends.openai.sse import SSEError, SSEParser, parse_data
from pytest_llmbench.loadgen import ClientLoad, LoopMonitor

T = TypeVar("T")
OnConnectionError = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class ClientPlan:
    """How to reach the server: what every request of a run shares (picklable)."""

    url: str
    headers: tuple[tuple[str, str], ...]
    chat: bool
    timeout_s: float


@dataclass(frozen=True)
class Prepared:
    """One request ready to send: its JSON body as bytes, and what its completion needs."""

    request_id: str
    body: bytes
    input_tokens: int
    max_output_tokens: int


class _Stream:
    """The SSE body of one completion stream, parsed as it arrives (a :class:`BodySink`)."""

    __slots__ = (
        "chat", "parser", "times", "texts", "prompt_tokens", "completion_tokens",
        "finish_reason", "finished", "done",
    )  # fmt: skip

    def __init__(self, chat: bool) -> None:
        self.chat = chat
        self.parser = SSEParser()
        self.times: list[float] = []
        self.texts: list[str] = []
        self.prompt_tokens: int | None = None
        self.completion_tokens: int | None = None
        self.finish_reason: str | None = None
        self.finished = self.done = False

    def on_body(self, chunk: bytes, read_s: float) -> None:
        output = False
        for event in self.parser.feed(chunk):
            delta = parse_data(event.data, self.chat)
            if delta.is_token:
                output = True
                self.texts.append(delta.text)
            elif delta.done:
                self.done = True
                continue
            if delta.finish_reason is not None:
                self.finished = True
                self.finish_reason = delta.finish_reason
            if delta.completion_tokens is not None:
                self.completion_tokens = delta.completion_tokens
            if delta.prompt_tokens is not None:
                self.prompt_tokens = delta.prompt_tokens
        # Events of one read were not seen apart: one time (a read may hand over several
        # pieces of a chunked body).
        if output and (not self.times or self.times[-1] != read_s):
            self.times.append(read_s)

    def close(self) -> None:
        for event in self.parser.close():
            self.done = self.done or parse_data(event.data, self.chat).done


async def send_one(
    pool: ConnectionPool,
    plan: ClientPlan,
    request: Prepared,
    on_connection_error: OnConnectionError | None = None,
) -> Completion:
    """Send ``request``, read its stream, and return its timed Completion (errors as data).

    ``output_tokens`` is the usage block's count, or ``max_tokens`` when the stream ends with
    ``finish_reason: "length"``, else 0 with ``output_tokens_source`` None: the caller counts
    the text's tokens then."""
    stream = _Stream(plan.chat)
    error: str | None = None
    start = time.perf_counter()
    try:
        exchange = await pool.exchange(request.body, stream, plan.timeout_s)
        if exchange.status != 200:
            detail = exchange.error_body.decode("utf-8", "replace")
            error = f"HTTP {exchange.status} {exchange.reason}: {detail}"
        else:
            stream.close()
    except Timeout:
        error = f"timeout: no complete response within {plan.timeout_s:g} s"
    except TransportError as exc:
        error = str(exc)
        if on_connection_error is not None:
            await on_connection_error()
    except SSEError as exc:
        error = str(exc)
    end = time.perf_counter()
    times = stream.times
    if error is None and not times:
        error = "the stream carried no output tokens"
    elif error is None and not (stream.done or stream.finished):
        error = "the stream ended early (no [DONE] and no finish_reason)"
    completion_tokens = stream.completion_tokens
    source: str | None = "usage"
    if completion_tokens is None and stream.finish_reason == "length":
        # No usage block (llama-cpp-python's server): "length" is the server saying it
        # stopped at max_tokens, which counts them exactly where re-tokenising text cannot.
        completion_tokens, source = request.max_output_tokens, "finish_reason=length"
    if completion_tokens is None or error is not None:
        completion_tokens, source = 0, None
    prompt_tokens = stream.prompt_tokens
    return Completion(
        request_id=request.request_id,
        input_tokens=prompt_tokens if prompt_tokens is not None else request.input_tokens,
        output_tokens=completion_tokens,
        start_s=start,
        end_s=end,
        first_token_s=times[0] if times else None,
        token_times_s=tuple(times),
        text="".join(stream.texts),
        error=error,
        output_tokens_source=source,
    )


async def drive(
    plan: ClientPlan,
    requests: Sequence[Prepared],
    schedule: Schedule,
    start_s: float | None = None,
    on_connection_error: OnConnectionError | None = None,
) -> tuple[list[Completion], ClientLoad]:
    """Run ``requests`` on ``schedule`` (from ``start_s``, default now) over at most
    ``schedule.max_concurrency`` connections; their completions in order, and what the run
    cost this client (:class:`~pytest_llmbench.loadgen.ClientLoad`)."""
    from pytest_llmbench.workload.traffic import run_schedule

    limit = schedule.max_concurrency or max(1, len(requests))
    monitor = LoopMonitor()
    async with new_pool(plan, limit) as pool:

        async def send(request: Prepared) -> Completion:
            return await send_one(pool, plan, request, on_connection_error)

        monitor.start()
        try:
            completions = await run_schedule(schedule, requests, send, start_s)
        finally:
            load = await monitor.stop()
    return completions, load


def new_pool(plan: ClientPlan, limit: int) -> ConnectionPool:
    """At most ``limit`` connections to the plan's URL, its headers on every request."""
    return ConnectionPool(Target(plan.url, plan.headers), limit)


def run_loop(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion on a fresh event loop (uvloop where installed: its loop costs
    the client less per event), from synchronous code, even inside a running event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return _run_fresh(coro)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(_run_fresh, coro).result()


def _run_fresh(coro: Coroutine[Any, Any, T]) -> T:
    loop: asyncio.AbstractEventLoop
    try:
        import uvloop

        loop = uvloop.new_event_loop()
    except ImportError:
        loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        try:
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()
