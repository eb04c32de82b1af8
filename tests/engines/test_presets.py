"""The SGLang and TensorRT-LLM presets load and translate into engine arguments."""

from __future__ import annotations

from pathlib import Path

from pytest_llmbench import compat
from pytest_llmbench.backends.sglang import args as sglang_args
from pytest_llmbench.backends.tensorrt import args as tensorrt_args
from pytest_llmbench.config.load import resolve_config
from pytest_llmbench.config.schema import ExperimentConfig

# Read from this checkout's files: an editable install may resolve preset names elsewhere.
PRESETS = Path(__file__).parent.parent.parent / "configs" / "presets"


def preset(name: str) -> ExperimentConfig:
    return resolve_config(config_file=PRESETS / f"{name}.yaml")


def test_engine_presets_translate() -> None:
    shared = preset("sglang-shared-prefix")
    kwargs = sglang_args.engine_kwargs(shared, compat.translate(shared, "sglang"), "/m")
    assert kwargs["schedule_policy"] == "lpm" and "disable_radix_cache" not in kwargs
    fast = preset("sglang-throughput")
    kwargs = sglang_args.engine_kwargs(fast, compat.translate(fast, "sglang"), "/m")
    assert kwargs["max_running_requests"] == 256 and kwargs["disable_radix_cache"] is True
    low = preset("tensorrt-low-latency")
    plan = tensorrt_args.llm_plan(low, compat.translate(low, "tensorrt"), "/m")
    assert plan.llm_backend == "pytorch" and plan.kwargs["max_batch_size"] == 8
    assert plan.kwargs["cuda_graph_config"] == {"enable_padding": True, "max_batch_size": 8}
    high = preset("tensorrt-throughput")
    plan = tensorrt_args.llm_plan(high, compat.translate(high, "tensorrt"), "/m")
    assert plan.kwargs["kv_cache_config"] == {
        "free_gpu_memory_fraction": 0.9,
        "enable_block_reuse": False,
    }
