"""Run a backend in its own process, so engines that manage CUDA never share one.

``HostedBackend`` is a Backend whose methods are forwarded to the real backend in a child process
(multiprocessing *spawn*, one Pipe). Each call is one pickle round trip: ``generate`` ships the
whole request list and gets the whole completion list back, never a message per request.

Timestamps cross the process boundary unchanged: on Linux ``time.perf_counter`` is
``clock_gettime(CLOCK_MONOTONIC)``, one system-wide clock, so a child's ``perf_counter`` values
are directly comparable with the parent's (``tests/backends/test_host.py`` checks this).

When the child raises, the error arrives as EngineError with the engine's own message and the
tail of its traceback; when the child dies (OOM killer, segfault) the error says how it died and
adds the tail of the child's log. Either way the host is dead afterwards: later calls raise
EngineError and the caller builds a fresh HostedBackend. Our own user-facing errors
(UnsupportedParameter, BackendUnavailable, ConfigError, QualityUnavailable) keep their class and
leave the host alive.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import multiprocessing
import multiprocessing.connection
import os
import re
import signal
import tempfile
import time
import traceback
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_llmbench.backends.base import (
    Backend,
    BackendSpec,
    Completion,
    EngineInfo,
    GenerationRequest,
    Schedule,
)
from pytest_llmbench.backends.engine_env import apply_engine_env
from pytest_llmbench.errors import (
    BackendUnavailable,
    ConfigError,
    EngineError,
    LLMBenchError,
    QualityUnavailable,
    UnsupportedParameter,
)

if TYPE_CHECKING:
    from pytest_llmbench.speculative import SpeculativeCounters

DEFAULT_START_TIMEOUT_S = 900.0  # a first vLLM start on a GPU compiles and captures graphs (~3 min)
_TAIL_LINES = 25
_CLOSE_GRACE_S = 30.0


def resolve_backend_class(target: str | type[Backend]) -> type[Backend]:
    """A registry name (``vllm``) or an import path (``package.module:Class``) -> the class."""
    if not isinstance(target, str):
        return target
    if ":" in target:
        import importlib

        module_name, _, attr = target.partition(":")
        cls: type[Backend] = getattr(importlib.import_module(module_name), attr)
        return cls
    from pytest_llmbench.backends.registry import Registry

    return Registry.discover().load(target)


def _tail(text: str, lines: int = _TAIL_LINES) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


# The last line of a Python traceback: ``torch.OutOfMemoryError: CUDA out of memory. ...``.
_EXCEPTION_LINE = re.compile(r"^(?:[A-Za-z_]\w*\.)*[A-Za-z_]\w*(?:Error|Exception): \S.*$")


def last_exception_line(log: str) -> str | None:
    """The last ``SomeError: message`` line an engine wrote at the start of a line, or None.

    Engines that supervise their own workers (SGLang) end their whole process tree with SIGKILL
    when a worker fails, so the exit signal says nothing; the worker's exception is the cause.
    """
    for line in reversed(log.splitlines()):
        if _EXCEPTION_LINE.match(line):
            return line if len(line) <= 300 else line[:297] + "..."
    return None


def _describe_exit(code: int | None, cause: str | None = None) -> str:
    if code is None:
        how = "did not exit"
    elif code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = " (e.g. the OOM killer)" if -code == signal.SIGKILL and cause is None else ""
        how = f"was killed by {name}{hint}"
    else:
        how = f"exited with code {code}"
    return how if cause is None else f"{how} after {cause}"


# -- the child ---------------------------------------------------------------------------------
def _child_main(
    conn: Any, target: str | type[Backend], spec: BackendSpec, log_path: str | None
) -> None:
    """Serve method calls from the parent until ``close`` or until the parent goes away."""
    # Our own process group: the engine's processes (vLLM's EngineCore and workers) join it, so
    # the parent can end all of them at once, even if this process dies first.
    with contextlib.suppress(OSError):
        os.setsid()
    # Before the engine is imported: NCCL reads its variables when a communicator is made, and
    # the engine's worker processes inherit this environment.
    engine_env = apply_engine_env()
    if log_path:
        # Engine logs (and those of its own worker processes, which inherit the descriptors) go to
        # a file, whose tail explains a crash that leaves no Python traceback.
        fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
    backend: Backend | None = None
    while True:
        try:
            method, args, kwargs = conn.recv()
        except (EOFError, OSError):  # the parent is gone
            method, args, kwargs = "close", (), {}
            conn = None
        try:
            if method == "_construct":
                backend = resolve_backend_class(target)(spec)
                result: Any = (os.getpid(), engine_env)
            elif backend is None:
                raise RuntimeError("the hosted backend was not constructed")
            else:
                result = getattr(backend, method)(*args, **kwargs)
            reply: tuple[Any, ...] = ("ok", result)
        except BaseException as exc:  # everything goes back to the parent, nothing is lost here
            reply = ("error", _pack_error(exc))
        if conn is None:
            return
        try:
            conn.send(reply)
        except Exception as exc:  # an unpicklable result: say so instead of dying
            conn.send(("error", _pack_error(exc)))
        if method == "close":
            return


def _pack_error(exc: BaseException) -> dict[str, Any]:
    packed: dict[str, Any] = {
        "type": type(exc).__name__,
        "message": str(exc),
        "traceback": _tail(traceback.format_exc()),
    }
    if isinstance(exc, ConfigError):
        packed.update(field=exc.field, detail=exc.detail, source=exc.source)
    return packed


# -- the parent --------------------------------------------------------------------------------
class HostedBackend(Backend):
    """``target``'s backend running in a child process; same methods as any Backend.

    ``target`` is a registry name (``"vllm"``) or an import path (``"pkg.module:Class"``); the
    class is imported here too, which must be cheap (backends import their engine lazily), to
    expose its name and capabilities. ``start_timeout_s`` bounds ``start``; ``call_timeout_s``
    (None: no limit) bounds every other call. Both kill the child when exceeded.
    """

    name = "hosted"
    extra = ""

    def __init__(
        self,
        target: str | type[Backend],
        spec: BackendSpec,
        *,
        start_timeout_s: float = DEFAULT_START_TIMEOUT_S,
        call_timeout_s: float | None = None,
        log_dir: str | None = None,
    ) -> None:
        super().__init__(spec)
        hosted = resolve_backend_class(target)
        # Per instance: a host takes the name and abilities of the backend it runs.
        self.name = hosted.name  # type: ignore[misc]
        self.extra = hosted.extra  # type: ignore[misc]
        self.capabilities = hosted.capabilities  # type: ignore[misc]
        self.start_timeout_s = start_timeout_s
        self.call_timeout_s = call_timeout_s
        self._dead: str | None = None
        fd, log = tempfile.mkstemp(prefix=f"llmbench-{self.name}-", suffix=".log", dir=log_dir)
        os.close(fd)
        self.log_path = log
        ctx = multiprocessing.get_context("spawn")
        self._conn, child_conn = ctx.Pipe(duplex=True)
        # Not a daemon: engines start their own worker processes, which daemons may not.
        self._process = ctx.Process(
            target=_child_main,
            args=(child_conn, target, spec, log),
            name=f"llmbench-{self.name}",
            daemon=False,
        )
        self._process.start()
        child_conn.close()
        # A forgotten host must not keep the interpreter waiting for its child at exit.
        self._finalizer = weakref.finalize(self, _terminate, self._process)
        pid, engine_env = self._call("_construct", timeout_s=self.start_timeout_s)
        self.pid: int = pid
        # What the child set or inherited (backends/engine_env.py), shown in the engine details.
        self.engine_env: dict[str, str] = engine_env

    @classmethod
    def check_available(cls) -> str | None:
        return None  # the hosted class was checked by whoever chose it

    @property
    def alive(self) -> bool:
        return self._dead is None and self._process.is_alive()

    # -- forwarding ------------------------------------------------------------------------------
    def start(self) -> None:
        self._call("start", timeout_s=self.start_timeout_s)

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        result: list[Completion] = self._call("generate", list(requests))
        return result

    def serve(self, requests: Sequence[GenerationRequest], schedule: Schedule) -> list[Completion]:
        result: list[Completion] = self._call("serve", list(requests), schedule)
        return result

    def info(self) -> EngineInfo:
        info: EngineInfo = self._call("info")
        details = {**info.details, "engine_env": json.dumps(self.engine_env, sort_keys=True)}
        return dataclasses.replace(info, details=details)

    def encode(self, text: str) -> list[int]:
        result: list[int] = self._call("encode", text)
        return result

    def decode(self, token_ids: Sequence[int]) -> str:
        result: str = self._call("decode", list(token_ids))
        return result

    def token_logprobs(self, prompt_ids: Sequence[int], response_ids: Sequence[int]) -> list[float]:
        result: list[float] = self._call("token_logprobs", list(prompt_ids), list(response_ids))
        return result

    def greedy_token_ids(
        self, prompts: Sequence[Sequence[int]], output_tokens: int
    ) -> list[tuple[int, ...]]:
        result: list[tuple[int, ...]] = self._call(
            "greedy_token_ids", [list(p) for p in prompts], output_tokens
        )
        return result

    def speculative_counters(self) -> SpeculativeCounters | None:
        result: SpeculativeCounters | None = self._call("speculative_counters")
        return result

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """Any other method of the hosted backend (``generate_text``, ``token_logprobs``, ...)."""
        return self._call(method, *args, **kwargs)

    def close(self) -> None:
        """Close the engine in the child and wait for the child to exit; idempotent."""
        polite = self._dead is None and self._process.is_alive()
        if polite:
            try:
                # Closing a broken engine may fail: the process is ended below either way.
                with contextlib.suppress(EngineError):
                    self._call("close", timeout_s=_CLOSE_GRACE_S)
            except KeyboardInterrupt:
                # Ctrl-C while the session ends: stop waiting and end the child at once. Not
                # raised again: everything is being stopped already, and a traceback from the
                # clean-up would only hide what the session printed.
                polite = False
        self._mark_dead("closed")
        if polite:  # a child that failed, timed out or was interrupted is not waited for
            self._process.join(_CLOSE_GRACE_S)
        _terminate(self._process)
        self._conn.close()
        if self._process.exitcode == 0:
            with contextlib.suppress(OSError):
                os.unlink(self.log_path)

    # -- the round trip --------------------------------------------------------------------------
    def _call(self, method: str, *args: Any, timeout_s: float | None = None, **kwargs: Any) -> Any:
        if self._dead is not None:
            raise EngineError(
                f"{self.name} engine process is no longer usable ({self._dead}); "
                "start a new one for later work"
            )
        timeout = self.call_timeout_s if timeout_s is None else timeout_s
        try:
            self._conn.send((method, args, kwargs))
        except (BrokenPipeError, OSError):
            self._process.join(5)
            raise self._died(method) from None
        try:
            ready = multiprocessing.connection.wait([self._conn, self._process.sentinel], timeout)
        except BaseException:
            # Ctrl-C or SIGTERM mid-call: the child's reply would answer the next call. The host is
            # unusable; close() ends the child at once instead of waiting for the call to finish.
            self._mark_dead(f"{method} interrupted")
            raise
        if self._conn not in ready:
            if self._process.sentinel in ready:
                self._process.join(5)
                raise self._died(method)
            self._mark_dead(f"{method} timed out")
            _terminate(self._process)
            raise EngineError(
                f"{self.name} engine: {method} did not finish within {timeout:.0f} s; "
                f"process ended{self._log_tail()}"
            )
        try:
            status, payload = self._conn.recv()
        except (EOFError, OSError):
            self._process.join(5)
            raise self._died(method) from None
        if status == "ok":
            return payload
        raise self._raise_remote(method, payload)

    def _raise_remote(self, method: str, err: dict[str, Any]) -> Exception:
        kind = err["type"]
        if kind == "ConfigError":
            return ConfigError(err["field"], err["detail"], err["source"])
        for cls in (UnsupportedParameter, BackendUnavailable, QualityUnavailable, LLMBenchError):
            if kind == cls.__name__:
                return cls(err["message"])
        if kind == "NotImplementedError":
            return NotImplementedError(err["message"])
        message = err["message"] if kind == "EngineError" else f"{kind}: {err['message']}"
        # The engine's state is unknown after a failure: end it; the caller starts a new one.
        self._mark_dead(f"{method} failed")
        _terminate(self._process)
        return EngineError(f"{self.name} engine: {method} failed: {message}\n{err['traceback']}")

    def _died(self, method: str) -> EngineError:
        cause = last_exception_line(self._read_log())
        how = _describe_exit(self._process.exitcode, cause)
        self._mark_dead(f"process {how}")
        return EngineError(f"{self.name} engine process {how} during {method}{self._log_tail()}")

    def _mark_dead(self, why: str) -> None:
        if self._dead is None:
            self._dead = why

    def _read_log(self) -> str:
        try:
            return Path(self.log_path).read_text(errors="replace")
        except OSError:
            return ""

    def _log_tail(self) -> str:
        try:
            text = Path(self.log_path).read_text(errors="replace")
        except OSError:
            return ""
        tail = _tail(text)
        return f"\nlast lines of {self.log_path}:\n{tail}" if tail else f" (log: {self.log_path})"


def _terminate(process: Any, grace_s: float = 10.0) -> None:
    """End the child and every process it started (its process group).

    SIGTERM to the group first, so that engines shut their workers down, then SIGKILL to what
    is left of the group after ``grace_s``: an engine's workers may outlive the child.
    """
    group = process.pid
    if group is None:  # never started
        return
    if process.is_alive() or _group_alive(group):
        _signal_group(group, signal.SIGTERM)
        process.join(grace_s)
        deadline = time.monotonic() + grace_s
        while _group_alive(group) and time.monotonic() < deadline:
            time.sleep(0.1)
    _signal_group(group, signal.SIGKILL)
    if process.is_alive():
        process.kill()
    process.join(5)


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _signal_group(group: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, sig)
