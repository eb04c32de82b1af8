"""Any OpenAI-compatible server over HTTP, streamed (``/v1/completions``, ``/v1/chat/completions``).

Timing, per request, all ``time.perf_counter`` on this host (the method of ``vllm bench serve``):

- ``start_s``: just before the request is sent (after a connection slot is free);
- ``token_times_s``: the arrival time of each SSE data event that carries output. One event may
  carry several tokens (servers may coalesce), so ITL = differences of consecutive event times is
  an inter-*event* latency; ``len(token_times_s)`` can be smaller than ``output_tokens``. TPOT,
  ``(e2e - ttft) / (output_tokens - 1)``, does not depend on how tokens were grouped;
- ``first_token_s``: the first such event; ``end_s``: when the stream ended (``[DONE]``).

``output_tokens`` comes from the server's usage block (``stream_options.include_usage``) when it
sends one; else ``max_tokens`` when the stream ends with ``finish_reason: "length"`` (the server
stopped at the limit); else from re-tokenising the returned text with the model's tokenizer
(which can differ by a token or two at merges); ``Completion.output_tokens_source`` says which.
Errors (HTTP status, refused connection, timeout, malformed stream) fail that request only;
nothing is retried.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import dataclasses
import json
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pytest_llmbench import compat
from pytest_llmbench.backends.base import (
    Backend,
    BackendSpec,
    Capabilities,
    Completion,
    EngineInfo,
    GenerationRequest,
    Schedule,
)
from pytest_llmbench.backends.openai.options import OpenAIOptions, from_spec_options
from pytest_llmbench.backends.openai.sse import SSEError, SSEParser, parse_data
from pytest_llmbench.errors import BackendUnavailable, EngineError, QualityUnavailable

if TYPE_CHECKING:
    import aiohttp

    from pytest_llmbench.backends.openai.quality import ServerClient
    from pytest_llmbench.backends.openai.servers import ManagedServer
    from pytest_llmbench.speculative import SpeculativeCounters

T = TypeVar("T")

# vLLM/SGLang sampling extensions, sent only when they change something: a strict
# OpenAI-protocol server rejects parameters it does not know.
_NEUTRAL = {"top_k": -1, "min_p": 0.0, "repetition_penalty": 1.0}


class OpenAIBackend(Backend):
    """A client of an external server (``--llm-server-url``) or of a managed one it starts."""

    name = "openai"
    extra = "openai"
    capabilities = Capabilities(
        streaming=True, own_batching=True, timed_arrivals=True, own_process=False
    )

    def __init__(self, spec: BackendSpec) -> None:
        super().__init__(spec)
        self.options: OpenAIOptions = from_spec_options(spec.options)
        self._base_url: str | None = self.options.server_url
        self._model: str | None = self.options.model_name
        self._server: ManagedServer | None = None
        self._text_prompts = False  # the managed server takes text, not token ids
        self._version = "unknown"
        self._tokenizer: Any = None
        self._counted_by: collections.Counter[str] = collections.Counter()

    def __repr__(self) -> str:
        return f"OpenAIBackend(url={self._base_url!r}, model={self._model!r})"

    @classmethod
    def check_available(cls) -> str | None:
        try:
            import aiohttp  # noqa: F401
        except ImportError:
            return "the openai backend needs aiohttp: pip install pytest-llmbench[openai]"
        return None

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the managed server (when no URL was given), then ask it for its model name."""
        self.options.api_key()  # an unset key variable fails here, not in every request
        if self._base_url is None:
            from pytest_llmbench.backends.openai.servers import (
                ManagedServer,
                engine_flags,
                missing_server,
                server_env,
                server_model_path,
                text_prompts,
            )

            kind = self.options.server
            reason = missing_server(kind)
            if reason is not None:
                raise BackendUnavailable(reason)  # the tests skip with it, as for an engine
            scratch = Path(tempfile.mkdtemp(prefix=f"llmbench-{kind}-server-"))
            model = server_model_path(kind, self.spec.config, self.spec.model_path)
            self._text_prompts = text_prompts(kind)
            self._server = ManagedServer(
                kind,
                model,
                engine_flags(self.spec.config, kind, model, scratch),
                extra_args=self.options.server_args,
                env=server_env(kind, self.spec.device),
                startup_timeout_s=self.options.startup_timeout_s,
                log_path=scratch / "server.log",
            )
            self._base_url = self._server.start()
        models = self._get_json("/v1/models")
        if self._model is None:
            try:
                self._model = str(models["data"][0]["id"])
            except (KeyError, IndexError, TypeError):
                raise EngineError(
                    f"{self._base_url}/v1/models lists no model; set the model name explicitly"
                ) from None
        self._version = self._server_version()

    def close(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def info(self) -> EngineInfo:
        details = {
            "server_url": str(self._base_url),
            "server": "external" if self.options.server_url else self.options.server,
            "endpoint": self.options.endpoint,
            "inter_token_latency": "between SSE data events carrying output (may hold >1 token)",
            "output_tokens_counted_by": self._counted_by_summary(),
        }
        managed = self.options.server_url is None
        tp = self.spec.config.sharding.num_devices if managed else 0
        return EngineInfo(
            backend=self.name,
            version=self._version,
            model=self._model or self.spec.model_path,
            device=self.spec.device if managed else "remote",
            cuda_devices=tuple(range(tp)) if managed and self.spec.device == "cuda" else (),
            details=details,
        )

    def _counted_by_summary(self) -> str:
        if not self._counted_by:
            return "n/a"
        if len(self._counted_by) == 1:
            return next(iter(self._counted_by))
        return ", ".join(f"{k}: {v} requests" for k, v in sorted(self._counted_by.items()))

    # -- serving --------------------------------------------------------------------------------

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        """All requests at once; in flight at most ``max_connections`` (or ``batch_size``)."""
        return self.serve(requests, Schedule())

    def serve(self, requests: Sequence[GenerationRequest], schedule: Schedule) -> list[Completion]:
        """The whole schedule in one call (the runner wraps it in one energy window)."""
        if self._base_url is None or self._model is None:
            raise EngineError("OpenAIBackend.serve() called before start()")
        limit = self.options.max_connections
        if schedule.offline and compat.is_used(self.spec.config, "batching.batch_size"):
            # The compat matrix promises: offline, requests in flight = batch_size when set.
            limit = min(limit, self.spec.config.batching.batch_size)
        cap = min(schedule.max_concurrency or limit, limit)
        bounded = Schedule(schedule.arrival_offsets_s, cap)
        if self.options.endpoint == "chat" and any(r.prompt_text is None for r in requests):
            self._load_tokenizer()
        completions = _run(self._serve(requests, bounded))
        if self._server is not None and not self._server.alive():
            # A dead managed server fails the test (requests alone would only count as errors).
            raise EngineError(self._server.failure(f"the {self._server.kind} server died"))
        self._counted_by.clear()  # info() describes the last call, i.e. the result being recorded
        return [self._count_tokens(c) for c in completions]

    async def _serve(
        self, requests: Sequence[GenerationRequest], schedule: Schedule
    ) -> list[Completion]:
        import aiohttp

        from pytest_llmbench.workload.traffic import run_schedule

        connector = aiohttp.TCPConnector(limit=self.options.max_connections)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def send(request: GenerationRequest) -> Completion:
                return await self._send(session, request)

            return await run_schedule(schedule, requests, send)

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        key = self.options.api_key()
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def payload(self, request: GenerationRequest) -> dict[str, Any]:
        """The JSON body for ``request`` (sampling from the compat translation)."""
        body: dict[str, Any] = {"model": self._model}
        if self.options.endpoint == "chat":
            text = request.prompt_text
            if text is None:
                text = str(self._tokenizer.decode(list(request.prompt_token_ids)))
            body["messages"] = [{"role": "user", "content": text}]
        elif self._text_prompts and request.prompt_text is not None:
            body["prompt"] = (
                request.prompt_text
            )  # the server takes text only; it decodes to the ids
        else:
            body["prompt"] = list(request.prompt_token_ids)  # exact ids: no re-tokenisation drift
        body["max_tokens"] = request.max_output_tokens
        body["min_tokens"] = request.min_output_tokens
        if request.min_output_tokens >= request.max_output_tokens:
            body["ignore_eos"] = True  # forced length: the same token count on every backend
        for key, value in self.spec.translation.sampling.items():
            if key in ("max_tokens", "min_tokens") or _NEUTRAL.get(key, object()) == value:
                continue
            body[key] = value
        if self._text_prompts:
            # llama-cpp-python's server penalises repeats by default (repeat_penalty 1.1) under
            # its own name: send ours, so the config means the same on every backend.
            body["repeat_penalty"] = self.spec.translation.sampling.get("repetition_penalty", 1.0)
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
        return body

    def _url(self) -> str:
        path = "/v1/chat/completions" if self.options.endpoint == "chat" else "/v1/completions"
        return f"{self._base_url}{path}"

    async def _send(self, session: aiohttp.ClientSession, request: GenerationRequest) -> Completion:
        import aiohttp

        chat = self.options.endpoint == "chat"
        timeout = aiohttp.ClientTimeout(total=self.options.request_timeout_s)
        headers = self._headers()
        body = json.dumps(self.payload(request))
        times: list[float] = []
        texts: list[str] = []
        prompt_tokens: int | None = None
        completion_tokens: int | None = None
        finish_reason: str | None = None
        finished = done = False
        error: str | None = None
        start = time.perf_counter()
        try:
            async with session.post(
                self._url(), data=body, headers=headers, timeout=timeout
            ) as resp:
                if resp.status != 200:
                    detail = (await resp.text())[:300]
                    error = f"HTTP {resp.status} {resp.reason}: {detail}"
                else:
                    parser = SSEParser()
                    async for chunk in resp.content.iter_any():
                        now = time.perf_counter()
                        for event in parser.feed(chunk):
                            delta = parse_data(event.data, chat)
                            if delta.done:
                                done = True
                                continue
                            if delta.is_token:
                                times.append(now)
                                texts.append(delta.text)
                            finished = finished or delta.finish_reason is not None
                            if delta.completion_tokens is not None:
                                completion_tokens = delta.completion_tokens
                            if delta.prompt_tokens is not None:
                                prompt_tokens = delta.prompt_tokens
                            finish_reason = delta.finish_reason or finish_reason
                    for event in parser.close():
                        done = done or parse_data(event.data, chat).done
        except asyncio.TimeoutError:
            error = f"timeout: no complete response within {self.options.request_timeout_s:g} s"
        except aiohttp.ClientError as exc:
            error = f"{type(exc).__name__}: {exc}"
            await self._await_server_exit()
        except SSEError as exc:
            error = str(exc)
        end = time.perf_counter()
        if error is None and not times:
            error = "the stream carried no output tokens"
        elif error is None and not (done or finished):
            error = "the stream ended early (no [DONE] and no finish_reason)"
        source = "usage"
        if completion_tokens is None and finish_reason == "length":
            # No usage block (llama-cpp-python's server): "length" is the server saying it
            # stopped at max_tokens, which counts them exactly where re-tokenising text cannot.
            completion_tokens, source = request.max_output_tokens, "finish_reason=length"
        usage_ok = completion_tokens is not None and error is None
        if error is not None and self._server is not None and not self._server.alive():
            error = self._server.failure(f"{error}; the {self._server.kind} server died")
        return Completion(
            request_id=request.request_id,
            input_tokens=prompt_tokens if prompt_tokens is not None else request.input_tokens,
            output_tokens=completion_tokens if usage_ok and completion_tokens is not None else 0,
            start_s=start,
            end_s=end,
            first_token_s=times[0] if times else None,
            token_times_s=tuple(times),
            text="".join(texts),
            error=self._scrub(error),
            output_tokens_source=source if usage_ok else None,
        )

    async def _await_server_exit(self, wait_s: float = 1.0) -> None:
        """After a connection error, give a dying managed server time to be seen as dead.

        Its sockets close while the process exits, a moment before its exit status is readable.
        """
        deadline = time.perf_counter() + wait_s
        while self._server is not None and self._server.alive() and time.perf_counter() < deadline:
            await asyncio.sleep(0.05)

    def _scrub(self, text: str | None) -> str | None:
        """Error text with the API key masked (a server may echo request headers back)."""
        if text is None or self.options.api_key_env is None:
            return text
        key = self.options.api_key()
        return text.replace(key, "***") if key else text

    def _count_tokens(self, completion: Completion) -> Completion:
        """Fill output_tokens from the tokenizer when the server sent no usage block."""
        if completion.error is not None:
            return completion
        if completion.output_tokens_source is None:
            tokenizer = self._load_tokenizer()
            ids = tokenizer.encode(completion.text or "", add_special_tokens=False)
            completion = dataclasses.replace(
                completion, output_tokens=len(ids), output_tokens_source="tokenizer"
            )
        self._counted_by[str(completion.output_tokens_source)] += 1
        return completion

    def _load_tokenizer(self) -> Any:
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            try:
                self._tokenizer = AutoTokenizer.from_pretrained(self.spec.model_path)
            except (OSError, ValueError) as exc:
                raise EngineError(
                    f"cannot load the tokenizer of {self.spec.model_path!r} to count output "
                    f"tokens (the server sent no usage block): {exc}"
                ) from None
        return self._tokenizer

    # -- quality (backends/openai/quality.py) -----------------------------------------------------

    def _client(self) -> ServerClient:
        from pytest_llmbench.backends.openai.quality import ServerClient

        if self._base_url is None or self._model is None:
            raise EngineError("OpenAIBackend called before start()")
        headers = {k: v for k, v in self._headers().items() if k == "Authorization"}
        return ServerClient(self._base_url, self._model, headers, self.options.request_timeout_s)

    def greedy_token_ids(
        self, prompts: Sequence[Sequence[int]], output_tokens: int
    ) -> list[tuple[int, ...]]:
        from pytest_llmbench.backends.openai.quality import greedy_token_ids

        self._require_token_ids()
        return greedy_token_ids(self._client(), prompts, output_tokens)

    def token_logprobs(self, prompt_ids: Sequence[int], response_ids: Sequence[int]) -> list[float]:
        from pytest_llmbench.backends.openai.quality import token_logprobs

        self._require_token_ids()
        return token_logprobs(self._client(), prompt_ids, response_ids)

    def _require_token_ids(self) -> None:
        """The probe and perplexity speak token ids; a text-only server cannot answer them."""
        if self._text_prompts:
            raise QualityUnavailable(
                f"the managed {self.options.server} server (llama-cpp-python's) takes text "
                "prompts only and returns text, not token ids"
            )

    def speculative_counters(self) -> SpeculativeCounters | None:
        """A vLLM server's spec-decode counters from ``/metrics``; None where it has none."""
        from pytest_llmbench.speculative import from_prometheus_text

        text = self._client().get_text("/metrics")
        if text is None:
            return None
        method = self.spec.config.vllm.speculative.method
        return from_prometheus_text(text, method or "unknown")

    # -- small synchronous helpers ---------------------------------------------------------------

    def _server_version(self) -> str:
        """vLLM answers ``/version``; SGLang (0.5.16 has no ``/version``) ``/server_info``."""
        for path in ("/version", "/server_info"):
            try:
                version = self._get_json(path).get("version")
            except EngineError:
                continue  # not every server has either
            if version is not None:
                return str(version)
        return "unknown"

    def _get_json(self, path: str) -> dict[str, Any]:
        url = f"{self._base_url}{path}"
        headers = {k: v for k, v in self._headers().items() if k == "Authorization"}
        req = urllib.request.Request(url, headers=headers)
        try:
            with urllib.request.urlopen(
                req, timeout=min(30.0, self.options.request_timeout_s)
            ) as r:
                data = json.loads(r.read().decode("utf-8"))
        except urllib.error.HTTPError as exc:
            raise EngineError(f"GET {url}: HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise EngineError(
                f"cannot reach the server at {self._base_url} (--llm-server-url): {reason}"
            ) from None
        except (ValueError, UnicodeDecodeError):
            raise EngineError(f"GET {url}: the response is not JSON") from None
        if not isinstance(data, dict):
            raise EngineError(f"GET {url}: expected a JSON object")
        return data


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion from synchronous code, even inside a running event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()
