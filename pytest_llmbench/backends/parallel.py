"""Which GPUs an engine uses: tensor x pipeline x data parallel, from the engine's own arguments.

One answer serves two callers: the backends' ``EngineInfo.cuda_devices`` (the devices the energy
meter reads) and the session's check, before any engine starts, that a config asking for more
GPUs than this process can see is a usage error rather than an engine that hangs in NCCL setup
or dies after a minute of loading.

Engines number their GPUs from the first visible one: vLLM's ranks take CUDA devices
0..world-1, SGLang's ``base_gpu_id``..``base_gpu_id``+world-1 (``gpu_id_step`` 1), TensorRT-LLM's
0..world-1. transformers' ``device_map`` places parameters itself; its devices are read from the
loaded model (``backends/pytorch``), and ``sharding.num_devices`` bounds them.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pytest_llmbench.config.schema import ExperimentConfig
from pytest_llmbench.errors import ConfigError, LLMBenchError

SHARDING_KEY = "sharding.num_devices"


@dataclass(frozen=True)
class GpuDemand:
    """CUDA ordinals ``first`` .. ``first + count - 1``; ``keys``: the config keys that set them."""

    count: int
    keys: tuple[str, ...] = ()
    first: int = 0

    @property
    def cuda_devices(self) -> tuple[int, ...]:
        return tuple(range(self.first, self.first + self.count))

    @property
    def needed(self) -> int:
        """How many GPUs must be visible (ordinals start at 0)."""
        return self.first + self.count


def _size(engine: Mapping[str, Any], key: str) -> int:
    return int(engine.get(key) or 1)


def vllm_demand(engine: Mapping[str, Any], sources: Mapping[str, str] | None = None) -> GpuDemand:
    """vLLM's world: tensor_parallel_size x pipeline_parallel_size x data_parallel_size."""
    names = ("tensor_parallel_size", "pipeline_parallel_size", "data_parallel_size")
    return _product(engine, names, sources or {}, "vllm")


def sglang_demand(kwargs: Mapping[str, Any]) -> GpuDemand:
    """SGLang's world: tp_size x pp_size x dp_size, from ``base_gpu_id``."""
    demand = _product(kwargs, ("tp_size", "pp_size", "dp_size"), {}, "sglang")
    return GpuDemand(demand.count, demand.keys, int(kwargs.get("base_gpu_id") or 0))


def tensorrt_demand(kwargs: Mapping[str, Any]) -> GpuDemand:
    """TensorRT-LLM's world: tensor_parallel_size x pipeline_parallel_size."""
    return _product(kwargs, ("tensor_parallel_size", "pipeline_parallel_size"), {}, "tensorrt")


def _product(
    engine: Mapping[str, Any], names: tuple[str, ...], sources: Mapping[str, str], section: str
) -> GpuDemand:
    count = 1
    keys = []
    for name in names:
        size = _size(engine, name)
        count *= size
        if size != 1:
            keys.append(sources.get(name, f"{section}.{name}"))
    return GpuDemand(count, tuple(keys))


def engine_demand(
    config: ExperimentConfig, backend: str, *, server: str | None = None
) -> GpuDemand | None:
    """The GPUs ``backend``'s engine takes under ``config``; None when unknown.

    ``server``: the kind of server the ``openai`` backend starts (None: an external server,
    whose GPUs are not ours). Unknown: a third-party backend, an external server, or a config
    the engine's own argument builder refuses (that error is reported when the engine starts).
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the session warns about untranslated keys once
            return _demand(config, backend, server)
    except LLMBenchError:
        return None


def _demand(config: ExperimentConfig, backend: str, server: str | None) -> GpuDemand | None:
    from pytest_llmbench.compat import translate

    if backend == "openai":
        if server is None:
            return None
        return GpuDemand(1) if server == "llamacpp" else _demand(config, server, None)
    if backend == "vllm":
        from pytest_llmbench.backends.vllm.args import build_vllm_args

        built = build_vllm_args(config, translate(config, "vllm"), strict=False)
        # The universal translation's source is sharding.strategy; the count is num_devices.
        sources = {
            k: SHARDING_KEY if v.startswith("sharding.") else v for k, v in built.sources.items()
        }
        return vllm_demand(built.engine, sources)
    if backend == "sglang":
        from pytest_llmbench.backends.sglang.args import engine_kwargs

        kwargs = engine_kwargs(config, translate(config, "sglang"), "")
        demand = sglang_demand(kwargs)
        keys = tuple(_sglang_key(config, key) for key in demand.keys)
        return GpuDemand(demand.count, keys, demand.first)
    if backend == "tensorrt":
        from pytest_llmbench.backends.tensorrt.args import llm_plan

        plan = llm_plan(config, translate(config, "tensorrt"), "")
        demand = tensorrt_demand(plan.kwargs)
        keys = tuple(_tensorrt_key(config, key) for key in demand.keys)
        return GpuDemand(demand.count, keys)
    if backend == "pytorch":
        if config.sharding.strategy == "none":
            return GpuDemand(1)
        return GpuDemand(config.sharding.num_devices, (SHARDING_KEY,))
    if backend == "llamacpp":
        return GpuDemand(1)
    return None


def _sglang_key(config: ExperimentConfig, key: str) -> str:
    """The config key behind an SGLang size: its typed field, else ``sharding.num_devices``."""
    field = key.removeprefix("sglang.")
    if field in config.sglang.extra:
        return f"sglang.extra.{field}"
    if field == "tp_size" and config.sglang.tp_size is None:
        return SHARDING_KEY
    if field == "pp_size":
        return SHARDING_KEY
    return key


def _tensorrt_key(config: ExperimentConfig, key: str) -> str:
    field = key.removeprefix("tensorrt.")
    typed = {
        "tensor_parallel_size": config.tensorrt.tensor_parallel_size,
        "pipeline_parallel_size": (
            None
            if config.tensorrt.pipeline_parallel_size == 1
            else config.tensorrt.pipeline_parallel_size
        ),
    }
    return key if typed.get(field) is not None else SHARDING_KEY


def check_fits(demands: Mapping[str, GpuDemand], visible: int, where: str) -> None:
    """ConfigError naming the config key of the first engine that needs more than ``visible``
    GPUs; ``where`` completes "but ..." (e.g. ``only 2 are visible (CUDA_VISIBLE_DEVICES=0,1)``)."""
    for backend, demand in demands.items():
        if demand.needed <= visible:
            continue
        key = demand.keys[0] if demand.keys else SHARDING_KEY
        first = f" from CUDA device {demand.first}" if demand.first else ""
        product = f" ({' x '.join(demand.keys)})" if len(demand.keys) > 1 else ""
        raise ConfigError(
            key,
            f"the {backend} engine uses {demand.count} GPUs{first}{product} but {where}; "
            "lower it or make more GPUs visible",
        )
