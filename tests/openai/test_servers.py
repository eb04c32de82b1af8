"""Managed servers: command lines per engine (pure) and the lifecycle (with a stand-in process)."""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
import yaml

from pytest_llmbench.backends.openai import servers
from pytest_llmbench.backends.openai.servers import (
    SERVER_KINDS,
    ManagedServer,
    build_command,
    engine_flags,
    server_env,
    vllm_flags,
)
from pytest_llmbench.config.engines import (
    SglangConfig,
    TensorrtConfig,
    VllmConfig,
    VllmSpeculativeConfig,
)
from pytest_llmbench.config.schema import BatchingConfig, ExperimentConfig, ShardingConfig
from pytest_llmbench.errors import ConfigError, EngineError

PY = "/usr/bin/python3"


def test_vllm_command() -> None:
    flags = vllm_flags(
        {
            "dtype": "bfloat16",
            "max_model_len": 512,
            "enforce_eager": True,
            "enable_prefix_caching": False,
            "disable_sliding_window": False,
            "tensor_parallel_size": 2,
            "distributed_executor_backend": "mp",
            "speculative_config": {"method": "ngram", "num_speculative_tokens": 3},
            "quantization": None,
        }
    )
    assert build_command("vllm", "/m", "127.0.0.1", 8001, flags, ["--seed", "1"], PY) == [
        PY, "-m", "vllm.entrypoints.openai.api_server", "--model", "/m",
        "--host", "127.0.0.1", "--port", "8001",
        "--dtype", "bfloat16", "--max-model-len", "512", "--enforce-eager",
        "--no-enable-prefix-caching", "--tensor-parallel-size", "2",
        "--distributed-executor-backend", "mp",
        "--speculative-config", '{"method": "ngram", "num_speculative_tokens": 3}',
        "--seed", "1",
    ]  # fmt: skip


def test_other_commands() -> None:
    assert build_command("sglang", "/m", "0.0.0.0", 30000, ["--tp-size", "2"], python=PY) == [
        PY, "-m", "sglang.launch_server", "--model-path", "/m", "--host", "0.0.0.0",
        "--port", "30000", "--tp-size", "2",
    ]  # fmt: skip
    assert build_command("tensorrt", "/m", "127.0.0.1", 8000, ["--tp_size", "4"]) == [
        "trtllm-serve", "/m", "--host", "127.0.0.1", "--port", "8000", "--tp_size", "4",
    ]  # fmt: skip
    with pytest.raises(ConfigError, match="servers need a .gguf file"):
        build_command("llamacpp", "/m/dir", "127.0.0.1", 8080)


