"""Managed servers: command lines per engine (pure) and the lifecycle (with a stand-in process)."""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from pytest_llmbench.backends import servers
from pytest_llmbench.backends.servers import ManagedServer, build_command, server_settings
from pytest_llmbench.config.engines import SglangConfig, TensorrtConfig, VllmConfig
from pytest_llmbench.config.schema import BatchingConfig, ExperimentConfig, ShardingConfig
from pytest_llmbench.errors import ConfigError, EngineError

PY = "/usr/bin/python3"


def test_vllm_command() -> None:
    settings = {
        "dtype": "bfloat16",
        "max_model_len": 512,
        "enforce_eager": True,
        "enable_prefix_caching": False,
        "tensor_parallel_size": 2,
        "distributed_backend": "mp",
    }
    assert build_command("vllm", "/m", "127.0.0.1", 8001, settings, ["--seed", "1"], PY) == [
        PY, "-m", "vllm.entrypoints.openai.api_server", "--model", "/m",
        "--host", "127.0.0.1", "--port", "8001",
        "--dtype", "bfloat16", "--max-model-len", "512", "--enforce-eager",
        "--no-enable-prefix-caching", "--tensor-parallel-size", "2",
        "--distributed-executor-backend", "mp", "--seed", "1",
    ]  # fmt: skip


def test_sglang_command() -> None:
    settings = {"tp_size": 2, "mem_fraction_static": 0.8, "disable_radix_cache": True}
    assert build_command("sglang", "/m", "0.0.0.0", 30000, settings, python=PY) == [
        PY, "-m", "sglang.launch_server", "--model-path", "/m", "--host", "0.0.0.0",
        "--port", "30000", "--tp-size", "2", "--mem-fraction-static", "0.8",
        "--disable-radix-cache",
    ]  # fmt: skip


def test_tensorrt_command() -> None:
    settings = {"tensor_parallel_size": 4, "max_batch_size": 64, "free_gpu_memory_fraction": 0.9}
    assert build_command("tensorrt", "/m", "127.0.0.1", 8000, settings) == [
        "trtllm-serve", "/m", "--host", "127.0.0.1", "--port", "8000", "--tp_size", "4",
        "--max_batch_size", "64", "--kv_cache_free_gpu_memory_fraction", "0.9",
    ]  # fmt: skip


def test_llamacpp_command() -> None:
    settings = {"context_length": 4096, "parallel": 8, "n_gpu_layers": 99}
    assert build_command("llamacpp", "/m/model.gguf", "127.0.0.1", 8080, settings) == [
        "llama-server", "-m", "/m/model.gguf", "--host", "127.0.0.1", "--port", "8080",
        "--ctx-size", "4096", "--parallel", "8", "--n-gpu-layers", "99",
    ]  # fmt: skip
    with pytest.raises(ConfigError, match="needs a .gguf file"):
        build_command("llamacpp", "/m/dir", "127.0.0.1", 8080)


def test_unknown_kind() -> None:
    with pytest.raises(ConfigError, match="^--llm-server: 'tgi' is not one of"):
        build_command("tgi", "/m", "h", 1)


def test_server_settings_follow_the_config() -> None:
    config = ExperimentConfig(
        fp_precision="float16",
        sharding=ShardingConfig(strategy="tensor_parallel", num_devices=2),
        batching=BatchingConfig(batch_size=32),
        vllm=VllmConfig(max_model_len=512, enforce_eager=True, extra={"seed": 3}),
        sglang=SglangConfig(context_length=1024),
        tensorrt=TensorrtConfig(max_seq_len=2048),
    )
    assert server_settings(config, "vllm") == {
        "dtype": "float16",
        "tensor_parallel_size": 2,
        "max_num_seqs": 32,
        "max_model_len": 512,
        "enforce_eager": True,
        "seed": 3,
    }
    assert server_settings(config, "sglang") == {
        "dtype": "float16",
        "tp_size": 2,
        "max_running_requests": 32,
        "context_length": 1024,
    }
    assert server_settings(config, "tensorrt") == {
        "tensor_parallel_size": 2,
        "max_batch_size": 32,
        "max_seq_len": 2048,
    }
    assert server_settings(ExperimentConfig(), "vllm") == {"tensor_parallel_size": 1}


# -- lifecycle with a stand-in process -------------------------------------------------------------

SCRIPT = str(Path(__file__).with_name("fake_server_proc.py"))


@pytest.fixture
def stand_in(monkeypatch: pytest.MonkeyPatch) -> None:
    """ManagedServer runs fake_server_proc.py instead of an engine (same flags: --host/--port)."""

    def command(
        kind: str, model_path: str, host: str, port: int, settings: object = None,
        extra_args: Sequence[str] = (), python: str | None = None,
    ) -> list[str]:  # fmt: skip
        return [sys.executable, SCRIPT, "--host", host, "--port", str(port), *extra_args]

    monkeypatch.setattr(servers, "build_command", command)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie child of ours counts as gone
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False


def child_pid(server: ManagedServer) -> int:
    assert server.log_path is not None
    for _ in range(50):
        match = re.search(r"child pid (\d+)", server.log_path.read_text())
        if match:
            return int(match.group(1))
        time.sleep(0.1)
    raise AssertionError("no child pid in the log")


def test_start_ready_and_stop_the_whole_group(stand_in: None, tmp_path: Path) -> None:
    server = ManagedServer("vllm", "/m", log_path=tmp_path / "s.log", grace_s=2)
    url = server.start()
    assert url == f"http://127.0.0.1:{server.port}" and server.port > 0
    child = child_pid(server)
    assert server.alive() and pid_alive(child)
    server.stop()
    server.stop()  # idempotent
    time.sleep(0.2)
    assert not server.alive()
    assert not pid_alive(child)  # the worker of the group went too


def test_crash_at_start_shows_the_log_tail(stand_in: None, tmp_path: Path) -> None:
    server = ManagedServer(
        "vllm", "/m", extra_args=["--mode", "crash"], log_path=tmp_path / "c.log"
    )
    with pytest.raises(
        EngineError, match=r"(?s)exited during start-up \(exit status 1\).*out of memory"
    ):
        server.start()


def test_not_ready_in_time_is_an_error_and_stops_it(stand_in: None, tmp_path: Path) -> None:
    server = ManagedServer(
        "vllm", "/m", extra_args=["--mode", "never"], startup_timeout_s=1.5, grace_s=2
    )
    with pytest.raises(EngineError, match=r"(?s)not ready after 1.5 s.*serving"):
        server.start()
    assert not server.alive()


def test_server_dying_mid_run_fails_the_request_with_its_log(
    stand_in: None, tiny_model: Path
) -> None:
    from openai_fakes import make_backend, requests

    backend = make_backend(tiny_model, server_args=("--mode", "die"), startup_timeout_s=30)
    backend.start()
    try:
        [c] = backend.generate(requests(1))
    finally:
        backend.close()
    assert c.error is not None
    assert "the vllm server died" in c.error and "exit status 3" in c.error
    assert "fatal: simulated engine crash" in c.error
