"""HTTP/1.1 keep-alive connections for the client's hot loop, on asyncio protocols.

Why not aiohttp: with the SSE parsing made cheap, aiohttp's own work was most of the client's
CPU per streamed request (building the request, a stream reader that wakes the request's
coroutine once per network read, response objects). Here a request is one ``write`` of bytes
prepared before the run, and the response is parsed where it arrives: ``data_received`` feeds
httptools (the Python binding of llhttp, Node.js's HTTP parser; the parser uvicorn uses), which
hands each piece of the body, chunked or not, to the caller's :class:`BodySink` in the same
call. The request's coroutine wakes once, when its response is complete. What is kept from a
full client: keep-alive with at most ``limit`` connections, chunked and length-delimited bodies
and bodies ended by the connection's close, ``https`` (certificates verified against the
system's store, as ``ssl.create_default_context`` sets it up), a total timeout per request,
and a connection the server closes being dropped from the pool. Not supported, because no
benchmarked server needs them: redirects, proxies, compressed responses (none is asked for),
HTTP/2.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
import time
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlsplit

if TYPE_CHECKING:
    import httptools

USER_AGENT = "pytest-llmbench"
_ERROR_BODY_BYTES = 300  # what an error status keeps of its body for the message


class BodySink(Protocol):
    """Receives one response's body as it arrives."""

    def on_body(self, chunk: bytes, read_s: float) -> None:
        """A piece of the body; ``read_s``: perf_counter of the network read that brought it
        (pieces of one read share it). May raise: the exchange then fails with that error."""


class TransportError(Exception):
    """The connection failed: it could not be opened, it broke, or the response is not HTTP."""


class Timeout(Exception):
    """No complete response within the request's total timeout."""


class Target:
    """Where requests go: the connection's address and each request's head up to its length."""

    def __init__(self, url: str, headers: tuple[tuple[str, str], ...]) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.ssl: ssl.SSLContext | None = (
            ssl.create_default_context() if parts.scheme == "https" else None
        )
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        lines = [f"POST {path} HTTP/1.1", f"Host: {parts.netloc}"]
        names = {name.lower() for name, _ in headers}
        if "user-agent" not in names:
            lines.append(f"User-Agent: {USER_AGENT}")
        lines += [f"{name}: {value}" for name, value in headers]
        lines.append("Content-Length: ")
        self._head = "\r\n".join(lines).encode("latin-1")

    def request(self, body: bytes) -> bytes:
        """The whole request: head, length, body."""
        return b"".join((self._head, str(len(body)).encode(), b"\r\n\r\n", body))


class Exchange:
    """One request on one connection, until its response is complete or fails."""

    __slots__ = ("sink", "status", "reason", "error_body", "done")

    def __init__(self, sink: BodySink, done: asyncio.Future[None]) -> None:
        self.sink = sink
        self.status = 0  # set once the head is read: 0 means no head yet
        self.error_body = b""  # the first bytes of a non-200 body, for the message
        self.done = done
        self.reason = ""

    def fail(self, exc: BaseException) -> None:
        if not self.done.done():
            self.done.set_exception(exc)


