"""Managed inference servers: the engine's own OpenAI-compatible server, started and stopped by us.

Command lines are built by pure functions (tested for every kind); :class:`ManagedServer` runs one
in its own process group with its log in a file, waits until it answers, and stops the whole group
(SIGTERM, then SIGKILL after a grace period) at close, at interpreter exit and on Ctrl-C.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_llmbench.errors import ConfigError, EngineError

SERVER_KINDS: tuple[str, ...] = ("vllm", "sglang", "tensorrt", "llamacpp")

# vLLM booleans whose default is "auto": False must be spelled out (argparse BooleanOptional).
_VLLM_TRISTATE = frozenset({"enable_prefix_caching", "enable_chunked_prefill"})


def vllm_flags(engine: Mapping[str, object]) -> list[str]:
    """vLLM engine arguments (``vllm.LLM`` keywords) -> ``api_server`` flags, in key order.

    vLLM's CLI is generated from the same EngineArgs fields: ``key_name`` -> ``--key-name``; True
    is a bare flag, False is omitted (or ``--no-key`` where the default is "auto"), mappings go
    as JSON (``--speculative-config '{...}'``), None is omitted.
    """
    args: list[str] = []
    for key, value in engine.items():
        if value is None:
            continue
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            if value:
                args.append(flag)
            elif key in _VLLM_TRISTATE:
                args.append("--no-" + flag[2:])
            continue
        if isinstance(value, (list, tuple)):
            args += [flag, *(str(v) for v in value)]
        elif isinstance(value, dict):
            args += [flag, json.dumps(value)]
        else:
            args += [flag, str(value)]
    return args


def engine_flags(config: Any, kind: str, model_path: str, scratch_dir: Path) -> list[str]:
    """The server flags (after the model) for ``config``, from the engine's own translation.

    The same functions build these as build the in-process engines' arguments (vllm_args,
    sglang_args, tensorrt_args), so a setting means the same thing offline and served.
    trtllm-serve reads settings without a flag from a YAML file, written into ``scratch_dir``.
    Sampling parameters are not here: they travel in each request.
    """
    from pytest_llmbench.compat import translate

    if kind == "vllm":
        from pytest_llmbench.backends.vllm.args import build_vllm_args

        engine = build_vllm_args(config, translate(config, "vllm"), strict=False).engine
        # The engine seed, as the in-process backend sets it (vllm.extra.seed wins).
        return vllm_flags({"seed": config.random_seed, **engine})
    if kind == "sglang":
        from pytest_llmbench.backends.sglang.args import sglang_server_args

        args = sglang_server_args(config, translate(config, "sglang"), model_path)
        # Its Prometheus /metrics (per-window server timings, server_metrics.py) is opt-in.
        return [*args[2:], "--enable-metrics"]  # after "--model-path PATH"
    if kind == "tensorrt":
        from pytest_llmbench.backends.tensorrt.args import (
            trtllm_extra_llm_api_options,
            trtllm_serve_args,
        )

        translation = translate(config, "tensorrt")
        extra = trtllm_extra_llm_api_options(config, translation, model_path)
        options_file = None
        if extra:
            import yaml

            options_file = str(scratch_dir / "extra_llm_api_options.yaml")
            Path(options_file).write_text(yaml.safe_dump(extra, sort_keys=True))
        return trtllm_serve_args(config, translation, model_path, options_file)[1:]
    if kind == "llamacpp":
        from pytest_llmbench.backends.llamacpp.args import server_args

        return server_args(config, native=llama_server_binary() is not None)
    raise ConfigError("--llm-server", f"{kind!r} is not one of {', '.join(SERVER_KINDS)}")


def missing_server(kind: str) -> str | None:
    """Why ``kind``'s server cannot start here (its package or program is absent), or None."""
    import importlib.util
    import shutil

    if kind in ("vllm", "sglang"):
        from pytest_llmbench.backends.registry import install_hint

        if importlib.util.find_spec(kind) is None:
            return f"--llm-server {kind}: {install_hint(kind)}; or pass --llm-server-url"
        if kind == "sglang":  # installed against another torch / kernel package: say which
            from pytest_llmbench.backends.sglang.install import sglang_problem

            problem = sglang_problem()
            if problem is not None:
                return f"--llm-server sglang: {problem}; or pass --llm-server-url"
        return None
    if kind == "llamacpp":
        if llama_server_binary() is not None:
            return None
        needed = ("llama_cpp", "uvicorn", "fastapi", "sse_starlette", "starlette_context")
        if any(importlib.util.find_spec(m) is None for m in needed):
            return (
                "--llm-server llamacpp needs llama-server on PATH or llama-cpp-python's server: "
                "pip install pytest-llmbench[llamacpp]; or pass --llm-server-url"
            )
        return None
    program = {"tensorrt": "trtllm-serve"}.get(kind)
    if program is not None and shutil.which(program) is None:
        return f"--llm-server {kind} needs {program} on PATH, or pass --llm-server-url"
    return None


