"""ExperimentConfig -> ``tensorrt_llm.LLM(**kwargs)``, SamplingParams fields, trtllm-serve flags.

Pure: nothing here imports TensorRT-LLM; config objects are described as plain dicts that
``backends/tensorrt/backend.py`` turns into ``KvCacheConfig`` / ``QuantConfig`` / ``BuildConfig``.
Written against NVIDIA/TensorRT-LLM (``tensorrt_llm/llmapi/llm_args.py`` at commit
fcd3f31682808ae56118ae43c1d7864a3a945e6f, ``llmapi/llm.py``
4c05a74891e4df8066f08ed4ce14b0972abe4e25,
``sampling_params.py`` a98a9061d72f6fd39f5d055ebdd2c6878a100e2c, ``commands/serve.py``
4c05a74891e4df8066f08ed4ce14b0972abe4e25; the 1.x line), read, never run: TensorRT-LLM needs
CUDA and was not installed where this was written.

What the code relies on, from that source:

- ``tensorrt_llm.LLM`` is the PyTorch backend (1.0+); the TensorRT-engine LLM is
  ``tensorrt_llm._tensorrt_engine.LLM`` (before 1.0, ``tensorrt_llm.LLM`` itself). Only the
  engine LLM (``TrtLlmArgs``) accepts ``build_config``, ``quant_config`` and a prebuilt engine
  directory as ``model``; the PyTorch LLM refuses those keys, and the engine LLM asserts
  ``KvCacheConfig.dtype == "auto"``.
- Common arguments: ``model``, ``tokenizer``, ``tensor_parallel_size``,
  ``pipeline_parallel_size``, ``dtype``, ``max_batch_size``, ``max_num_tokens``, ``max_seq_len``,
  ``kv_cache_config=KvCacheConfig(free_gpu_memory_fraction, enable_block_reuse, dtype)``.
- ``SamplingParams``: ``max_tokens``, ``min_tokens``, ``ignore_eos`` (older releases: the
  ``end_id=-1`` idiom), ``top_k`` (None: all), ``top_p``, ``temperature``, ``min_p``,
  ``repetition_penalty``, ``no_repeat_ngram_size``, ``seed``. Greedy is ``top_k`` 1 with
  ``top_p`` unset (``SamplingParams._greedy_decoding``); with neither set the runtime is greedy
  too, so sampling passes ``top_p`` explicitly.
- ``trtllm-serve MODEL --backend --max_batch_size --max_num_tokens --max_seq_len --tp_size
  --pp_size --kv_cache_free_gpu_memory_fraction --extra_llm_api_options FILE`` where FILE is YAML
  of any further LLM arguments.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pytest_llmbench.backends.base import GenerationRequest
from pytest_llmbench.compat import Translation
from pytest_llmbench.config.schema import ExperimentConfig
from pytest_llmbench.errors import ConfigError

ENGINE_ONLY = ("engine_dir", "build", "quantization")  # keys of TrtLlmArgs, not TorchLlmArgs
# SamplingParams fields whose engine default is "no effect": such values are not passed.
_NEUTRAL: dict[str, Any] = {"repetition_penalty": 1.0, "no_repeat_ngram_size": 0, "min_p": 0.0}


@dataclass(frozen=True)
class LlmPlan:
    """Which LLM class to build and its keyword arguments (config objects as plain dicts).

    ``llm_backend``: ``"tensorrt"`` (the TensorRT-engine LLM), ``"pytorch"``, ``"_autodeploy"``,
    or None for the installed release's default ``tensorrt_llm.LLM``.
    """

    llm_backend: str | None
    kwargs: dict[str, Any]


def _set(
    kwargs: dict[str, Any], key: str, value: Any, ours: str, theirs: str, theirs_value: Any
) -> None:
    if key in kwargs and kwargs[key] != value:
        raise ConfigError(
            ours,
            f"{value!r} conflicts with {theirs} ({theirs_value!r} -> {key}={kwargs[key]!r}); "
            "set one of them",
        )
    kwargs[key] = value


def llm_backend(config: ExperimentConfig) -> str | None:
    """The LLM-API backend: explicit, else the engine backend when an engine-only key is set."""
    trt = config.tensorrt
    used = [key for key in ENGINE_ONLY if getattr(trt, key)]
    if trt.backend in ("pytorch", "_autodeploy") and used:
        raise ConfigError(
            f"tensorrt.{used[0]}",
            f"needs the TensorRT engine, but tensorrt.backend is {trt.backend!r}; "
            "set tensorrt.backend: tensorrt (the pytorch backend reads quantization "
            "from the checkpoint)",
        )
    backend = trt.backend or ("tensorrt" if used else None)
    if backend == "tensorrt" and trt.kv_cache_config.dtype not in (None, "auto"):
        reason = f"tensorrt.{used[0]} is set" if used else "tensorrt.backend is 'tensorrt'"
        raise ConfigError(
            "tensorrt.kv_cache_config.dtype",
            f"is not supported by the TensorRT engine ({reason}); quantize the KV cache at build "
            "time (tensorrt.build) or use tensorrt.backend: pytorch",
        )
    if trt.engine_dir and trt.build:
        raise ConfigError(
            "tensorrt.build",
            f"has no effect with tensorrt.engine_dir ({trt.engine_dir!r}): a prebuilt engine "
            "keeps the options it was built with; set one of them",
        )
    if trt.engine_dir and trt.quantization:
        raise ConfigError(
            "tensorrt.quantization",
            f"has no effect with tensorrt.engine_dir ({trt.engine_dir!r}): quantization is "
            "built into the engine; set one of them",
        )
    return backend


def llm_plan(config: ExperimentConfig, translation: Translation, model_path: str) -> LlmPlan:
    """The LLM class and arguments; only values that differ from the LLM API's defaults."""
    trt = config.tensorrt
    engine = translation.engine
    backend = llm_backend(config)
    kwargs: dict[str, Any] = {}
    if trt.engine_dir:
        kwargs["model"] = trt.engine_dir
        kwargs["tokenizer"] = model_path  # an engine directory holds no tokenizer
    else:
        kwargs["model"] = model_path
    if backend in ("pytorch", "_autodeploy"):
        kwargs["backend"] = backend

    kwargs.update(engine.get("parallel", {}))
    if trt.tensor_parallel_size is not None:
        _set(
            kwargs,
            "tensor_parallel_size",
            trt.tensor_parallel_size,
            "tensorrt.tensor_parallel_size",
            "sharding.num_devices",
            config.sharding.num_devices,
        )
    if trt.pipeline_parallel_size != 1:
        _set(
            kwargs,
            "pipeline_parallel_size",
            trt.pipeline_parallel_size,
            "tensorrt.pipeline_parallel_size",
            "sharding.num_devices",
            config.sharding.num_devices,
        )

    for key, universal, universal_value in (
        ("max_batch_size", "batching.batch_size", config.batching.batch_size),
        ("max_num_tokens", "batching.max_tokens_per_batch", config.batching.max_tokens_per_batch),
    ):
        if key in engine:  # the universal hint, set away from its default
            kwargs[key] = engine[key]
        value = getattr(trt, key)
        if value is not None:
            _set(kwargs, key, value, f"tensorrt.{key}", universal, universal_value)
    if trt.max_seq_len is not None:
        kwargs["max_seq_len"] = trt.max_seq_len

    kv = {k: v for k, v in vars(trt.kv_cache_config).items() if v is not None}
    if kv:
        kwargs["kv_cache_config"] = kv
    if trt.quantization:
        kwargs["quant_config"] = {"quant_algo": trt.quantization.upper()}
    if trt.build:
        for key in ("max_batch_size", "max_num_tokens", "max_seq_len"):
            if key in trt.build and key in kwargs and trt.build[key] != kwargs[key]:
                raise ConfigError(
                    f"tensorrt.build.{key}",
                    f"{trt.build[key]!r} conflicts with {key}={kwargs[key]!r} "
                    f"(from tensorrt.{key} or batching.*); the engine is built with one value",
                )
        kwargs["build_config"] = dict(trt.build)
    dtype = engine.get("dtype", "auto")
    if dtype != "auto":
        kwargs["dtype"] = dtype

    for key, value in trt.extra.items():
        if key in ("model", "tokenizer"):
            raise ConfigError(
                f"tensorrt.extra.{key}", "comes from model_name / tensorrt.engine_dir"
            )
        if key in kwargs and kwargs[key] != value:
            raise ConfigError(
                f"tensorrt.extra.{key}",
                f"{value!r} conflicts with {kwargs[key]!r} set from the typed settings; "
                "set it in one place",
            )
        kwargs[key] = value
    return LlmPlan(backend, kwargs)


