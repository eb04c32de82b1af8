"""Which GPUs an engine uses, from its own arguments; a config asking for more is refused early."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_llmbench.backends.parallel import (
    GpuDemand,
    check_fits,
    engine_demand,
    sglang_demand,
    tensorrt_demand,
    vllm_demand,
)
from pytest_llmbench.config.load import parse_override, resolve_config
from pytest_llmbench.config.schema import ExperimentConfig
from pytest_llmbench.errors import ConfigError


def config(*overrides: str) -> ExperimentConfig:
    return resolve_config(overrides=[parse_override(o) for o in overrides])


TP2 = ("sharding.strategy=tensor_parallel", "sharding.num_devices=2")


@pytest.mark.parametrize(
    ("backend", "overrides", "expected"),
    [
        ("vllm", (), GpuDemand(1)),
        ("vllm", TP2, GpuDemand(2, ("sharding.num_devices",))),
        ("vllm", ("vllm.tensor_parallel_size=4",), GpuDemand(4, ("vllm.tensor_parallel_size",))),
        (
            "vllm",
            ("vllm.tensor_parallel_size=2", "vllm.extra.pipeline_parallel_size=2"),
            GpuDemand(4, ("vllm.tensor_parallel_size", "vllm.extra.pipeline_parallel_size")),
        ),
        (
            "vllm",
            ("sharding.strategy=pipeline_parallel", "sharding.num_devices=2"),
            GpuDemand(2, ("sharding.num_devices",)),
        ),
        ("sglang", TP2, GpuDemand(2, ("sharding.num_devices",))),
        (
            "sglang",
            ("sglang.tp_size=2", "sglang.dp_size=2"),
            GpuDemand(4, ("sglang.tp_size", "sglang.dp_size")),
        ),
        (
            "sglang",
            ("sglang.tp_size=2", "sglang.extra.base_gpu_id=1"),
            GpuDemand(2, ("sglang.tp_size",), first=1),
        ),
        (
            "sglang",
            ("sharding.strategy=pipeline_parallel", "sharding.num_devices=2"),
            GpuDemand(2, ("sharding.num_devices",)),
        ),
        ("tensorrt", TP2, GpuDemand(2, ("sharding.num_devices",))),
        (
            "tensorrt",
            ("tensorrt.tensor_parallel_size=2", "tensorrt.pipeline_parallel_size=2"),
            GpuDemand(4, ("tensorrt.tensor_parallel_size", "tensorrt.pipeline_parallel_size")),
        ),
        ("pytorch", (), GpuDemand(1)),
        ("pytorch", TP2, GpuDemand(2, ("sharding.num_devices",))),
        ("llamacpp", (), GpuDemand(1)),
    ],
)
def test_engine_gpus_come_from_the_engines_own_arguments(
    backend: str, overrides: tuple[str, ...], expected: GpuDemand
) -> None:
    assert engine_demand(config(*overrides), backend) == expected


def test_a_managed_server_uses_its_engines_gpus_and_an_external_one_none_of_ours() -> None:
    cfg = config("vllm.tensor_parallel_size=2")
    assert engine_demand(cfg, "openai", server="vllm") == GpuDemand(
        2, ("vllm.tensor_parallel_size",)
    )
    assert engine_demand(config(*TP2), "openai", server="sglang") == GpuDemand(
        2, ("sharding.num_devices",)
    )
    assert engine_demand(cfg, "openai", server="llamacpp") == GpuDemand(1)
    assert engine_demand(cfg, "openai", server=None) is None


def test_unknown_engines_and_refused_configs_have_no_answer() -> None:
    assert engine_demand(config(), "echo") is None  # a third-party backend
    clash = config(*TP2, "vllm.tensor_parallel_size=4")  # vLLM's builder refuses this
    assert engine_demand(clash, "vllm") is None


@given(
    st.integers(1, 8),
    st.integers(1, 4),
    st.integers(1, 4),
    st.integers(0, 4),
)
def test_an_engines_devices_are_its_world_from_its_first_gpu(
    tp: int, pp: int, dp: int, base: int
) -> None:
    vllm = vllm_demand(
        {"tensor_parallel_size": tp, "pipeline_parallel_size": pp, "data_parallel_size": dp}
    )
    assert vllm.cuda_devices == tuple(range(tp * pp * dp)) and vllm.needed == tp * pp * dp
    sglang = sglang_demand({"tp_size": tp, "pp_size": pp, "dp_size": dp, "base_gpu_id": base})
    assert sglang.cuda_devices == tuple(range(base, base + tp * pp * dp))
    assert sglang.needed == base + tp * pp * dp
    trt = tensorrt_demand({"tensor_parallel_size": tp, "pipeline_parallel_size": pp})
    assert trt.cuda_devices == tuple(range(tp * pp))
    assert vllm_demand({}).cuda_devices == sglang_demand({}).cuda_devices == (0,)


def test_more_gpus_than_visible_is_one_line_naming_the_key_and_both_numbers() -> None:
    demands = {"pytorch": GpuDemand(1), "vllm": GpuDemand(4, ("vllm.tensor_parallel_size",))}
    check_fits(demands, 4, "only 4 are visible")
    with pytest.raises(ConfigError) as error:
        check_fits(demands, 2, "only 2 are visible (CUDA_VISIBLE_DEVICES=0,1)")
    assert str(error.value) == (
        "vllm.tensor_parallel_size: the vllm engine uses 4 GPUs but only 2 are visible "
        "(CUDA_VISIBLE_DEVICES=0,1); lower it or make more GPUs visible"
    )
    with pytest.raises(ConfigError, match=r"^sglang.tp_size: the sglang engine uses 2 GPUs "
                       r"from CUDA device 1 but only 2 are;"):  # fmt: skip
        check_fits({"sglang": GpuDemand(2, ("sglang.tp_size",), first=1)}, 2, "only 2 are")
    product = GpuDemand(4, ("vllm.tensor_parallel_size", "vllm.extra.pipeline_parallel_size"))
    with pytest.raises(ConfigError, match=r"uses 4 GPUs \(vllm.tensor_parallel_size x "
                       r"vllm.extra.pipeline_parallel_size\) but only 2"):  # fmt: skip
        check_fits({"vllm": product}, 2, "only 2 are visible")
