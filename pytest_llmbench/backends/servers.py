"""Managed inference servers: the engine's own OpenAI-compatible server, started and stopped by us.

Command lines are built by pure functions (tested for every kind); :class:`ManagedServer` runs one
in its own process group with its log in a file, waits until it answers, and stops the whole group
(SIGTERM, then SIGKILL after a grace period) at close, at interpreter exit and on Ctrl-C.
"""

from __future__ import annotations

import atexit
import contextlib
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

# Engine setting (our native key) -> the server's flag. Keys absent here are passed through as
# ``--key-with-dashes`` (vLLM, SGLang) or ``--key_with_underscores`` (trtllm-serve).
_RENAMES: dict[str, dict[str, str]] = {
    "vllm": {"distributed_backend": "--distributed-executor-backend"},
    "sglang": {"tp_size": "--tp-size", "dp_size": "--dp-size"},
    "tensorrt": {
        "tensor_parallel_size": "--tp_size",
        "pipeline_parallel_size": "--pp_size",
        "free_gpu_memory_fraction": "--kv_cache_free_gpu_memory_fraction",
    },
    "llamacpp": {
        "context_length": "--ctx-size",
        "parallel": "--parallel",
        "n_gpu_layers": "--n-gpu-layers",
        "threads": "--threads",
    },
}
# Booleans whose engine default is "auto": False must be spelled out (argparse BooleanOptional).
_TRISTATE: dict[str, frozenset[str]] = {
    "vllm": frozenset({"enable_prefix_caching", "enable_chunked_prefill"}),
}


def _flag(kind: str, key: str) -> str:
    if key in _RENAMES.get(kind, {}):
        return _RENAMES[kind][key]
    if key.startswith("-"):
        return key  # already a flag (an ``extra`` entry written as the engine spells it)
    return "--" + (key if kind == "tensorrt" else key.replace("_", "-"))


def settings_args(kind: str, settings: Mapping[str, object]) -> list[str]:
    """Engine settings -> flags, in key order; None is omitted, True is a bare flag."""
    args: list[str] = []
    for key, value in settings.items():
        if value is None:
            continue
        flag = _flag(kind, key)
        if isinstance(value, bool):
            if value:
                args.append(flag)
            elif key in _TRISTATE.get(kind, frozenset()):
                args.append("--no-" + flag[2:])
            continue
        if isinstance(value, (list, tuple)):
            args.append(flag)
            args.extend(str(v) for v in value)
            continue
        if isinstance(value, dict):
            import json

            args += [flag, json.dumps(value)]
            continue
        args += [flag, str(value)]
    return args


def build_command(
    kind: str,
    model_path: str,
    host: str,
    port: int,
    settings: Mapping[str, object] | None = None,
    extra_args: Sequence[str] = (),
    python: str | None = None,
) -> list[str]:
    """The argv that starts ``kind``'s OpenAI-compatible server for ``model_path``."""
    python = python or sys.executable
    settings = settings or {}
    flags = settings_args(kind, settings)
    if kind == "vllm":
        # ``python -m`` rather than the ``vllm`` script: it is absent or broken in some builds.
        head = [python, "-m", "vllm.entrypoints.openai.api_server", "--model", model_path]
    elif kind == "sglang":
        head = [python, "-m", "sglang.launch_server", "--model-path", model_path]
    elif kind == "tensorrt":
        head = ["trtllm-serve", model_path]
    elif kind == "llamacpp":
        if not model_path.endswith(".gguf"):
            raise ConfigError("model_name", f"llama-server needs a .gguf file, not {model_path!r}")
        head = ["llama-server", "-m", model_path]
    else:
        raise ConfigError("--llm-server", f"{kind!r} is not one of {', '.join(SERVER_KINDS)}")
    return [*head, "--host", host, "--port", str(port), *flags, *extra_args]


def _nondefault(section: Any, keys: Sequence[str]) -> dict[str, object]:
    """Fields of a config section that differ from the section's defaults."""
    default = type(section)()
    return {k: getattr(section, k) for k in keys if getattr(section, k) != getattr(default, k)}