def llama_server_binary() -> str | None:
    """llama.cpp's own ``llama-server`` when it is on PATH (preferred over the Python server)."""
    import shutil

    return shutil.which("llama-server")


def server_model_path(kind: str, config: Any, model_path: str) -> str:
    """What the server loads: llama.cpp servers need a GGUF, converted from a directory once."""
    if kind != "llamacpp" or model_path.endswith(".gguf"):
        return model_path
    from pytest_llmbench.backends.llamacpp.gguf_convert import ensure_gguf
    from pytest_llmbench.compat import translate

    gguf_type = translate(config, "llamacpp").engine["gguf_type"]
    return str(ensure_gguf(model_path, gguf_type))


def text_prompts(kind: str) -> bool:
    """Whether the managed server takes text prompts only (llama-cpp-python's completions)."""
    return kind == "llamacpp" and llama_server_binary() is None


def server_env(kind: str, device: str, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment added for a managed server, unless already set: every engine process's
    defaults (``backends/engine_env.py``: NVLink multicast off) and vLLM's CPU defaults."""
    from pytest_llmbench.backends.engine_env import missing_engine_env

    environ = os.environ if environ is None else environ
    added = missing_engine_env(environ)
    if kind == "vllm" and device == "cpu":
        from pytest_llmbench.backends.vllm.args import CPU_ENV_DEFAULTS

        added.update({k: v for k, v in CPU_ENV_DEFAULTS.items() if k not in environ})
    return added


def build_command(
    kind: str,
    model_path: str,
    host: str,
    port: int,
    flags: Sequence[str] = (),
    extra_args: Sequence[str] = (),
    python: str | None = None,
) -> list[str]:
    """The argv that starts ``kind``'s OpenAI-compatible server for ``model_path``.

    ``flags`` come from :func:`engine_flags`; ``extra_args`` (``--llm-server-arg``) go last, so
    the engine's own parser lets them override.
    """
    python = python or sys.executable
    if kind == "vllm":
        # ``python -m`` rather than the ``vllm`` script: it is absent or broken in some builds.
        head = [python, "-m", "vllm.entrypoints.openai.api_server", "--model", model_path]
    elif kind == "sglang":
        head = [python, "-m", "sglang.launch_server", "--model-path", model_path]
    elif kind == "tensorrt":
        head = ["trtllm-serve", model_path]
    elif kind == "llamacpp":
        if not model_path.endswith(".gguf"):
            raise ConfigError(
                "model_name", f"llama.cpp servers need a .gguf file, not {model_path!r}"
            )
        native = llama_server_binary()
        if native is not None:
            head = [native, "--model", model_path]
        else:
            head = [python, "-m", "llama_cpp.server", "--model", model_path]
    else:
        raise ConfigError("--llm-server", f"{kind!r} is not one of {', '.join(SERVER_KINDS)}")
    return [*head, "--host", host, "--port", str(port), *flags, *extra_args]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free right now on ``host`` (the server binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def log_tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a log file ('' when it cannot be read)."""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            text = f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


_LIVE: set[ManagedServer] = set()
_PREVIOUS_SIGINT: list[Any] = []  # the handler ours replaced, while servers run


def _stop_all() -> None:
    for server in list(_LIVE):
        server.stop()


atexit.register(_stop_all)


def _on_sigint(signum: int, frame: Any) -> None:
    """Ctrl-C: stop every server, then behave as the handler we replaced."""
    previous = _PREVIOUS_SIGINT[0] if _PREVIOUS_SIGINT else None
    _stop_all()
    if callable(previous):
        previous(signum, frame)
    else:
        raise KeyboardInterrupt


def _install_sigint() -> None:
    if _PREVIOUS_SIGINT:
        return
    # Outside the main thread this raises ValueError: close() and atexit still stop the servers.
    with contextlib.suppress(ValueError):
        _PREVIOUS_SIGINT.append(signal.signal(signal.SIGINT, _on_sigint))


def _restore_sigint() -> None:
    if _PREVIOUS_SIGINT:
        with contextlib.suppress(ValueError):
            signal.signal(signal.SIGINT, _PREVIOUS_SIGINT.pop())


@dataclass(eq=False)
class ManagedServer:
    """One server process group. ``start()`` returns once it answers; ``stop()`` is idempotent."""

    kind: str
    model_path: str
    flags: Sequence[str] = ()  # from engine_flags()
    host: str = "127.0.0.1"
    port: int = 0  # 0: a free port
    extra_args: Sequence[str] = ()
    env: Mapping[str, str] = field(default_factory=dict)  # added to os.environ
    startup_timeout_s: float = 900.0
    grace_s: float = 10.0
    log_path: Path | None = None

    def __post_init__(self) -> None:
        if self.kind not in SERVER_KINDS:
            raise ConfigError(
                "--llm-server", f"{self.kind!r} is not one of {', '.join(SERVER_KINDS)}"
            )
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def engine_env(self) -> dict[str, str]:
        """The engine-wide variables (``backends/engine_env.py``) as the server process has them."""
        from pytest_llmbench.backends.engine_env import ENGINE_ENV_DEFAULTS

        merged = {**os.environ, **self.env}
        return {k: merged[k] for k in ENGINE_ENV_DEFAULTS if k in merged}

    def command(self) -> list[str]:
        return build_command(
            self.kind, self.model_path, self.host, self.port, self.flags, self.extra_args
        )

    def start(self) -> str:
        """Start the server and wait until it is ready; its base URL. EngineError with the log."""
        if self.port == 0:
            self.port = free_port(self.host)
        if self.log_path is None:
            fd, name = tempfile.mkstemp(prefix=f"llmbench-{self.kind}-", suffix=".log")
            os.close(fd)
            self.log_path = Path(name)
        argv = self.command()
        with self.log_path.open("ab") as log:
            try:
                self._proc = subprocess.Popen(
                    argv,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env={**os.environ, **self.env},
                    start_new_session=True,  # its own process group: we stop workers too
                )
            except OSError as exc:
                raise EngineError(f"cannot start {self.kind} server ({argv[0]}): {exc}") from None
        _LIVE.add(self)
        _install_sigint()
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self.url

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if not self.alive():
                raise EngineError(self.failure(f"{self.kind} server exited during start-up"))
            if all(_http_ok(self.url + path) for path in self.ready_paths()):
                return
            time.sleep(0.5)
        raise EngineError(
            self.failure(f"{self.kind} server not ready after {self.startup_timeout_s:g} s")
        )

    def ready_paths(self) -> tuple[str, ...]:
        """Endpoints that answer once the server is ready (llama-cpp-python has no /health)."""
        if text_prompts(self.kind):
            return ("/v1/models",)
        return ("/health", "/v1/models")

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def failure(self, what: str, lines: int = 30) -> str:
        """``what`` plus the exit status and the log's last lines (for error messages)."""
        status = ""
        if self._proc is not None and self._proc.poll() is not None:
            code = self._proc.returncode
            status = f" (exit status {code})"
            if code < 0:  # Popen's way of saying "killed by a signal"
                with contextlib.suppress(ValueError):
                    status = f" (killed by {signal.Signals(-code).name})"
        tail = log_tail(self.log_path, lines) if self.log_path else ""
        return f"{what}{status}; log {self.log_path}, last lines:\n{tail}"

    def stop(self) -> None:
        """SIGTERM to the process group, SIGKILL after ``grace_s``; safe to call twice."""
        proc, self._proc = self._proc, None
        _LIVE.discard(self)
        if not _LIVE:
            _restore_sigint()
        if proc is None:
            return
        if proc.poll() is None:
            _signal_group(proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=self.grace_s)
        # Workers may outlive the leader: the group gets SIGKILL whatever the leader did.
        _signal_group(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=self.grace_s)

    def __enter__(self) -> ManagedServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _http_ok(url: str, timeout_s: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return 200 <= int(response.status) < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False