def sampling_kwargs(
    translation: Translation, request: GenerationRequest, ignore_eos_field: bool = True
) -> dict[str, Any]:
    """``SamplingParams(**...)`` for one request: its forced length plus the shared settings.

    ``ignore_eos_field`` False (a release without ``SamplingParams.ignore_eos``) uses
    ``end_id=-1``: no token ends the sequence.
    """
    params: dict[str, Any] = {}
    for key, value in translation.sampling.items():
        if key in ("max_tokens", "min_tokens") or value is None:
            continue
        if _NEUTRAL.get(key, object()) == value:
            continue
        params[key] = value
    params["max_tokens"] = request.max_output_tokens
    if request.min_output_tokens > 0:
        params["min_tokens"] = request.min_output_tokens
    if request.min_output_tokens >= request.max_output_tokens:
        if ignore_eos_field:
            params["ignore_eos"] = True
        else:
            params["end_id"] = -1
    return params


# -- trtllm-serve ----------------------------------------------------------------------------------
_SERVE_FLAGS = {
    "backend": "--backend",
    "max_batch_size": "--max_batch_size",
    "max_num_tokens": "--max_num_tokens",
    "max_seq_len": "--max_seq_len",
    "tensor_parallel_size": "--tp_size",
    "pipeline_parallel_size": "--pp_size",
}