class Connection(asyncio.Protocol):
    """One keep-alive connection: requests one at a time, the response parsed on arrival."""

    def __init__(self, pool: ConnectionPool) -> None:
        import httptools

        self._pool = pool
        self._parser: httptools.HttpResponseParser = httptools.HttpResponseParser(self)
        self._exchange: Exchange | None = None
        self._transport: asyncio.Transport | None = None
        self._read_s = 0.0
        self._length_known = False  # Content-Length or chunked: else the body ends at close
        self._keep_alive = True
        self._sink_error: Exception | None = None
        self.closed = False

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._read_s = time.perf_counter()
        try:
            self._parser.feed_data(data)
        except Exception as exc:
            # Caught broadly, not by httptools' classes: a module cache reset (pytester's
            # in-process runs do one) leaves the parser raising classes of an older import.
            # A sink's error (e.g. malformed SSE) fails the exchange as raised; on_body keeps
            # it, since the parser's own error does not reliably chain to it.
            error, self._sink_error = self._sink_error, None
            self._abort(error or TransportError(f"the response is not valid HTTP/1.1 ({exc})"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._pool.forget(self)
        exchange, self._exchange = self._exchange, None
        if exchange is None or exchange.done.done():
            return
        if exchange.status and not self._length_known and exc is None:
            exchange.done.set_result(None)  # a body delimited by the close (RFC 9112, 6.3)
            return
        why = f": {exc}" if exc is not None else ""
        exchange.fail(TransportError(f"the server closed the connection mid-response{why}"))

    # httptools callbacks

    def on_status(self, reason: bytes) -> None:
        if self._exchange is not None:
            self._exchange.reason = reason.decode("latin-1", "replace")

    def on_header(self, name: bytes, value: bytes) -> None:
        lowered = name.lower()
        if lowered == b"content-length" or (
            lowered == b"transfer-encoding" and b"chunked" in value.lower()
        ):
            self._length_known = True

    def on_headers_complete(self) -> None:
        exchange = self._exchange
        if exchange is not None:
            exchange.status = self._parser.get_status_code()
        self._keep_alive = self._parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        exchange = self._exchange
        if exchange is None:
            return
        if exchange.status == 200:
            try:
                exchange.sink.on_body(body, self._read_s)
            except Exception as exc:
                self._sink_error = exc
                raise  # stops the parser: the rest of this stream is not read
        elif len(exchange.error_body) < _ERROR_BODY_BYTES:
            exchange.error_body += body[: _ERROR_BODY_BYTES - len(exchange.error_body)]

    def on_message_complete(self) -> None:
        exchange, self._exchange = self._exchange, None
        self._length_known = False
        if exchange is not None and not exchange.done.done():
            exchange.done.set_result(None)
        if self._keep_alive and not self.closed:
            self._pool.release(self)
        else:
            self.close()

    # the pool's side

    def start(self, request: bytes, exchange: Exchange) -> None:
        assert self._transport is not None and self._exchange is None
        self._exchange = exchange
        self._transport.write(request)

    def close(self) -> None:
        if self._transport is not None and not self.closed:
            self.closed = True
            self._transport.close()

    def abandon(self, exchange: Exchange) -> None:
        """The caller stopped waiting for ``exchange`` (timeout, cancel): if it is still in
        progress, drop the connection, since a half-read response cannot be reused."""
        if not self.closed and self._exchange is exchange:
            self._abort(Timeout())

    def _abort(self, exc: BaseException) -> None:
        """Fail the exchange in progress and drop the connection: its stream is unusable."""
        exchange, self._exchange = self._exchange, None
        if exchange is not None:
            exchange.fail(exc)
        self.closed = True
        self._pool.forget(self)
        if self._transport is not None:
            self._transport.abort()


class ConnectionPool:
    """At most ``limit`` keep-alive connections to one target; use as ``async with``."""

    def __init__(self, target: Target, limit: int) -> None:
        self.target = target
        self.limit = max(1, limit)
        self._idle: collections.deque[Connection] = collections.deque()
        self._open: set[Connection] = set()
        self._opening = 0
        self._waiters: collections.deque[asyncio.Future[Connection | None]] = collections.deque()

    async def __aenter__(self) -> ConnectionPool:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()

    async def exchange(self, body: bytes, sink: BodySink, timeout_s: float) -> Exchange:
        """Send one request and wait for its whole response (the body went to ``sink``); the
        exchange holds the status. :class:`Timeout` after ``timeout_s`` in all,
        :class:`TransportError` when the connection fails, or what the sink raised."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        connection = self._take_idle()
        if connection is None:
            try:
                connection = await asyncio.wait_for(self._acquire(), timeout_s)
            except asyncio.TimeoutError:
                raise Timeout() from None
        done: asyncio.Future[None] = loop.create_future()
        exchange = Exchange(sink, done)
        timer = loop.call_at(deadline, exchange.fail, Timeout())
        try:
            connection.start(self.target.request(body), exchange)
            await done
        except BaseException:
            connection.abandon(exchange)
            raise
        finally:
            timer.cancel()
        return exchange

    def _take_idle(self) -> Connection | None:
        while self._idle:
            connection = self._idle.pop()  # the most recent: least likely closed by the server
            if not connection.closed:
                return connection
        return None

    async def _acquire(self) -> Connection:
        """A new connection while under the limit, else the next one released."""
        if len(self._open) + self._opening < self.limit:
            return await self._connect()
        waiter: asyncio.Future[Connection | None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        connection = await waiter
        return connection if connection is not None else await self._connect()

    async def _connect(self) -> Connection:
        loop = asyncio.get_running_loop()
        target = self.target
        self._opening += 1
        try:
            _, connection = await loop.create_connection(
                lambda: Connection(self),
                target.host,
                target.port,
                ssl=target.ssl,
                server_hostname=target.host if target.ssl is not None else None,
            )
        except OSError as exc:
            self._hand_over(None)  # a slot stays free: let a waiter try in turn
            raise TransportError(
                f"cannot connect to {target.host}:{target.port}: {exc.strerror or exc}"
            ) from None
        finally:
            self._opening -= 1
        self._open.add(connection)
        return connection

    def release(self, connection: Connection) -> None:
        """A connection whose response is complete: to a waiter, else idle."""
        if not self._hand_over(connection):
            self._idle.append(connection)

    def forget(self, connection: Connection) -> None:
        """A connection that closed: its slot is free for a new one."""
        if connection in self._open:
            self._open.discard(connection)
            self._hand_over(None)

    def _hand_over(self, connection: Connection | None) -> bool:
        """Wake the first waiter with ``connection`` (None: "open your own"); False if none."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(connection)
                return True
        return False

    def close(self) -> None:
        for connection in list(self._open):
            connection.close()
        self._open.clear()
        self._idle.clear()
