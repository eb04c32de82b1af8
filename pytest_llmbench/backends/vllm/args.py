"""Map an ExperimentConfig onto vLLM's own arguments: ``vllm.LLM(**engine)`` and ``SamplingParams``.

Pure: vLLM is never imported here. The mapping targets the argument names of current releases
(0.26 to 0.32); :func:`check_against_installed` compares it with the fields of the release that is
actually installed and names, by the config key the user typed, every argument that release no
longer (or not yet) accepts, so nothing is dropped silently.

Only ``vllm:`` keys that differ from their defaults are passed, so vLLM's own defaults stay in
force; the universal parameters arrive already translated by ``compat.translate``.
"""

from __future__ import annotations

import warnings
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from pytest_llmbench import compat
from pytest_llmbench.compat import Translation
from pytest_llmbench.config.engines import VllmConfig
from pytest_llmbench.config.schema import ExperimentConfig
from pytest_llmbench.errors import ConfigError, UnsupportedParameter

CPU_ENV_DEFAULTS: dict[str, str] = {"VLLM_CPU_KVCACHE_SPACE": "1"}  # GiB of KV cache on CPU

VLLM_DEFAULTS = VllmConfig()

# Engine arguments the universal translation produces that equal vLLM's own default when they
# hold these values: leaving them out keeps the engine on its own default.
_ENGINE_NEUTRAL: dict[str, Any] = {"dtype": "auto", "tensor_parallel_size": 1, "quantization": None}

# Why a release may lack an argument, shown with the refusal (native name -> hint).
ENGINE_HINTS: dict[str, str] = {
    "swap_space": "the V1 engine preempts by recomputation and has no CPU swap space",
    "max_seq_len_to_capture": (
        "replaced by max_cudagraph_capture_size (a token batch size, not a sequence length); "
        "set that through vllm.extra"
    ),
    "lora_extra_vocab_size": "LoRA adapters can no longer extend the vocabulary",
    "attention_backend": "older releases read the VLLM_ATTENTION_BACKEND environment variable",
    "attention_config": "older releases read the VLLM_FLASH_ATTN_VERSION environment variable",
    "distributed_executor_backend": "older releases call it worker_use_ray",
}
SAMPLING_HINTS: dict[str, str] = {
    "best_of": "removed with the V0 engine",
    "use_beam_search": "beam search moved to LLM.beam_search(), which this backend does not drive",
    "length_penalty": "a beam-search setting, now only in LLM.beam_search()'s BeamSearchParams",
}


