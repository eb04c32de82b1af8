"""The example configs validate and translate for every backend; the multi-GPU ones give each
engine the GPUs their comments promise, and a session refuses them where too few GPUs are
visible. A dry run: no engine starts and no GPU is needed (NVML is a fake at the boundary)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from pytest_llmbench import compat
from pytest_llmbench.backends.openai.servers import engine_flags
from pytest_llmbench.backends.parallel import GpuDemand, engine_demand
from pytest_llmbench.backends.sglang.args import engine_kwargs
from pytest_llmbench.backends.vllm.args import build_vllm_args
from pytest_llmbench.config.load import resolve_config
from tests.energy.fake_nvml import FakeGpu, FakeNvml, uuid

EXAMPLES = Path(__file__).resolve().parents[1] / "configs" / "examples"


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_validates_and_translates_for_every_backend(path: Path) -> None:
    config = resolve_config(config_file=path)
    for backend in compat.BACKENDS:
        assert compat.translate(config, backend).backend == backend


def test_vllm_tp2_runs_two_ranks_offline_and_served(tmp_path: Path) -> None:
    config = resolve_config(config_file=EXAMPLES / "vllm-tp2.yaml")
    engine = build_vllm_args(config, compat.translate(config, "vllm")).engine
    assert engine["tensor_parallel_size"] == 2
    flags = engine_flags(config, "vllm", "/m", tmp_path)
    assert flags[flags.index("--tensor-parallel-size") + 1] == "2"
    two = GpuDemand(2, ("sharding.num_devices",))
    assert engine_demand(config, "vllm") == engine_demand(config, "openai", server="vllm") == two


def test_sglang_tp2_runs_two_ranks(tmp_path: Path) -> None:
    config = resolve_config(config_file=EXAMPLES / "sglang-tp2.yaml")
    assert engine_kwargs(config, compat.translate(config, "sglang"), "/m")["tp_size"] == 2
    flags = engine_flags(config, "sglang", "/m", tmp_path)
    assert flags[flags.index("--tp-size") + 1] == "2"
    assert engine_demand(config, "sglang") == GpuDemand(2, ("sglang.tp_size",))


def test_pytorch_2gpu_places_layers_with_device_map_over_two_gpus() -> None:
    config = resolve_config(config_file=EXAMPLES / "pytorch-2gpu.yaml")
    assert compat.translate(config, "pytorch").engine["device_map"] == "auto"
    assert engine_demand(config, "pytorch") == GpuDemand(2, ("sharding.num_devices",))


def test_xdist_per_worker_engines_fit_one_gpu_each() -> None:
    config = resolve_config(config_file=EXAMPLES / "xdist-per-worker.yaml")
    for backend in ("pytorch", "vllm", "sglang", "tensorrt"):
        assert engine_demand(config, backend) == GpuDemand(1), backend


BENCH = """
def test_bench(llm_bench):
    llm_bench(num_prompts=1, input_tokens=4, output_tokens=2)
"""


@pytest.mark.parametrize(
    ("example", "backend"),
    [("vllm-tp2.yaml", "vllm"), ("sglang-tp2.yaml", "sglang"), ("pytorch-2gpu.yaml", "pytorch")],
)
def test_a_session_takes_the_example_with_two_gpus_and_refuses_it_with_one(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, example: str, backend: str
) -> None:
    pytester.makepyfile(test_bench=BENCH)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    args = ("--collect-only", "-q", "--llm-backend", backend)
    args += ("--llm-config", str(EXAMPLES / example), "--llm-energy", "none")
    two = FakeNvml([FakeGpu(uuid(0)), FakeGpu(uuid(1))])
    monkeypatch.setitem(sys.modules, "pynvml", two)
    assert pytester.runpytest_inprocess(*args).ret == pytest.ExitCode.OK
    one = FakeNvml([FakeGpu(uuid(0))])
    monkeypatch.setitem(sys.modules, "pynvml", one)
    refused = pytester.runpytest_inprocess(*args)
    assert refused.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in refused.stderr.lines if line.startswith("ERROR:")]
    assert len(errors) == 1
    assert "GPUs" in errors[0] and "only 1 is visible (CUDA_VISIBLE_DEVICES=unset)" in errors[0]
    assert two.initialised == one.initialised == 0  # every NVML session was shut