def test_llamacpp_prefers_llama_server_and_falls_back_to_the_python_server(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr("shutil.which", lambda program: "/usr/bin/llama-server")
    assert build_command("llamacpp", "/m/model.gguf", "127.0.0.1", 8080, (), ["-c", "4096"]) == [
        "/usr/bin/llama-server", "--model", "/m/model.gguf", "--host", "127.0.0.1",
        "--port", "8080", "-c", "4096",
    ]  # fmt: skip
    assert engine_flags(CONFIG, "llamacpp", "/m.gguf", tmp_path) == [
        "--ctx-size", "2048", "--batch-size", "512", "--flash-attn", "off", "--seed", "7",
    ]  # fmt: skip
    assert not servers.text_prompts("llamacpp")
    assert servers.ManagedServer("llamacpp", "/m.gguf").ready_paths() == ("/health", "/v1/models")
    monkeypatch.setattr("shutil.which", lambda program: None)
    assert build_command("llamacpp", "/m/model.gguf", "127.0.0.1", 8080, python=PY) == [
        PY, "-m", "llama_cpp.server", "--model", "/m/model.gguf", "--host", "127.0.0.1",
        "--port", "8080",
    ]  # fmt: skip
    assert engine_flags(CONFIG, "llamacpp", "/m.gguf", tmp_path) == [
        "--n_ctx", "2048", "--n_batch", "512", "--seed", "7", "--interrupt_requests", "false",
    ]  # fmt: skip
    assert servers.text_prompts("llamacpp")  # its completions take text, not token ids
    assert servers.ManagedServer("llamacpp", "/m.gguf").ready_paths() == ("/v1/models",)


def test_unknown_kind() -> None:
    with pytest.raises(ConfigError, match="^--llm-server: 'tgi' is not one of"):
        build_command("tgi", "/m", "h", 1)
    with pytest.raises(ConfigError, match="^--llm-server: 'tgi' is not one of"):
        engine_flags(ExperimentConfig(), "tgi", "/m", Path("."))


CONFIG = ExperimentConfig(
    fp_precision="float16",
    random_seed=7,
    sharding=ShardingConfig(strategy="tensor_parallel", num_devices=2),
    batching=BatchingConfig(batch_size=32),
    vllm=VllmConfig(
        max_model_len=512,
        enforce_eager=True,
        enable_prefix_caching=False,
        speculative=VllmSpeculativeConfig(method="ngram", num_tokens=3, ngram_max=4),
        extra={"max_logprobs": 3},
    ),
    sglang=SglangConfig(context_length=1024, extra={"enable_torch_compile": True}),
    tensorrt=TensorrtConfig(max_seq_len=2048, extra={"enable_chunked_prefill": True}),
)


def test_served_flags_are_the_offline_engines_arguments(tmp_path: Path) -> None:
    """Same builders as the in-process engines: every setting reaches the server, none invented."""
    from pytest_llmbench.backends.sglang.args import engine_kwargs
    from pytest_llmbench.backends.vllm.args import build_vllm_args
    from pytest_llmbench.compat import translate

    engine = build_vllm_args(CONFIG, translate(CONFIG, "vllm"), strict=False).engine
    vllm = engine_flags(CONFIG, "vllm", "/m", tmp_path)
    assert vllm == vllm_flags({"seed": 7, **engine})
    for flag in ("--dtype", "--tensor-parallel-size", "--max-num-seqs", "--max-model-len",
                 "--enforce-eager", "--no-enable-prefix-caching", "--speculative-config",
                 "--max-logprobs", "--seed"):  # fmt: skip
        assert flag in vllm, flag
    spec = json.loads(vllm[vllm.index("--speculative-config") + 1])
    assert spec["num_speculative_tokens"] == 3 and spec["prompt_lookup_max"] == 4

    sglang = engine_flags(CONFIG, "sglang", "/m", tmp_path)
    kwargs = engine_kwargs(CONFIG, translate(CONFIG, "sglang"), "/m")
    assert "--model-path" not in sglang
    for key in kwargs.keys() - {"model_path"}:
        assert "--" + key.replace("_", "-") in sglang, key
    assert "--enable-torch-compile" in sglang and "--random-seed" in sglang
    assert sglang[-1] == "--enable-metrics"  # its /metrics, read around every window

    trt = engine_flags(CONFIG, "tensorrt", "/m", tmp_path)
    assert trt[:2] == ["--backend", "pytorch"] and "--max_seq_len" in trt
    options = Path(trt[trt.index("--extra_llm_api_options") + 1])
    assert options.parent == tmp_path
    assert yaml.safe_load(options.read_text())["enable_chunked_prefill"] is True


def test_default_config_passes_no_vllm_flags(tmp_path: Path) -> None:
    assert engine_flags(ExperimentConfig(), "vllm", "/m", tmp_path) == ["--seed", "0"]
    seeded = ExperimentConfig(vllm=VllmConfig(extra={"seed": 5}))
    assert engine_flags(seeded, "vllm", "/m", tmp_path) == ["--seed", "5"]


def test_vllm_cpu_server_gets_a_bounded_kv_cache_unless_set() -> None:
    user = {"NCCL_NVLS_ENABLE": "1"}  # the engine-wide default is tested below
    assert server_env("vllm", "cpu", user) == {"VLLM_CPU_KVCACHE_SPACE": "1"}
    assert server_env("vllm", "cpu", {**user, "VLLM_CPU_KVCACHE_SPACE": "4"}) == {}
    assert server_env("vllm", "cuda", user) == {}
    assert server_env("sglang", "cpu", user) == {}


@pytest.mark.parametrize("kind", SERVER_KINDS)
@pytest.mark.parametrize("device", ["cuda", "cpu"])
def test_every_managed_server_keeps_nvlink_multicast_off_unless_the_user_set_it(
    kind: str, device: str
) -> None:
    assert server_env(kind, device, {})["NCCL_NVLS_ENABLE"] == "0"
    for users in ("1", "0", ""):  # whatever the user exported is inherited, never replaced
        assert "NCCL_NVLS_ENABLE" not in server_env(kind, device, {"NCCL_NVLS_ENABLE": users})


@pytest.mark.skipif(
    importlib.util.find_spec("vllm") is None, reason="vLLM is not installed (its parser checks)"
)
def test_the_installed_vllm_server_parses_our_flags(tmp_path: Path) -> None:
    """vLLM's own api_server argument parser accepts every flag we build (no engine started)."""
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    for where in ("vllm.entrypoints.launchers.cli_args", "vllm.entrypoints.openai.cli_args"):
        if importlib.util.find_spec(where) is not None:
            make_arg_parser = importlib.import_module(where).make_arg_parser
            break
    else:
        pytest.fail("the installed vLLM has no api_server argument parser where we look")
    config = ExperimentConfig(vllm=VllmConfig(max_model_len=512, enable_prefix_caching=False))
    argv = ["--model", "/m", *engine_flags(config, "vllm", "/m", tmp_path), "--port", "1"]
    parsed = make_arg_parser(FlexibleArgumentParser()).parse_args(argv)
    assert parsed.max_model_len == 512 and parsed.enable_prefix_caching is False
    assert parsed.seed == 0
    every = make_arg_parser(FlexibleArgumentParser()).parse_args(
        ["--model", "/m", *engine_flags(CONFIG, "vllm", "/m", tmp_path)]
    )
    assert every.tensor_parallel_size == 2 and every.max_num_seqs == 32 and every.seed == 7
    assert every.enforce_eager is True and every.max_logprobs == 3


# -- lifecycle with a stand-in process -------------------------------------------------------------

SCRIPT = str(Path(__file__).with_name("fake_server_proc.py"))


@pytest.fixture
def stand_in(monkeypatch: pytest.MonkeyPatch) -> None:
    """ManagedServer runs fake_server_proc.py instead of an engine (same flags: --host/--port)."""

    def command(
        kind: str, model_path: str, host: str, port: int, flags: object = (),
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
    assert not server.alive()
    deadline = time.monotonic() + 30  # signalled by stop(); gone once it next gets a core
    while pid_alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
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
        with pytest.raises(EngineError) as failed:
            backend.generate(requests(1))
    finally:
        backend.close()
    error = str(failed.value)
    assert "the vllm server died" in error and "exit status 3" in error
    assert "fatal: simulated engine crash" in error


@pytest.mark.parametrize("exported", [None, "1"])
def test_the_server_process_runs_with_nvlink_multicast_off_unless_the_user_exported_it(
    stand_in: None, tiny_model: Path, monkeypatch: pytest.MonkeyPatch, exported: str | None
) -> None:
    from openai_fakes import make_backend

    if exported is None:
        monkeypatch.delenv("NCCL_NVLS_ENABLE", raising=False)
    else:
        monkeypatch.setenv("NCCL_NVLS_ENABLE", exported)
    backend = make_backend(tiny_model, startup_timeout_s=30)
    backend.start()
    try:
        info = backend.info()
        assert backend._server is not None and backend._server.log_path is not None
        log = backend._server.log_path.read_text()
    finally:
        backend.close()
    expected = "0" if exported is None else exported
    assert f"NCCL_NVLS_ENABLE={expected}" in log.splitlines()  # what the process itself saw
    assert json.loads(info.details["engine_env"]) == {"NCCL_NVLS_ENABLE": expected}


def test_a_missing_server_program_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    monkeypatch.setattr("shutil.which", lambda program: None)
    assert servers.missing_server("vllm") == (
        "--llm-server vllm: Backend 'vllm' requires extra dependencies. "
        "Install with: pip install pytest-llmbench[vllm]; or pass --llm-server-url"
    )
    assert "needs trtllm-serve on PATH" in str(servers.missing_server("tensorrt"))
    assert "needs llama-server on PATH or llama-cpp-python's server" in str(
        servers.missing_server("llamacpp")
    )


def test_managed_server_without_its_engine_skips_the_tests(
    echo_pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(servers, "missing_server", lambda kind: f"no {kind} here (test)")
    result = echo_pytester.runpytest_inprocess("--llm-backend", "openai", "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*SKIPPED*no vllm here (test)*"])