@dataclass(frozen=True)
class VllmArgs:
    """vLLM-native settings of one config.

    ``sampling`` holds the config-wide SamplingParams arguments; the backend sets ``max_tokens``,
    ``min_tokens`` and ``ignore_eos`` per request from each GenerationRequest (same rule as here).
    ``sources`` maps every native key (nested ones dotted: ``speculative_config.prompt_lookup_min``)
    to the config key that produced it, so messages name what the user typed.
    """

    engine: dict[str, Any]
    sampling: dict[str, Any]
    sources: dict[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()


def forced_length(max_tokens: int, min_tokens: int) -> dict[str, Any]:
    """SamplingParams arguments that fix the output length.

    With min == max (the default) EOS is ignored so every request produces exactly ``max_tokens``;
    a smaller minimum keeps EOS live between the two.
    """
    return {
        "max_tokens": max_tokens,
        "min_tokens": min_tokens,
        "ignore_eos": min_tokens >= max_tokens,
    }


def _universal_sources() -> dict[str, str]:
    """Native vLLM key -> universal parameter, from the compatibility matrix."""
    out: dict[str, str] = {}
    for r in compat.MATRIX:
        target = compat.cell(r.parameter, "vllm").target
        if target:
            out[target.split(".", 1)[1]] = r.parameter
    return out


class _Builder:
    def __init__(self) -> None:
        self.engine: dict[str, Any] = {}
        self.sampling: dict[str, Any] = {}
        self.sources: dict[str, str] = {}
        self.notes: list[str] = []

    def put(self, scope: dict[str, Any], key: str, value: Any, source: str) -> None:
        if key in scope and self.sources.get(key) != source:
            other = self.sources.get(key, key)
            raise ConfigError(
                source,
                f"conflicts with {other}: both set vLLM's {key!r} "
                f"({scope[key]!r} vs {value!r}); set only one",
            )
        scope[key] = value
        self.sources[key] = source


def _changed(cfg: VllmConfig, name: str) -> bool:
    return getattr(cfg, name) != getattr(VLLM_DEFAULTS, name)


def build_vllm_args(
    config: ExperimentConfig, translation: Translation, *, strict: bool = True
) -> VllmArgs:
    """The engine and sampling arguments of ``config`` for vLLM.

    Universal parameters vLLM cannot honour (``translation.unsupported``) raise
    UnsupportedParameter when ``strict``; otherwise each one is warned about and left out (the
    session has already applied its ``--llm-unsupported`` policy). Contradicting keys raise
    ConfigError naming both.
    """
    if translation.backend != "vllm":
        raise ValueError(f"translation is for {translation.backend!r}, not 'vllm'")
    if translation.unsupported:
        text = "; ".join(f"{p}: {why}" for p, why in translation.unsupported)
        if strict:
            raise UnsupportedParameter(f"vllm does not support {text}")
        for p, why in translation.unsupported:
            warnings.warn(f"vllm ignores {p}: {why}", stacklevel=2)

    b = _Builder()
    universal = _universal_sources()
    v = config.vllm

    # -- universal parameters, translated by compat ----------------------------------------------
    for key, value in translation.sampling.items():
        b.put(b.sampling, key, value, universal.get(key, key))
    b.sampling.update(forced_length(config.max_output_tokens, config.forced_min_tokens))
    b.sources["ignore_eos"] = "min_output_tokens"

    engine_hints = dict(translation.engine)
    # sharding.strategy -> {"tensor_parallel_size": n} or {"pipeline_parallel_size": n}
    parallel: dict[str, int] = engine_hints.pop("parallel", None) or {}
    # The vllm: section is more specific than a universal hint: it wins, with a note.
    for key, vllm_key, hint_key in (
        ("max_num_seqs", "max_num_seqs", "batching.batch_size"),
        ("max_num_batched_tokens", "max_num_batched_tokens", "batching.max_tokens_per_batch"),
    ):
        if getattr(v, vllm_key) is not None and key in engine_hints:
            engine_hints.pop(key)
            b.notes.append(f"vllm.{vllm_key} overrides the hint from {hint_key}")
    if v.tensor_parallel_size is not None:
        tp_hint = parallel.pop("tensor_parallel_size", 1)
        if config.sharding.strategy == "tensor_parallel" and tp_hint != v.tensor_parallel_size:
            raise ConfigError(
                "vllm.tensor_parallel_size",
                f"{v.tensor_parallel_size} conflicts with sharding.num_devices ({tp_hint}) under "
                "sharding.strategy tensor_parallel; set only one",
            )
        if v.tensor_parallel_size != 1:
            b.put(
                b.engine,
                "tensor_parallel_size",
                v.tensor_parallel_size,
                "vllm.tensor_parallel_size",
            )
    q_hint = engine_hints.get("quantization")
    if q_hint is not None and v.quantization_method is not None:
        if v.quantization_method != q_hint:
            raise ConfigError(
                "vllm.quantization_method",
                f"{v.quantization_method!r} conflicts with quantization.load_in_4bit "
                f"(quantization={q_hint!r}); set only one",
            )
        engine_hints.pop("quantization")
    for key, value in engine_hints.items():
        if key in _ENGINE_NEUTRAL and value == _ENGINE_NEUTRAL[key]:
            continue
        b.put(b.engine, key, value, universal.get(key, key))
    for key, value in parallel.items():
        b.put(b.engine, key, value, "sharding.strategy")

    # -- the vllm: section, plain renames ----------------------------------------------------------
    plain = {
        "max_num_seqs": "max_num_seqs",
        "max_num_batched_tokens": "max_num_batched_tokens",
        "gpu_memory_utilization": "gpu_memory_utilization",
        "swap_space": "swap_space",
        "cpu_offload_gb": "cpu_offload_gb",
        "enable_prefix_caching": "enable_prefix_caching",
        "enable_chunked_prefill": "enable_chunked_prefill",
        "kv_cache_dtype": "kv_cache_dtype",
        "block_size": "block_size",
        "max_model_len": "max_model_len",
        "max_seq_len_to_capture": "max_seq_len_to_capture",
        "enforce_eager": "enforce_eager",
        "distributed_backend": "distributed_executor_backend",
        "disable_custom_all_reduce": "disable_custom_all_reduce",
        "quantization_method": "quantization",
        "load_format": "load_format",
    }
    for ours, native in plain.items():
        if _changed(v, ours):
            b.put(b.engine, native, getattr(v, ours), f"vllm.{ours}")

    att = v.attention
    if att.backend is not None:
        b.put(b.engine, "attention_backend", att.backend, "vllm.attention.backend")
    if att.flash_version is not None:
        b.put(
            b.engine,
            "attention_config",
            {"flash_attn_version": att.flash_version},
            "vllm.attention",
        )
        b.sources["attention_config.flash_attn_version"] = "vllm.attention.flash_version"
    if att.disable_sliding_window:
        b.put(b.engine, "disable_sliding_window", True, "vllm.attention.disable_sliding_window")

    spec = _speculative_config(v, b)
    if spec is not None:
        b.put(b.engine, "speculative_config", spec, "vllm.speculative")

    _lora(v, b)

    # -- sampling-side vllm: keys ----------------------------------------------------------------
    if v.best_of is not None:
        b.put(b.sampling, "best_of", v.best_of, "vllm.best_of")
    if v.use_beam_search:
        b.put(b.sampling, "use_beam_search", True, "vllm.use_beam_search")
    if _changed(v, "length_penalty"):
        if not v.use_beam_search:
            raise ConfigError("vllm.length_penalty", "only applies with vllm.use_beam_search: true")
        b.put(b.sampling, "length_penalty", v.length_penalty, "vllm.length_penalty")
    if v.logprobs is not None:
        b.put(b.sampling, "logprobs", v.logprobs, "vllm.logprobs")
    if v.logit_bias:
        b.put(b.sampling, "logit_bias", dict(v.logit_bias), "vllm.logit_bias")

    # -- the escape hatch, verbatim; it must not silently override a mapped key ------------------
    for key, value in v.extra.items():
        b.put(b.engine, key, value, f"vllm.extra.{key}")

    return VllmArgs(b.engine, b.sampling, b.sources, tuple(b.notes))


def _speculative_config(v: VllmConfig, b: _Builder) -> dict[str, Any] | None:
    s = v.speculative
    d = VLLM_DEFAULTS.speculative
    path = "vllm.speculative"
    if s.method is None and s.model is None:
        stray = [
            n
            for n in ("num_tokens", "ngram_min", "ngram_max", "draft_tp_size")
            if getattr(s, n) != getattr(d, n)
        ]
        if stray:
            raise ConfigError(
                f"{path}.{stray[0]}",
                f"is set but speculative decoding is off; set {path}.method (or {path}.model)",
            )
        return None
    out: dict[str, Any] = {"num_speculative_tokens": s.num_tokens}
    b.sources["speculative_config.num_speculative_tokens"] = f"{path}.num_tokens"
    if s.method is not None:
        out["method"] = s.method
        b.sources["speculative_config.method"] = f"{path}.method"
    if s.model is not None:
        if s.method == "ngram":
            raise ConfigError(
                f"{path}.model", f"conflicts with {path}.method 'ngram', which needs no draft model"
            )
        out["model"] = s.model
        b.sources["speculative_config.model"] = f"{path}.model"
    if s.method == "ngram":
        # Always explicit: vLLM's own ngram defaults have changed between releases.
        out["prompt_lookup_min"] = s.ngram_min
        out["prompt_lookup_max"] = s.ngram_max
        b.sources["speculative_config.prompt_lookup_min"] = f"{path}.ngram_min"
        b.sources["speculative_config.prompt_lookup_max"] = f"{path}.ngram_max"
    else:
        for n in ("ngram_min", "ngram_max"):
            if getattr(s, n) != getattr(d, n):
                raise ConfigError(f"{path}.{n}", f"only applies with {path}.method 'ngram'")
    if s.draft_tp_size != d.draft_tp_size:
        if s.method == "ngram":
            raise ConfigError(
                f"{path}.draft_tp_size", f"conflicts with {path}.method 'ngram' (no draft model)"
            )
        out["draft_tensor_parallel_size"] = s.draft_tp_size
        b.sources["speculative_config.draft_tensor_parallel_size"] = f"{path}.draft_tp_size"
    return out


def _lora(v: VllmConfig, b: _Builder) -> None:
    lo = v.lora
    d = VLLM_DEFAULTS.lora
    names = {
        "max_loras": "max_loras",
        "max_rank": "max_lora_rank",
        "extra_vocab_size": "lora_extra_vocab_size",
    }
    if not lo.enabled:
        for ours in names:
            if getattr(lo, ours) != getattr(d, ours):
                raise ConfigError(f"vllm.lora.{ours}", "is set but vllm.lora.enabled is false")
        return
    b.put(b.engine, "enable_lora", True, "vllm.lora.enabled")
    for ours, native in names.items():
        if getattr(lo, ours) != getattr(d, ours):
            b.put(b.engine, native, getattr(lo, ours), f"vllm.lora.{ours}")


def check_against_installed(
    engine_kwargs: Mapping[str, Any],
    sampling_kwargs: Mapping[str, Any],
    vllm_version: str,
    accepted_engine_args: Collection[str],
    accepted_sampling_args: Collection[str],
    *,
    sources: Mapping[str, str] | None = None,
    accepted_nested: Mapping[str, Collection[str]] | None = None,
) -> list[str]:
    """One message per argument the installed vLLM does not accept; empty when all fit.

    ``accepted_nested`` holds the fields of dict-valued arguments (``speculative_config``,
    ``attention_config``) where known. Messages name the config key from ``sources``.
    """
    sources = sources or {}
    nested = accepted_nested or {}
    problems: list[str] = []

    def name(key: str) -> str:
        source = sources.get(key)
        return f"{source} (vLLM argument {key!r})" if source and source != key else repr(key)

    def report(key: str, what: str, hint: str | None) -> None:
        text = f"{name(key)}: vLLM {vllm_version} has no {what} {key.rsplit('.', 1)[-1]!r}"
        problems.append(f"{text} ({hint})" if hint else text)

    for key, value in engine_kwargs.items():
        if key not in accepted_engine_args:
            report(key, "engine argument", ENGINE_HINTS.get(key))
        elif isinstance(value, Mapping) and key in nested:
            for sub in value:
                if sub not in nested[key]:
                    report(f"{key}.{sub}", f"{key} field", None)
    for key in sampling_kwargs:
        if key not in accepted_sampling_args:
            report(key, "SamplingParams argument", SAMPLING_HINTS.get(key))
    return problems
