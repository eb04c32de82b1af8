"""Any OpenAI-compatible server over HTTP, streamed (``/v1/completions``, ``/v1/chat/completions``).

Timing, per request, all ``time.perf_counter`` on this host (the method of ``vllm bench serve``):

- ``start_s``: just before the request is sent (after a connection slot is free);
- ``token_times_s``: the time of each network read that brings output. One read may hold several
  SSE events and one event several tokens (servers coalesce under load; a server whose engine
  outruns its client, such as llama-cpp-python's on a small model, can deliver a whole stream in
  one read). Events read together were not seen apart, so they share no made-up zero gap: ITL =
  differences of consecutive read times, an inter-*arrival* latency, and ``len(token_times_s)``
  can be smaller than ``output_tokens``. Where every request's output came in one read there is
  no ITL at all, and ``info().details["itl_unavailable"]`` says why. TPOT,
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
import dataclasses
import json
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
from pytest_llmbench.errors import BackendUnavailable, EngineError, QualityUnavailable

if TYPE_CHECKING:
    from pytest_llmbench.backends.openai.client import ClientPlan, Prepared
    from pytest_llmbench.backends.openai.processes import ClientProcesses
    from pytest_llmbench.backends.openai.quality import ServerClient
    from pytest_llmbench.backends.openai.server_metrics import MetricsProbe
    from pytest_llmbench.backends.openai.servers import ManagedServer
    from pytest_llmbench.loadgen import ClientLoad
    from pytest_llmbench.speculative import SpeculativeCounters
    from pytest_llmbench.workload.conversations import Conversation, ConversationSpec
    from pytest_llmbench.workload.prompts import Tokenizer

# vLLM/SGLang sampling extensions, sent only when they change something: a strict
# OpenAI-protocol server rejects parameters it does not know.
_NEUTRAL = {"top_k": -1, "min_p": 0.0, "repetition_penalty": 1.0}


class OpenAIBackend(Backend):
    """A client of an external server (``--llm-server-url``) or of a managed one it starts."""

    name = "openai"
    extra = "openai"
    capabilities = Capabilities(
        streaming=True, own_batching=True, timed_arrivals=True, own_process=False, sessions=True
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
        self._all_in_one_read = False  # the last call's streams each came in one network read
        self._client_load: tuple[ClientLoad, ...] | None = None
        self._processes: ClientProcesses | None = None
        self._probe: MetricsProbe | None = None

    def __repr__(self) -> str:
        return f"OpenAIBackend(url={self._base_url!r}, model={self._model!r})"

    @classmethod
    def check_available(cls) -> str | None:
        try:
            import httptools  # noqa: F401
        except ImportError:
            return "the openai backend needs httptools: pip install pytest-llmbench[openai]"
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
        from pytest_llmbench.backends.openai.identity import server_label

        self._version = server_label(self._get_optional, models)
        self._probe = self._metrics_probe()

    def _metrics_probe(self) -> MetricsProbe | None:
        """The server's /metrics around each window: a managed vLLM/SGLang server's always; an
        external server's when its page names vLLM's or SGLang's metrics."""
        from pytest_llmbench.backends.openai.server_metrics import KINDS, MetricsProbe

        kind = None
        if self._server is not None:
            if self._server.kind not in KINDS:
                return None  # trtllm-serve, llama.cpp: no vLLM/SGLang metrics to read
            kind = self._server.kind
        headers = {k: v for k, v in self._headers().items() if k == "Authorization"}
        return MetricsProbe(str(self._base_url), kind, headers)

    def window_probe(self) -> MetricsProbe | None:
        return self._probe

    def close(self) -> None:
        if self._processes is not None:
            self._processes.close()
            self._processes = None
        if self._server is not None:
            self._server.stop()
            self._server = None

    def info(self) -> EngineInfo:
        details = {
            "server_url": str(self._base_url),
            "server": "external" if self.options.server_url else self.options.server,
            "endpoint": self.options.endpoint,
            "inter_token_latency": "between network reads that bring output (one read may hold "
            "several SSE events, one event several tokens)",
            "output_tokens_counted_by": self._counted_by_summary(),
            "client_processes": str(self.client_processes()),
        }
        if self._all_in_one_read:
            details["itl_unavailable"] = (
                "each request's output arrived in one network read: the server sent its whole "
                "stream before the client could read twice, so no gap between tokens could be "
                "timed; TPOT = (e2e - TTFT) / (output tokens - 1) still holds"
            )
        managed = self.options.server_url is None
        gpus: tuple[int, ...] = ()
        if managed and self.spec.device == "cuda":
            from pytest_llmbench.backends.parallel import engine_demand

            # The config's parallel sizes, as engine_flags passed them (not --llm-server-arg's).
            demand = engine_demand(self.spec.config, self.name, server=self.options.server)
            gpus = (0,) if demand is None else demand.cuda_devices
        if self._server is not None:
            details["engine_env"] = json.dumps(self._server.engine_env(), sort_keys=True)
        return EngineInfo(
            backend=self.name,
            version=self._version,
            model=self._model or self.spec.model_path,
            device=self.spec.device if managed else "remote",
            cuda_devices=gpus,
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
        prepared = [self._prepare(r) for r in requests]  # off the clock of the schedule
        completions = self._drive(prepared, bounded)
        if self._server is not None and not self._server.alive():
            # A dead managed server fails the test (requests alone would only count as errors).
            raise EngineError(self._server.failure(f"the {self._server.kind} server died"))
        self._counted_by.clear()  # info() describes the last call, i.e. the result being recorded
        counted = [self._finish(c) for c in completions]
        streamed = [c for c in counted if c.error is None and c.output_tokens > 1]
        self._all_in_one_read = bool(streamed) and all(len(c.token_times_s) == 1 for c in streamed)
        return counted

    def _finish(self, completion: Completion) -> Completion:
        """A completion as the run records it: the error's text scrubbed of the API key; output
        tokens counted where the server did not."""
        if completion.error is not None:
            return dataclasses.replace(completion, error=self._scrub(completion.error))
        return self._count_tokens(completion)

    def _plan(self) -> ClientPlan:
        from pytest_llmbench.backends.openai.client import ClientPlan

        return ClientPlan(
            url=self._url(),
            headers=tuple(self._headers().items()),
            chat=self.options.endpoint == "chat",
            timeout_s=self.options.request_timeout_s,
        )

    def _prepare(self, request: GenerationRequest) -> Prepared:
        from pytest_llmbench.backends.openai.client import Prepared

        body = json.dumps(self.payload(request), separators=(",", ":")).encode()
        return Prepared(request.request_id, body, request.input_tokens, request.max_output_tokens)

    def _drive(self, prepared: Sequence[Prepared], schedule: Schedule) -> list[Completion]:
        """The run, in this process or over the client processes; what it cost the client is
        kept for client_load()."""
        from pytest_llmbench.backends.openai.client import drive, run_loop

        processes = self.client_processes()
        if processes > 1:
            from pytest_llmbench.backends.openai.processes import ClientProcesses

            if self._processes is None or not self._processes.alive:
                self._processes = ClientProcesses(processes)
            completions, loads = self._processes.run(self._plan(), prepared, schedule)
            self._client_load = loads
            return completions
        completions, load = run_loop(
            drive(self._plan(), prepared, schedule, on_connection_error=self._await_server_exit)
        )
        self._client_load = (load,)
        return completions

    def converse(
        self, spec: ConversationSpec, conversations: Sequence[Conversation], max_active: int
    ) -> list[Completion]:
        """Free-running conversations (pytest_llmbench.multiturn): each sends its next turn
        when the previous answer has arrived and its think time has passed; at most
        ``max_active`` are open at once, each holding its connection for all its turns. One
        client process. A turn's ``scheduled_s`` is when it became due (the answer's arrival
        plus the think time), so the client's lag is measured as for any schedule."""
        from pytest_llmbench.backends.openai.client import run_loop
        from pytest_llmbench.workload.tokenizer import load_tokenizer

        if self._base_url is None or self._model is None:
            raise EngineError("OpenAIBackend.converse() called before start()")
        tokenizer = load_tokenizer(self.spec.model_path)
        self._counted_by.clear()
        completions, load = run_loop(self._converse(spec, conversations, max_active, tokenizer))
        self._client_load = (load,)
        if self._server is not None and not self._server.alive():
            raise EngineError(self._server.failure(f"the {self._server.kind} server died"))
        return completions

    async def _converse(
        self,
        spec: ConversationSpec,
        conversations: Sequence[Conversation],
        max_active: int,
        tokenizer: Tokenizer,
    ) -> tuple[list[Completion], ClientLoad]:
        from pytest_llmbench.backends.openai.client import new_pool, send_one
        from pytest_llmbench.loadgen import LoopMonitor
        from pytest_llmbench.workload.conversations import (
            History,
            not_sent,
            record_turn,
            turn_request,
        )

        plan = self._plan()
        slots = asyncio.Semaphore(max_active)
        out: list[Completion] = []
        monitor = LoopMonitor()

        async def play(conversation: Conversation) -> None:
            async with slots:
                history = History()
                due = time.perf_counter()
                for turn in range(spec.turns):
                    request = turn_request(spec, conversation, turn, history)
                    if history.failed is not None:
                        out.append(not_sent(request, history.failed, time.perf_counter()))
                        continue
                    think = conversation.think_s[turn]
                    if think:
                        due += think
                        await asyncio.sleep(max(0.0, due - time.perf_counter()))
                    sent = await send_one(
                        pool, plan, self._prepare(request), self._await_server_exit
                    )
                    completion = dataclasses.replace(self._finish(sent), scheduled_s=due)
                    record_turn(conversation, turn, history, completion, tokenizer)
                    out.append(completion)
                    due = completion.end_s

        async with new_pool(plan, max_active) as pool:
            monitor.start()
            try:
                await asyncio.gather(*(play(c) for c in conversations))
            finally:
                load = await monitor.stop()
        return out, load

    def client_processes(self) -> int:
        """How many client processes share a schedule (``--llm-client-processes``, resolved)."""
        wanted = self.options.client_processes
        if wanted != "auto":
            return wanted
        from urllib.parse import urlsplit

        from pytest_llmbench.backends.openai.processes import auto_processes

        host = urlsplit(self._base_url or "").hostname or ""
        local = self._server is not None or host in ("localhost", "::1") or host.startswith("127.")
        return auto_processes(local)

    def client_load(self) -> tuple[ClientLoad, ...] | None:
        return self._client_load

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        key = self.options.api_key()
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def payload(self, request: GenerationRequest) -> dict[str, Any]:
        """The JSON body for ``request`` (sampling from the compat translation)."""
        body: dict[str, Any] = {"model": self._model}
        if self.options.endpoint == "chat" and request.messages is not None:
            body["messages"] = [{"role": role, "content": text} for role, text in request.messages]
        elif self.options.endpoint == "chat":
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
            from pytest_llmbench.workload.tokenizer import hf_tokenizer

            try:
                self._tokenizer = hf_tokenizer(self.spec.model_path)
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

    def _get_optional(self, path: str) -> dict[str, Any] | None:
        """:meth:`_get_json`, or None where the server does not answer it (not every server
        has every endpoint)."""
        try:
            return self._get_json(path)
        except EngineError:
            return None

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