def trtllm_serve_args(
    config: ExperimentConfig,
    translation: Translation,
    model_path: str | None = None,
    extra_options_file: str | None = None,
) -> list[str]:
    """``trtllm-serve`` arguments (model first; the caller adds ``--host``/``--port``).

    Settings without a flag go to the YAML of ``trtllm_extra_llm_api_options``: write it to
    ``extra_options_file`` and pass that path here; omitting it when the YAML is not empty is an
    error, so no setting is dropped silently.
    """
    path = model_path or config.model_name
    if path is None:
        raise ConfigError("model_name", "server mode needs a local model directory (--llm-model)")
    plan = llm_plan(config, translation, path)
    kwargs = dict(plan.kwargs)
    args = [kwargs.pop("model")]
    if "tokenizer" in kwargs:
        args += ["--tokenizer", kwargs.pop("tokenizer")]
    args += ["--backend", plan.llm_backend or "pytorch"]
    kwargs.pop("backend", None)
    for key, flag in _SERVE_FLAGS.items():
        if key in kwargs:
            args += [flag, str(kwargs.pop(key))]
    kv = dict(kwargs.get("kv_cache_config", {}))
    if "free_gpu_memory_fraction" in kv:
        args += ["--kv_cache_free_gpu_memory_fraction", str(kv["free_gpu_memory_fraction"])]
    if trtllm_extra_llm_api_options(config, translation, path):
        if extra_options_file is None:
            raise ConfigError(
                "tensorrt",
                "these settings need --extra_llm_api_options: write "
                "trtllm_extra_llm_api_options(...) to a YAML file and pass its path",
            )
        args += ["--extra_llm_api_options", extra_options_file]
    return args


def trtllm_extra_llm_api_options(
    config: ExperimentConfig, translation: Translation, model_path: str | None = None
) -> dict[str, Any]:
    """LLM arguments that trtllm-serve has no flag for (YAML for ``--extra_llm_api_options``)."""
    path = model_path or config.model_name or "."
    kwargs = dict(llm_plan(config, translation, path).kwargs)
    for key in ("model", "tokenizer", "backend", *_SERVE_FLAGS):
        kwargs.pop(key, None)
    kv = dict(kwargs.pop("kv_cache_config", {}))
    kv.pop("free_gpu_memory_fraction", None)
    if kv:
        kwargs["kv_cache_config"] = kv
    return kwargs
