"""The client's HTTP/1.1 connections: framing, keep-alive, limits, failures, TLS.

Framing is checked by feeding a Connection the bytes of a response cut at arbitrary points (the
parser is httptools', the bookkeeping ours); the pool against real sockets on 127.0.0.1, served
by a small asyncio server whose every reply is scripted, so each case controls the framing and
the connection's fate exactly.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import ssl
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

pytest.importorskip("httptools")

from pytest_llmbench.backends.openai import connections  # noqa: E402
from pytest_llmbench.backends.openai.connections import (  # noqa: E402
    Connection,
    ConnectionPool,
    Exchange,
    Target,
    Timeout,
    TransportError,
)

BODY = b"data: one\n\ndata: two\n\ndata: [DONE]\n\n"
CHUNKED = (
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"b\r\ndata: one\n\n\r\n19\r\ndata: two\n\ndata: [DONE]\n\n\r\n0\r\n\r\n"
)
LENGTH = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(BODY), BODY)


class Sink:
    def __init__(self) -> None:
        self.pieces: list[bytes] = []
        self.reads: list[float] = []

    def on_body(self, chunk: bytes, read_s: float) -> None:
        self.pieces.append(chunk)
        self.reads.append(read_s)


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written: list[bytes] = []
        self.closing = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written.append(bytes(data))

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = True

    def is_closing(self) -> bool:
        return self.closing


def feed(response: bytes, cuts: list[int]) -> tuple[Sink, Exchange, ConnectionPool]:
    """A Connection given ``response`` in reads cut at ``cuts``; what its sink and exchange got."""

    async def run() -> tuple[Sink, Exchange, ConnectionPool]:
        pool = ConnectionPool(Target("http://127.0.0.1:9/v1/completions", ()), 1)
        connection = Connection(pool)
        connection.connection_made(FakeTransport())
        sink = Sink()
        exchange = Exchange(sink, asyncio.get_running_loop().create_future())
        connection.start(b"POST ...", exchange)
        points = [0, *sorted(cuts), len(response)]
        for a, b in zip(points, points[1:], strict=False):
            if b > a:
                connection.data_received(response[a:b])
        return sink, exchange, pool

    return asyncio.run(run())


@pytest.mark.parametrize("response", [CHUNKED, LENGTH], ids=["chunked", "content-length"])
@given(cuts=st.lists(st.integers(0, len(CHUNKED)), max_size=8))
def test_the_body_is_whole_wherever_the_reads_are_cut(response: bytes, cuts: list[int]) -> None:
    sink, exchange, pool = feed(response, [c for c in cuts if c <= len(response)])
    assert exchange.done.done() and exchange.done.exception() is None
    assert exchange.status == 200
    assert b"".join(sink.pieces) == BODY
    assert len(pool._idle) == 1  # kept alive for the next request


def test_pieces_of_one_read_share_its_time(monkeypatch: pytest.MonkeyPatch) -> None:
    ticks = itertools.count(1.0)
    monkeypatch.setattr(connections.time, "perf_counter", lambda: next(ticks))
    sink, _, _ = feed(CHUNKED, [])  # one read, two chunks
    assert len(sink.pieces) == 2 and sink.reads == [1.0, 1.0]
    sink, _, _ = feed(CHUNKED, [len(CHUNKED) - 30])  # the second chunk in a later read
    assert sink.reads[0] == 2.0 and sink.reads[-1] == 3.0


def test_an_error_status_keeps_the_start_of_its_body_not_the_sink() -> None:
    body = b'{"error": "boom"}' + b"x" * 1000
    response = b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: %d\r\n\r\n%s" % (
        len(body),
        body,
    )
    sink, exchange, _ = feed(response, [40, 200])
    assert (exchange.status, exchange.reason) == (500, "Internal Server Error")
    assert exchange.error_body == body[:300]
    assert sink.pieces == []


def test_garbage_is_a_transport_error_and_drops_the_connection() -> None:
    _, exchange, pool = feed(b"SSH-2.0-OpenSSH_9.6\r\n", [])
    with pytest.raises(TransportError, match="not valid HTTP/1.1"):
        exchange.done.result()
    assert not pool._idle


def test_a_sink_error_fails_the_exchange_as_raised() -> None:
    class Broken(Sink):
        def on_body(self, chunk: bytes, read_s: float) -> None:
            raise ValueError("malformed SSE data")

    async def run() -> Exchange:
        pool = ConnectionPool(Target("http://127.0.0.1:9/", ()), 1)
        connection = Connection(pool)
        transport = FakeTransport()
        connection.connection_made(transport)
        exchange = Exchange(Broken(), asyncio.get_running_loop().create_future())
        connection.start(b"POST ...", exchange)
        connection.data_received(LENGTH)
        assert transport.closing and not pool._idle
        return exchange

    with pytest.raises(ValueError, match="malformed SSE data"):
        asyncio.run(run()).done.result()


def test_the_request_carries_the_plans_headers_and_the_bodys_length() -> None:
    target = Target("http://example.test:8000/v1/completions?x=1", (("Authorization", "k"),))
    head, _, body = target.request(b'{"a":1}').partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "POST /v1/completions?x=1 HTTP/1.1"
    assert set(lines[1:]) == {
        "Host: example.test:8000",
        "User-Agent: pytest-llmbench",
        "Authorization: k",
        "Content-Length: 7",
    }
    assert body == b'{"a":1}'
    assert (Target("https://h/x", ()).port, Target("http://h/x", ()).port) == (443, 80)


def test_a_url_that_is_not_http_is_refused() -> None:
    with pytest.raises(ValueError, match="not an http"):
        Target("ftp://h/x", ())


# -- against real sockets ----------------------------------------------------------------------

Reply = Callable[[int], bytes | None]  # request number on its connection -> bytes; None: close


async def scripted_server(
    reply: Reply, ssl_context: ssl.SSLContext | None = None, close_after: bool = False
) -> tuple[asyncio.Server, int, list[int]]:
    """A server whose connection answers its n-th request with ``reply(n)`` (then closes, with
    ``close_after``); the list counts connections accepted."""
    accepted: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(1)
        n = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                await reader.readexactly(length)
                answer = reply(n)
                n += 1
                if answer is None:
                    break
                writer.write(answer)
                await writer.drain()
                if close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=ssl_context)
    return server, server.sockets[0].getsockname()[1], accepted


def run_requests(
    reply: Reply,
    count: int,
    limit: int,
    timeout_s: float = 10.0,
    scheme: str = "http",
    ssl_context: ssl.SSLContext | None = None,
    close_after: bool = False,
) -> tuple[list[object], int, int]:
    """``count`` concurrent requests over a pool of ``limit``: each one's exchange or error, the
    connections the server accepted, and the most that were open at once."""

    async def run() -> tuple[list[object], int, int]:
        server, port, accepted = await scripted_server(reply, ssl_context, close_after)
        pool = ConnectionPool(Target(f"{scheme}://localhost:{port}/v1/completions", ()), limit)
        most = 0

        async def one() -> object:
            nonlocal most
            try:
                exchange = await pool.exchange(b"{}", Sink(), timeout_s)
            except (TransportError, Timeout) as exc:
                return exc
            finally:
                most = max(most, len(pool._open))
            return exchange

        async with pool:
            out = await asyncio.gather(*(one() for _ in range(count)))
        server.close()
        await server.wait_closed()
        return out, len(accepted), most

    return asyncio.run(run())


def test_connections_are_kept_alive_and_never_more_than_the_limit() -> None:
    out, accepted, most = run_requests(lambda n: LENGTH, count=40, limit=3)
    assert all(isinstance(e, Exchange) and e.status == 200 for e in out)
    assert accepted == 3 and most <= 3


def test_a_connection_the_server_closes_is_replaced() -> None:
    # Each connection answers one request, says "Connection: close", and closes.
    close = LENGTH.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n", 1)
    out, accepted, _ = run_requests(lambda n: close, count=6, limit=2, close_after=True)
    assert all(isinstance(e, Exchange) and e.status == 200 for e in out)
    assert accepted == 6


def test_a_body_ended_by_the_close_is_complete() -> None:
    until_close = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + BODY
    out, _, _ = run_requests(lambda n: until_close, count=2, limit=1, close_after=True)
    assert all(isinstance(e, Exchange) and e.status == 200 for e in out)


def test_a_close_mid_response_is_a_transport_error() -> None:
    cut = LENGTH[: len(LENGTH) - 10]
    out, _, _ = run_requests(lambda n: cut, count=1, limit=1, close_after=True)
    assert isinstance(out[0], TransportError)
    assert "closed the connection mid-response" in str(out[0])


def test_a_response_that_never_ends_times_out_and_its_connection_is_dropped() -> None:
    head_only = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\ndata: "
    out, _, _ = run_requests(lambda n: head_only, count=2, limit=1, timeout_s=0.3)
    assert all(isinstance(e, Timeout) for e in out)


def test_a_refused_connection_names_the_address() -> None:
    async def run() -> tuple[BaseException, int]:
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        server.close()
        await server.wait_closed()
        pool = ConnectionPool(Target(f"http://127.0.0.1:{port}/", ()), 1)
        with pytest.raises(TransportError) as info:
            await pool.exchange(b"{}", Sink(), 5.0)
        return info.value, port

    error, port = asyncio.run(run())
    assert str(error).startswith(f"cannot connect to 127.0.0.1:{port}: ")


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_https_verifies_the_certificate_against_the_trust_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert, key)
    # Not trusted: the handshake fails, as a request error.
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    out, _, _ = run_requests(lambda n: LENGTH, 1, 1, scheme="https", ssl_context=server_context)
    assert isinstance(out[0], TransportError) and "certificate" in str(out[0]).lower()
    # Trusted through the standard variable: the same request succeeds.
    monkeypatch.setenv("SSL_CERT_FILE", os.fspath(cert))
    out, _, _ = run_requests(lambda n: LENGTH, 3, 1, scheme="https", ssl_context=server_context)
    assert all(isinstance(e, Exchange) and e.status == 200 for e in out)