_VLLM_KEYS = (
    "tensor_parallel_size", "max_num_seqs", "max_num_batched_tokens", "gpu_memory_utilization",
    "swap_space", "cpu_offload_gb", "enable_prefix_caching", "enable_chunked_prefill",
    "kv_cache_dtype", "block_size", "max_model_len", "enforce_eager", "distributed_backend",
    "disable_custom_all_reduce", "load_format",
)  # fmt: skip
_SGLANG_KEYS = (
    "tp_size", "dp_size", "mem_fraction_static", "context_length", "chunked_prefill_size",
    "max_running_requests", "schedule_policy", "disable_radix_cache", "attention_backend",
    "kv_cache_dtype", "quantization",
)  # fmt: skip
_TENSORRT_KEYS = (
    "tensor_parallel_size", "pipeline_parallel_size", "max_batch_size", "max_num_tokens",
    "max_seq_len", "backend",
)  # fmt: skip


def server_settings(config: Any, kind: str) -> dict[str, object]:
    """Engine settings of a managed ``kind`` server from an ExperimentConfig.

    The universal parameters translated for ``kind`` (compat matrix) first, then the non-default
    fields of the engine's own section, then its ``extra`` mapping verbatim (later keys win).
    """
    from pytest_llmbench.compat import translate

    if kind == "llamacpp":
        return {}  # no section of its own yet; pass flags with server_args
    translated = translate(config, kind).engine
    settings: dict[str, object] = {}
    if kind == "vllm":
        settings.update(
            dtype=translated.get("dtype"),
            tensor_parallel_size=translated.get("tensor_parallel_size"),
            max_num_seqs=translated.get("max_num_seqs"),
            max_num_batched_tokens=translated.get("max_num_batched_tokens"),
            quantization=translated.get("quantization") or config.vllm.quantization_method,
        )
        settings.update(_nondefault(config.vllm, _VLLM_KEYS))
        settings.update(config.vllm.extra)
    elif kind == "sglang":
        settings.update(
            dtype=translated.get("dtype"),
            tp_size=translated.get("tp_size"),
            max_running_requests=translated.get("max_running_requests"),
            chunked_prefill_size=translated.get("chunked_prefill_size"),
        )
        settings.update(_nondefault(config.sglang, _SGLANG_KEYS))
        settings.update(config.sglang.extra)
    elif kind == "tensorrt":
        settings.update(
            tensor_parallel_size=translated.get("tensor_parallel_size"),
            max_batch_size=translated.get("max_batch_size"),
            max_num_tokens=translated.get("max_num_tokens"),
        )
        settings.update(_nondefault(config.tensorrt, _TENSORRT_KEYS))
        fraction = config.tensorrt.kv_cache_config.free_gpu_memory_fraction
        if fraction is not None:
            settings["free_gpu_memory_fraction"] = fraction
    else:
        raise ConfigError("--llm-server", f"{kind!r} is not one of {', '.join(SERVER_KINDS)}")
    if settings.get("dtype") == "auto":
        settings.pop("dtype")  # the server's own default
    return {k: v for k, v in settings.items() if v is not None}


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
    settings: Mapping[str, object] = field(default_factory=dict)
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

    def command(self) -> list[str]:
        return build_command(
            self.kind, self.model_path, self.host, self.port, self.settings, self.extra_args
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
            if _http_ok(self.url + "/health") and _http_ok(self.url + "/v1/models"):
                return
            time.sleep(0.5)
        raise EngineError(
            self.failure(f"{self.kind} server not ready after {self.startup_timeout_s:g} s")
        )

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def failure(self, what: str, lines: int = 30) -> str:
        """``what`` plus the exit status and the log's last lines (for error messages)."""
        status = ""
        if self._proc is not None and self._proc.poll() is not None:
            status = f" (exit status {self._proc.returncode})"
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
