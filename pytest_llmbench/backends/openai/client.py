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
from typing import TYPE_CHECKING, Any, TypeVar

from pytest_llmbench.backends.base import Completion, Schedule
from pytest_llmbench.backends.openai.sse import SSEError, SSEParser, parse_data
from pytest_llmbench.loadgen import ClientLoad, LoopMonitor

if TYPE_CHECKING:
    import aiohttp

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


async def send_one(
    session: aiohttp.ClientSession,
    url: Any,
    plan: ClientPlan,
    request: Prepared,
    timeout: aiohttp.ClientTimeout,
    on_connection_error: OnConnectionError | None = None,
) -> Completion:
    """Send ``request``, read its stream, and return its timed Completion (errors as data).

    ``output_tokens`` is the usage block's count, or ``max_tokens`` when the stream ends with
    ``finish_reason: "length"``, else 0 with ``output_tokens_source`` None: the caller counts
    the text's tokens then."""
    import aiohttp

    chat = plan.chat
    times: list[float] = []
    texts: list[str] = []
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str | None = None
    finished = done = False
    error: str | None = None
    start = time.perf_counter()
    try:
        async with session.post(url, data=request.body, timeout=timeout) as resp:
            if resp.status != 200:
                detail = (await resp.text())[:300]
                error = f"HTTP {resp.status} {resp.reason}: {detail}"
            else:
                parser = SSEParser()
                async for chunk in resp.content.iter_any():
                    now = time.perf_counter()
                    output = False
                    for event in parser.feed(chunk):
                        delta = parse_data(event.data, chat)
                        if delta.is_token:
                            output = True
                            texts.append(delta.text)
                        elif delta.done:
                            done = True
                            continue
                        if delta.finish_reason is not None:
                            finished = True
                            finish_reason = delta.finish_reason
                        if delta.completion_tokens is not None:
                            completion_tokens = delta.completion_tokens
                        if delta.prompt_tokens is not None:
                            prompt_tokens = delta.prompt_tokens
                    if output:  # events read together were not seen apart: one time
                        times.append(now)
                for event in parser.close():
                    done = done or parse_data(event.data, chat).done
    except asyncio.TimeoutError:
        error = f"timeout: no complete response within {plan.timeout_s:g} s"
    except aiohttp.ClientError as exc:
        error = f"{type(exc).__name__}: {exc}"
        if on_connection_error is not None:
            await on_connection_error()
    except SSEError as exc:
        error = str(exc)
    end = time.perf_counter()
    if error is None and not times:
        error = "the stream carried no output tokens"
    elif error is None and not (done or finished):
        error = "the stream ended early (no [DONE] and no finish_reason)"
    source: str | None = "usage"
    if completion_tokens is None and finish_reason == "length":
        # No usage block (llama-cpp-python's server): "length" is the server saying it
        # stopped at max_tokens, which counts them exactly where re-tokenising text cannot.
        completion_tokens, source = request.max_output_tokens, "finish_reason=length"
    if completion_tokens is None or error is not None:
        completion_tokens, source = 0, None
    return Completion(
        request_id=request.request_id,
        input_tokens=prompt_tokens if prompt_tokens is not None else request.input_tokens,
        output_tokens=completion_tokens,
        start_s=start,
        end_s=end,
        first_token_s=times[0] if times else None,
        token_times_s=tuple(times),
        text="".join(texts),
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
    import aiohttp
    from yarl import URL

    from pytest_llmbench.workload.traffic import run_schedule

    limit = schedule.max_concurrency or max(1, len(requests))
    timeout = aiohttp.ClientTimeout(total=plan.timeout_s)
    url = URL(plan.url)
    monitor = LoopMonitor()
    async with new_session(plan, limit) as session:

        async def send(request: Prepared) -> Completion:
            return await send_one(session, url, plan, request, timeout, on_connection_error)

        monitor.start()
        try:
            completions = await run_schedule(schedule, requests, send, start_s)
        finally:
            load = await monitor.stop()
    return completions, load


def new_session(plan: ClientPlan, limit: int) -> aiohttp.ClientSession:
    """A session of at most ``limit`` connections, with the plan's headers on every request."""
    import aiohttp

    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=limit),
        headers=dict(plan.headers),
        auto_decompress=False,
        # aiohttp's default 64 KiB read buffer pauses a connection whose stream outruns it,
        # which holds back the server's sends at long contexts (vLLM issue 39963).
        read_bufsize=4 * 2**20,
    )


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
