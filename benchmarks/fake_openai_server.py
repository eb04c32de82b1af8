"""A fake OpenAI-compatible server that is never the bottleneck of a client benchmark.

It answers ``/v1/completions`` and ``/v1/chat/completions`` with a streamed response in vLLM's
SSE dialect (one event per token, a usage event, ``[DONE]``), ``max_tokens`` tokens long, written
in one piece; ``/v1/models``, ``/health``, ``/version`` and a small ``/metrics`` in vLLM's names.
Responses are rendered once per (endpoint, token count) and reused, and requests are read with
a byte search for ``max_tokens`` instead of a JSON parse, so serving one costs a few
microseconds: what a benchmark of a client measures is the client.

    python benchmarks/fake_openai_server.py --port 8123          # prints "ready <port>"
    python benchmarks/fake_openai_server.py --port 0 --cpu 1     # a free port, pinned to CPU 1
    python benchmarks/fake_openai_server.py --workers 4 --cpu 8-11  # 4 processes, one port

Plain asyncio (uvloop when installed), HTTP/1.1 with keep-alive; nothing else is supported.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import signal
import socket

MODEL_ID = "fake-model"
_MAX_TOKENS = re.compile(rb'"max_tokens"\s*:\s*(\d+)')
_TOKEN_TEXT = " tok"


def _event(payload: dict[str, object]) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


def stream_events(chat: bool, tokens: int) -> list[bytes]:
    """The SSE events of one streamed completion of ``tokens`` tokens."""
    parts = []
    if chat:
        parts.append(_event({"choices": [{"index": 0, "delta": {"role": "assistant"}}]}))
    for i in range(tokens):
        finish = "length" if i == tokens - 1 else None
        if chat:
            choice: dict[str, object] = {
                "index": 0,
                "delta": {"content": _TOKEN_TEXT},
                "finish_reason": finish,
            }
        else:
            choice = {"index": 0, "text": _TOKEN_TEXT, "finish_reason": finish}
        parts.append(_event({"id": "cmpl-fake", "object": "text_completion", "choices": [choice]}))
    usage = {"prompt_tokens": 32, "completion_tokens": tokens, "total_tokens": 32 + tokens}
    parts.append(_event({"id": "cmpl-fake", "choices": [], "usage": usage}))
    parts.append(b"data: [DONE]\n\n")
    return parts


def _head(status: str, content_type: str, length: int) -> bytes:
    return (
        f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {length}\r\nConnection: keep-alive\r\n\r\n"
    ).encode()


def _response(status: str, content_type: str, body: bytes) -> bytes:
    return _head(status, content_type, len(body)) + body


def stream_pieces(chat: bool, tokens: int, paced: bool) -> list[bytes]:
    """What is written for one completion: the whole response at once, or (``paced``) the head
    with the first event, then one event per write."""
    events = stream_events(chat, tokens)
    head = _head("200 OK", "text/event-stream", sum(len(e) for e in events))
    if not paced:
        return [head + b"".join(events)]
    return [head + events[0], *events[1:]]


class Counters:
    """What /metrics reports: requests served and tokens sent, as vLLM names them."""

    def __init__(self) -> None:
        self.requests = 0
        self.generation_tokens = 0

    def prometheus(self) -> bytes:
        return (
            "# TYPE vllm:request_success_total counter\n"
            f'vllm:request_success_total{{model_name="{MODEL_ID}"}} {self.requests}\n'
            "# TYPE vllm:generation_tokens_total counter\n"
            f'vllm:generation_tokens_total{{model_name="{MODEL_ID}"}} {self.generation_tokens}\n'
        ).encode()


class FakeOpenAI(asyncio.Protocol):
    """One connection: requests parsed from a byte buffer, answered from the cache."""

    cache: dict[tuple[bool, int], list[bytes]] = {}
    counters = Counters()
    interval_s = 0.0  # between the events of a stream; 0: the whole stream in one write

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = self.buffer[:head_end]
            length = 0
            lower = head.lower()
            at = lower.find(b"content-length:")
            if at >= 0:
                line_end = lower.find(b"\r\n", at)
                length = int(lower[at + 15 : line_end if line_end > 0 else None])
            end = head_end + 4 + length
            if len(self.buffer) < end:
                return
            body, self.buffer = self.buffer[head_end + 4 : end], self.buffer[end:]
            pieces = self.answer(head.split(b" ", 2)[1], body)
            self.transport.write(pieces[0])
            if len(pieces) > 1:
                # Later requests on this connection wait for this stream (HTTP/1.1 keeps order).
                loop = asyncio.get_running_loop()
                for i, piece in enumerate(pieces[1:], start=1):
                    loop.call_later(i * self.interval_s, self._write, piece)

    def _write(self, piece: bytes) -> None:
        if not self.transport.is_closing():
            self.transport.write(piece)

    def answer(self, path: bytes, body: bytes) -> list[bytes]:
        if path.endswith(b"/completions"):
            chat = path.endswith(b"/chat/completions")
            match = _MAX_TOKENS.search(body)
            tokens = int(match.group(1)) if match else 16
            key = (chat, tokens)
            pieces = self.cache.get(key)
            if pieces is None:
                pieces = stream_pieces(chat, tokens, self.interval_s > 0)
                self.cache[key] = pieces
            self.counters.requests += 1
            self.counters.generation_tokens += tokens
            return pieces
        return [self._plain(path)]

    def _plain(self, path: bytes) -> bytes:
        if path == b"/v1/models":
            data = {"object": "list", "data": [{"id": MODEL_ID, "object": "model"}]}
            return _response("200 OK", "application/json", json.dumps(data).encode())
        if path == b"/version":
            return _response("200 OK", "application/json", b'{"version":"fake-fast-1.0"}')
        if path == b"/health":
            return _response("200 OK", "application/json", b"{}")
        if path == b"/metrics":
            return _response("200 OK", "text/plain; version=0.0.4", self.counters.prometheus())
        return _response("404 Not Found", "application/json", b'{"error":"not found"}')


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket on ``host:port`` that other workers may bind too (SO_REUSEPORT: the kernel
    spreads new connections over them)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(4096)
    return sock


async def serve(sock: socket.socket, parent: int | None) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(FakeOpenAI, sock=sock, backlog=4096)
    async with server:
        if parent is None:
            await server.serve_forever()
        while os.getppid() == parent:  # a worker ends with the first process, even on SIGKILL
            await asyncio.sleep(0.5)


def run_worker(sock: socket.socket, cpu: int | None, parent: int | None = None) -> None:
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    try:
        import uvloop

        uvloop.run(serve(sock, parent))
    except ImportError:
        asyncio.run(serve(sock, parent))


def parse_cpus(text: str | None) -> list[int]:
    """``"3"``, ``"8-15"`` or ``"1,3,5"`` -> CPU numbers; None or empty: no pinning."""
    cpus: list[int] = []
    for part in (text or "").split(","):
        if "-" in part:
            low, high = part.split("-")
            cpus += range(int(low), int(high) + 1)
        elif part:
            cpus.append(int(part))
    return cpus


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: a free port (printed)")
    parser.add_argument(
        "--cpu", default=None, help="pin the server to this CPU, or its workers to these (8-15)"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="server processes on the one port, for clients that outrun one (default 1)",
    )
    parser.add_argument(
        "--interval-ms",
        type=float,
        default=0.0,
        help="write each SSE event apart, this many ms after the previous one (as a server "
        "streams tokens); 0 (default): the whole stream in one write",
    )
    args = parser.parse_args()
    FakeOpenAI.interval_s = args.interval_ms / 1000.0
    cpus = parse_cpus(args.cpu)
    first = listening_socket(args.host, args.port)
    port = first.getsockname()[1]
    children = []
    for worker in range(1, args.workers):
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:
            first.close()
            cpu = cpus[worker % len(cpus)] if cpus else None
            run_worker(listening_socket(args.host, port), cpu, parent)
            os._exit(0)
        children.append(pid)
    print(f"ready {port}", flush=True)
    try:
        run_worker(first, cpus[0] if cpus else None)
    finally:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)


if __name__ == "__main__":
    main()
