"""ExperimentConfig -> ``sglang.Engine(**kwargs)``, request sampling params, launch_server flags.

Pure: nothing here imports SGLang. Written against sgl-project/sglang at commit
001067fffe33427bee0ed2f007fb7551a1d76b44 and checked again against the sglang 0.5.16 release
(``srt/server_args.py`` ``ServerArgs``: every field below exists with the default in
:data:`SERVER_DEFAULTS`; ``srt/arg_groups/arg_utils.py``: the launch_server flag of a field is
``--`` + its name with ``-`` for ``_``, a bool is ``store_true``, a list takes ``nargs='+'``;
``srt/sampling/sampling_params.py`` ``SamplingParams``). Read, not yet run on a GPU.

What the code relies on, from that source:

- ``Engine(**kwargs)`` builds ``ServerArgs(**kwargs)``; every key below is a ServerArgs field
  (``model_path``, ``tp_size``, ``pp_size``, ``dp_size``, ``mem_fraction_static``,
  ``context_length``, ``chunked_prefill_size`` (-1 disables), ``max_running_requests``,
  ``schedule_policy``, ``disable_radix_cache``, ``disable_prefill_cuda_graph`` (0.5.16),
  ``attention_backend``, ``kv_cache_dtype``,
  ``quantization``, ``dtype``, ``random_seed``, ``speculative_algorithm``,
  ``speculative_draft_model_path``, ``speculative_num_steps``, ``speculative_eagle_topk``,
  ``speculative_num_draft_tokens``).
- ``python -m sglang.launch_server`` derives each flag from the field name (``tp_size`` ->
  ``--tp-size``); a bool field defaulting to false is a bare flag.
- ``SamplingParams``: ``max_new_tokens``, ``min_new_tokens``, ``ignore_eos``, ``temperature``
  (below 1e-6 means greedy), ``top_p``, ``top_k`` (-1: whole vocabulary), ``min_p``,
  ``repetition_penalty`` in (0, 2]. ``min_new_tokens`` needs the tokenizer (its EOS id), so
  ``skip_tokenizer_init`` is never set by us and refused together with a forced minimum length.
"""

from __future__ import annotations

import json
from typing import Any

from pytest_llmbench.backends.base import GenerationRequest
from pytest_llmbench.compat import Translation
from pytest_llmbench.config.schema import ExperimentConfig
from pytest_llmbench.errors import ConfigError

# ServerArgs defaults for the keys we set: a value equal to these is not passed.
SERVER_DEFAULTS: dict[str, Any] = {
    "tp_size": 1,
    "pp_size": 1,
    "dp_size": 1,
    "schedule_policy": "fcfs",
    "disable_radix_cache": False,
    "disable_prefill_cuda_graph": False,
    "kv_cache_dtype": "auto",
    "dtype": "auto",
}
# SamplingParams defaults (top_k -1 is the documented "disabled"; the class stores 1 << 30).
SAMPLING_DEFAULTS: dict[str, Any] = {
    "temperature": 1.0,
    "top_p": 1.0,
    "top_k": -1,
    "min_p": 0.0,
    "repetition_penalty": 1.0,
}
# Speculative algorithms that load a separate draft model (NEXTN uses the model's own MTP layers,
# NGRAM looks tokens up in the prompt).
NEEDS_DRAFT_MODEL = ("EAGLE", "EAGLE3", "STANDALONE")


def _check_override(
    kwargs: dict[str, Any], key: str, value: Any, ours: str, theirs: str, theirs_value: Any
) -> None:
    """Set ``key`` from the ``sglang:`` field ``ours`` unless a universal field disagrees."""
    if key in kwargs and kwargs[key] != value:
        raise ConfigError(
            ours,
            f"{value!r} conflicts with {theirs} ({theirs_value!r} -> {key}={kwargs[key]!r}); "
            "set one of them",
        )
    kwargs[key] = value


