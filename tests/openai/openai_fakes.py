"""A fake OpenAI-compatible server (aiohttp.web, in a thread) and helpers for the openai tests.

The server is the external boundary of the client, so a fake is fair there; it speaks the same
SSE dialect as vLLM (one event per token, a role-only opening chat event, a usage event).
"""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pytest_llmbench.backends.base import BackendSpec, GenerationRequest
from pytest_llmbench.backends.openai.backend import OpenAIBackend
from pytest_llmbench.backends.openai.options import OpenAIOptions
from pytest_llmbench.compat import translate
from pytest_llmbench.config.schema import ExperimentConfig

aiohttp = pytest.importorskip("aiohttp")
from aiohttp import web  # noqa: E402

MODEL_ID = "fake-model"
SECRET = "sk-test-SECRET-do-not-leak-4242"


@dataclass
class FakeState:
    """What the fake server does next, and what it received."""

    # ok | no_usage | multi | burst | http500 | http429 | malformed | slow | no_done | echo_auth
    # (burst: every token event in one write, as a server that outruns its client delivers them)
    mode: str = "ok"
    script: list[str] = field(default_factory=list)  # modes of the next requests, then ``mode``
    tokens: list[str] = field(default_factory=lambda: ["Hel", "lo", " wor", "ld"])
    usage_tokens: int | None = None  # completion_tokens in the usage block; None: len(tokens)
    delay_s: float = 0.005  # between token events
    slow_s: float = 5.0
    bodies: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    unstreamed: list[dict[str, Any]] = field(default_factory=list)  # non-streamed requests
    # What the server says of itself: GET path -> JSON (a path left out answers 404), and the
    # owned_by of its model in /v1/models (None: left out, as a minimal server does).
    identity: dict[str, Any] = field(default_factory=lambda: {"/version": {"version": "fake-1.0"}})
    owned_by: str | None = None
    metrics: str | None = None  # the /metrics page (Prometheus text); None: 404


def _chunk(text: str, chat: bool, finish: str | None) -> bytes:
    if chat:
        choice: dict[str, Any] = {"index": 0, "delta": {"content": text}, "finish_reason": finish}
    else:
        choice = {"index": 0, "text": text, "finish_reason": finish}
    return f"data: {json.dumps({'choices': [choice]})}\n\n".encode()


def make_app(state: FakeState) -> web.Application:
    async def models(request: web.Request) -> web.Response:
        model: dict[str, Any] = {"id": MODEL_ID}
        if state.owned_by is not None:
            model["owned_by"] = state.owned_by
        return web.json_response({"object": "list", "data": [model]})

    async def identity(request: web.Request) -> web.Response:
        if request.path not in state.identity:
            return web.json_response({"detail": "Not Found"}, status=404)
        return web.json_response(state.identity[request.path])

    async def metrics(request: web.Request) -> web.Response:
        if state.metrics is None:
            return web.Response(status=404, text="no metrics here")
        return web.Response(text=state.metrics, content_type="text/plain")

    async def complete(request: web.Request) -> web.StreamResponse:
        chat = request.path.endswith("/chat/completions")
        body = await request.json()
        if not body.get("stream"):  # the quality probe's calls: refused, kept apart
            state.unstreamed.append(body)
            return web.json_response({"error": {"message": "streaming only"}}, status=400)
        state.bodies.append(body)
        state.headers.append(dict(request.headers))
        mode = state.script.pop(0) if state.script else state.mode
        if mode == "http500":
            return web.json_response({"error": {"message": "boom"}}, status=500)
        if mode == "http429":
            return web.json_response({"error": {"message": "rate limited"}}, status=429)
        if mode == "echo_auth":
            return web.Response(status=401, text=f"bad key {request.headers.get('Authorization')}")
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        if mode == "slow":
            await asyncio.sleep(state.slow_s)
        if mode == "malformed":
            await resp.write(_chunk("ok", chat, None))
            await resp.write(b"data: {not json\n\n")
            await resp.write_eof()
            return resp
        if chat:  # vLLM opens chat streams with a role-only delta
            role = {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}
            await resp.write(f"data: {json.dumps(role)}\n\n".encode())
        tokens = state.tokens
        if mode in ("multi", "no_usage_multi"):  # two tokens per event
            tokens = ["".join(tokens[i : i + 2]) for i in range(0, len(tokens), 2)]
        # "length" only when max_tokens tokens went out, as a real server says it; else "stop".
        ended = "length" if len(state.tokens) == body.get("max_tokens") else "stop"
        if mode == "burst":  # one write, hence one read: the events cannot be timed apart
            await asyncio.sleep(state.delay_s)
            last = len(tokens) - 1
            events = [_chunk(t, chat, ended if i == last else None) for i, t in enumerate(tokens)]
            await resp.write(b"".join(events))
            tokens = []
        for i, text in enumerate(tokens):
            await asyncio.sleep(state.delay_s)
            last = i == len(tokens) - 1
            finish = ended if last and mode != "no_done" else None
            await resp.write(_chunk(text, chat, finish))
        if mode == "no_done":
            await resp.write_eof()
            return resp
        if mode not in ("no_usage", "no_usage_multi"):
            n = len(state.tokens) if state.usage_tokens is None else state.usage_tokens
            usage = {"prompt_tokens": len(body.get("prompt") or []) or 11, "completion_tokens": n}
            await resp.write(f"data: {json.dumps({'choices': [], 'usage': usage})}\n\n".encode())
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_get("/v1/models", models)
    for path in ("/version", "/server_info", "/props", "/openapi.json"):
        app.router.add_get(path, identity)
    app.router.add_get("/metrics", metrics)
    app.router.add_post("/v1/completions", complete)
    app.router.add_post("/v1/chat/completions", complete)
    return app


class FakeServer:
    """Runs the app on 127.0.0.1:<free port> in a background thread with its own loop."""

    def __init__(self) -> None:
        self.state = FakeState()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.runner = web.AppRunner(make_app(self.state), shutdown_timeout=0.5)
        self.stopped = False
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)

    async def _start(self) -> None:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def make_backend(
    model_path: Path | str, config: ExperimentConfig | None = None, **options: Any
) -> OpenAIBackend:
    config = config or ExperimentConfig()
    spec = BackendSpec(
        model_path=str(model_path),
        config=config,
        translation=translate(config, "openai"),
        device="cpu",
        options={"openai": OpenAIOptions(**options)},
    )
    return OpenAIBackend(spec)


def requests(
    n: int, max_tokens: int = 4, prompt: tuple[int, ...] = (5, 6, 7)
) -> list[GenerationRequest]:
    return [
        GenerationRequest(f"r{i}", prompt, max_tokens, max_tokens, prompt_text="hello there")
        for i in range(n)
    ]