def engine_kwargs(
    config: ExperimentConfig, translation: Translation, model_path: str
) -> dict[str, Any]:
    """Keyword arguments of ``sglang.Engine``; only values that differ from ServerArgs defaults."""
    sg = config.sglang
    engine = translation.engine
    kwargs: dict[str, Any] = {"model_path": model_path}

    kwargs.update(engine.get("parallel", {}))
    if sg.tp_size is not None:
        _check_override(
            kwargs,
            "tp_size",
            sg.tp_size,
            "sglang.tp_size",
            "sharding.num_devices",
            config.sharding.num_devices,
        )
    if sg.dp_size != 1:
        kwargs["dp_size"] = sg.dp_size

    if "max_running_requests" in engine:  # batching.batch_size, set away from its default
        kwargs["max_running_requests"] = engine["max_running_requests"]
    if sg.max_running_requests is not None:
        _check_override(
            kwargs,
            "max_running_requests",
            sg.max_running_requests,
            "sglang.max_running_requests",
            "batching.batch_size",
            config.batching.batch_size,
        )
    if "chunked_prefill_size" in engine:  # batching.max_tokens_per_batch
        kwargs["chunked_prefill_size"] = engine["chunked_prefill_size"]
    if sg.chunked_prefill_size is not None:
        if sg.chunked_prefill_size == 0 or sg.chunked_prefill_size < -1:
            raise ConfigError(
                "sglang.chunked_prefill_size",
                f"{sg.chunked_prefill_size} is not allowed; a positive token count or -1 (off)",
            )
        _check_override(
            kwargs,
            "chunked_prefill_size",
            sg.chunked_prefill_size,
            "sglang.chunked_prefill_size",
            "batching.max_tokens_per_batch",
            config.batching.max_tokens_per_batch,
        )

    for key in ("mem_fraction_static", "context_length", "attention_backend", "quantization"):
        value = getattr(sg, key)
        if value is not None:
            kwargs[key] = value
    kwargs["schedule_policy"] = sg.schedule_policy
    kwargs["disable_radix_cache"] = sg.disable_radix_cache
    kwargs["disable_prefill_cuda_graph"] = sg.disable_prefill_cuda_graph
    kwargs["kv_cache_dtype"] = sg.kv_cache_dtype
    kwargs["dtype"] = engine.get("dtype", "auto")
    if "random_seed" in engine:
        kwargs["random_seed"] = engine["random_seed"]
    if sg.schedule_policy == "lpm" and sg.disable_radix_cache:
        raise ConfigError(
            "sglang.schedule_policy",
            "'lpm' (longest prefix match) needs the radix cache, "
            "but sglang.disable_radix_cache is true",
        )
    kwargs.update(_speculative(config))

    for key, value in sg.extra.items():
        if key in kwargs and kwargs[key] != value and key != "model_path":
            raise ConfigError(
                f"sglang.extra.{key}",
                f"{value!r} conflicts with {kwargs[key]!r} set from the typed settings; "
                "set it in one place",
            )
        kwargs[key] = value
    if "model_path" in sg.extra:
        raise ConfigError("sglang.extra.model_path", "the model comes from model_name/--llm-model")
    if kwargs.get("skip_tokenizer_init") and config.forced_min_tokens > 0:
        raise ConfigError(
            "sglang.extra.skip_tokenizer_init",
            f"SGLang needs its tokenizer for min_new_tokens, and min_output_tokens is "
            f"{config.forced_min_tokens} (forced output length); leave skip_tokenizer_init unset",
        )
    return {k: v for k, v in kwargs.items() if SERVER_DEFAULTS.get(k, _UNSET) != v}


_UNSET = object()


def _speculative(config: ExperimentConfig) -> dict[str, Any]:
    spec = config.sglang.speculative
    options = {
        "speculative_draft_model_path": ("draft_model_path", spec.draft_model_path),
        "speculative_num_steps": ("num_steps", spec.num_steps),
        "speculative_eagle_topk": ("eagle_topk", spec.eagle_topk),
        "speculative_num_draft_tokens": ("num_draft_tokens", spec.num_draft_tokens),
    }
    if spec.algorithm is None:
        for name, value in options.values():
            if value is not None:
                raise ConfigError(
                    f"sglang.speculative.{name}",
                    "has no effect without sglang.speculative.algorithm; set the algorithm too",
                )
        return {}
    if spec.algorithm in NEEDS_DRAFT_MODEL and not spec.draft_model_path:
        raise ConfigError(
            "sglang.speculative.draft_model_path",
            f"is required when sglang.speculative.algorithm is {spec.algorithm!r}",
        )
    out: dict[str, Any] = {"speculative_algorithm": spec.algorithm}
    out.update({key: value for key, (_, value) in options.items() if value is not None})
    return out


def sampling_params(config: ExperimentConfig, translation: Translation) -> dict[str, Any]:
    """The sampling settings shared by every request (lengths are per request: ``for_request``)."""
    params: dict[str, Any] = {}
    for key, value in translation.sampling.items():
        if key in ("max_new_tokens", "min_new_tokens") or value is None:
            continue
        if SAMPLING_DEFAULTS.get(key, _UNSET) == value:
            continue
        params[key] = value
    penalty = params.get("repetition_penalty")
    if penalty is not None and not 0 < penalty <= 2:
        raise ConfigError(
            "decoder.repetition_penalty", f"{penalty} is outside SGLang's range (0, 2]"
        )
    return params


def for_request(base: dict[str, Any], request: GenerationRequest) -> dict[str, Any]:
    """``base`` plus the request's forced length: EOS is ignored when min == max tokens."""
    params = dict(base)
    params["max_new_tokens"] = request.max_output_tokens
    if request.min_output_tokens > 0:
        params["min_new_tokens"] = request.min_output_tokens
    if request.min_output_tokens >= request.max_output_tokens:
        params["ignore_eos"] = True
    return params


def sglang_server_args(
    config: ExperimentConfig, translation: Translation, model_path: str | None = None
) -> list[str]:
    """``python -m sglang.launch_server`` arguments for the same engine; the caller adds
    ``--host``/``--port``. ``model_path`` defaults to ``config.model_name``."""
    path = model_path or config.model_name
    if path is None:
        raise ConfigError("model_name", "server mode needs a local model directory (--llm-model)")
    kwargs = engine_kwargs(config, translation, path)
    args = ["--model-path", kwargs.pop("model_path")]
    for key, value in kwargs.items():
        args.extend(_flag(key, value))
    return args


def _flag(key: str, value: Any) -> list[str]:
    flag = "--" + key.replace("_", "-")
    if value is True:
        return [flag]
    if value is False:
        raise ConfigError(
            f"sglang.extra.{key}",
            "false cannot be a launch_server flag (flags only switch on); leave it out",
        )
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [flag, *(str(v) for v in value)]
    if isinstance(value, dict):
        return [flag, json.dumps(value)]
    return [flag, str(value)]
