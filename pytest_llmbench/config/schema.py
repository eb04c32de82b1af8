"""ExperimentConfig: every setting of a benchmark run, validated once per session.

Universal parameters sit at the top level and in small sections; settings that only one engine
understands live in that engine's section (``pytorch:``, ``vllm:``, ...), each with an ``extra:``
mapping passed to the engine verbatim.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any, Literal

from pytest_llmbench.config.engines import LlamacppConfig, SglangConfig, TensorrtConfig, VllmConfig
from pytest_llmbench.config.fields import setting
from pytest_llmbench.errors import ConfigError

Precision = Literal["auto", "float32", "float16", "bfloat16"]


@dataclass(frozen=True)
class DecoderConfig:
    """Sampling settings. Greedy decoding is ``do_sample: false`` (or ``temperature: 0``)."""

    do_sample: bool = setting(False, doc="Sample from the distribution; false means greedy.")
    temperature: float = setting(1.0, ge=0, doc="Softmax temperature; 0 means greedy.")
    top_p: float = setting(1.0, gt=0, le=1, doc="Nucleus sampling mass; 1 disables it.")
    top_k: int = setting(0, ge=0, doc="Keep the k most likely tokens; 0 disables it.")
    min_p: float = setting(0.0, ge=0, le=1, doc="Drop tokens below min_p x the top probability.")
    repetition_penalty: float = setting(1.0, gt=0, doc="Penalty on repeated tokens; 1 is none.")
    no_repeat_ngram_size: int = setting(0, ge=0, doc="Forbid repeating n-grams of this size.")

    @property
    def greedy(self) -> bool:
        return not self.do_sample or self.temperature == 0


@dataclass(frozen=True)
class QuantizationConfig:
    """BitsAndBytes weight quantization (CUDA only)."""

    load_in_4bit: bool = setting(False, doc="Load weights in 4-bit NF4 (bitsandbytes).")
    load_in_8bit: bool = setting(False, doc="Load weights in 8-bit (bitsandbytes LLM.int8).")

    def validate(self, path: str) -> None:
        if self.load_in_4bit and self.load_in_8bit:
            raise ConfigError(f"{path}.load_in_8bit", "cannot be true together with load_in_4bit")


@dataclass(frozen=True)
class BatchingConfig:
    """How requests are grouped; engines with continuous batching treat batch_size as a hint."""

    batch_size: int = setting(
        1, ge=1, doc="Requests per batch (exact on pytorch, a hint elsewhere)."
    )
    strategy: Literal["static", "dynamic"] = setting(
        "static", doc="static: fixed-size batches; dynamic: token-aware batches."
    )
    max_tokens_per_batch: int = setting(
        4096, ge=1, doc="dynamic strategy: cap on (prompt + output) tokens in one batch."
    )


@dataclass(frozen=True)
class ShardingConfig:
    """Spreading one model over several GPUs."""

    strategy: Literal["none", "tensor_parallel", "pipeline_parallel"] = setting(
        "none", doc="none, tensor_parallel or pipeline_parallel."
    )
    num_devices: int = setting(1, ge=1, doc="GPUs the model is spread over.")


@dataclass(frozen=True)
class TrafficConfig:
    """Request arrivals; ``offline`` submits everything at once."""

    mode: Literal["offline", "concurrency", "poisson", "gamma"] = setting(
        "offline", doc="offline, concurrency (fixed in-flight), poisson or gamma arrivals."
    )
    request_rate: float = setting(1.0, gt=0, doc="poisson/gamma: mean requests per second.")
    rate_sweep: list[float] = setting(
        factory=list, doc="poisson/gamma: one result per rate (overrides request_rate)."
    )
    burstiness: float = setting(1.0, gt=0, doc="gamma: shape; 1 is Poisson, < 1 is burstier.")
    concurrency: int = setting(1, ge=1, doc="concurrency: requests kept in flight.")
    seed: int = setting(0, doc="Seed of the arrival schedule.")

    def validate(self, path: str) -> None:
        for i, rate in enumerate(self.rate_sweep):
            if rate <= 0:
                raise ConfigError(f"{path}.rate_sweep[{i}]", f"{rate} is not > 0")


@dataclass(frozen=True)
class WorkloadConfig:
    """The default synthetic workload of the benchmarks; a benchmark may override it."""

    num_prompts: int = setting(8, ge=1, doc="Requests per repetition.")
    num_prompts_sweep: list[int] = setting(
        factory=list, doc="Offline throughput: one result per value (e.g. [1, 8, 64])."
    )
    input_tokens: int = setting(32, ge=1, doc="Prompt length in tokens (exact).")
    dataset: str | None = setting(None, doc="JSONL prompt file instead of synthetic prompts.")

    def validate(self, path: str) -> None:
        for i, n in enumerate(self.num_prompts_sweep):
            if n < 1:
                raise ConfigError(f"{path}.num_prompts_sweep[{i}]", f"{n} is not >= 1")


@dataclass(frozen=True)
class RunnerConfig:
    """Repetitions and warm-up of every benchmark."""

    repetitions: int = setting(3, ge=1, doc="Measured repetitions per benchmark.")
    warmup: int = setting(
        1, ge=0, doc="Unmeasured warm-up runs before the repetitions (minimum; 0: no warm-up)."
    )
    warmup_max: int = setting(
        10, ge=0, doc="Most warm-up runs while waiting for throughput to settle."
    )
    warmup_tolerance: float = setting(
        0.05,
        ge=0,
        doc="Warm-up ends when two runs in a row differ in time by at most this fraction; "
        "0 keeps the fixed warm-up count.",
    )
    freeze_gc: bool = setting(
        True,
        doc="After warm-up, collect and freeze Python's heap (gc.freeze) until the last "
        "repetition, so that a full collection does not pause a measured window.",
    )


@dataclass(frozen=True)
class TorchCompileConfig:
    enabled: bool = setting(False, doc="Compile the model's forward with torch.compile.")
    mode: Literal["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"] = (
        setting("default", doc="torch.compile mode.")
    )
    fullgraph: bool = setting(False, doc="Require a single graph (errors on graph breaks).")
    backend: str = setting("inductor", doc="torch.compile backend.")


@dataclass(frozen=True)
class AssistedGenerationConfig:
    """transformers assisted generation: a draft model, or prompt lookup (n-grams of the prompt)."""

    method: Literal["draft_model", "prompt_lookup"] | None = setting(
        None, doc="draft_model or prompt_lookup; null: draft_model when model is set, else off."
    )
    model: str | None = setting(None, doc="Local path of the draft model (method draft_model).")
    num_tokens: int = setting(5, ge=1, doc="Draft tokens proposed per step.")
    max_ngram: int = setting(2, ge=1, doc="prompt_lookup: longest n-gram matched in the prompt.")

    @property
    def resolved_method(self) -> str | None:
        return self.method or ("draft_model" if self.model else None)

    def validate(self, path: str) -> None:
        if self.method == "draft_model" and not self.model:
            raise ConfigError(f"{path}.model", "is required when method is 'draft_model'")
        if self.method == "prompt_lookup" and self.model:
            raise ConfigError(
                f"{path}.model", "conflicts with method 'prompt_lookup', which needs no draft model"
            )


@dataclass(frozen=True)
class PytorchConfig:
    """HuggingFace transformers settings (``model.generate``)."""

    attn_implementation: Literal["eager", "sdpa", "flash_attention_2", "flex_attention"] | None = (
        setting(None, doc="Attention kernel; null lets transformers choose.")
    )
    torch_compile: TorchCompileConfig = setting(factory=TorchCompileConfig, doc="torch.compile.")
    cache_implementation: Literal["dynamic", "static"] = setting(
        "dynamic", doc="KV cache; static enables transformers' compiled decode step."
    )
    use_cache: bool = setting(True, doc="Use the KV cache while decoding.")
    low_cpu_mem_usage: bool = setting(True, doc="Load weights without a full extra CPU copy.")
    max_memory: dict[str, str] | None = setting(
        None, doc="Per-device memory caps for device_map, e.g. {0: 20GiB, cpu: 64GiB}."
    )
    assisted_generation: AssistedGenerationConfig = setting(
        factory=AssistedGenerationConfig, doc="Speculative decoding with a draft model."
    )
    num_beams: int = setting(1, ge=1, doc="Beam search width; 1 disables beam search.")
    early_stopping: bool = setting(False, doc="Beam search: stop when num_beams are done.")
    length_penalty: float = setting(1.0, doc="Beam search length penalty.")
    output_scores: bool = setting(False, doc="Return per-step scores from generate.")
    return_dict_in_generate: bool = setting(False, doc="Return a ModelOutput from generate.")
    extra: dict[str, Any] = setting(factory=dict, doc="Passed verbatim to generate().")


@dataclass(frozen=True)
class ExperimentConfig:
    """The whole configuration of a session's benchmarks."""

    model_name: str | None = setting(
        None,
        doc="A local model directory, a .gguf file, or a Hugging Face id "
        "org/name[@REVISION][:FILE.gguf] from the Hugging Face cache (see Models below); null "
        "uses the embedded tiny model.",
    )
    fp_precision: Precision = setting(
        "auto", doc="Weight/activation dtype; auto is float32 on CPU, bfloat16 on CUDA."
    )
    max_output_tokens: int = setting(16, ge=1, doc="Output tokens per request.")
    min_output_tokens: int | None = setting(
        None, ge=0, doc="Minimum output tokens; null forces it to max_output_tokens."
    )
    random_seed: int = setting(0, doc="Seed for prompts, sampling and the embedded model.")
    device: Literal["auto", "cpu", "cuda"] = setting("auto", doc="Where the pytorch backend runs.")
    decoder: DecoderConfig = setting(factory=DecoderConfig, doc="Sampling.")
    quantization: QuantizationConfig = setting(factory=QuantizationConfig, doc="Quantization.")
    batching: BatchingConfig = setting(factory=BatchingConfig, doc="Batching.")
    sharding: ShardingConfig = setting(factory=ShardingConfig, doc="Multi-GPU.")
    traffic_simulation: TrafficConfig = setting(factory=TrafficConfig, doc="Request arrivals.")
    workload: WorkloadConfig = setting(factory=WorkloadConfig, doc="Default workload.")
    runner: RunnerConfig = setting(factory=RunnerConfig, doc="Repetitions and warm-up.")
    pytorch: PytorchConfig = setting(factory=PytorchConfig, doc="transformers settings.")
    vllm: VllmConfig = setting(factory=VllmConfig, doc="vLLM settings.")
    sglang: SglangConfig = setting(factory=SglangConfig, doc="SGLang settings.")
    tensorrt: TensorrtConfig = setting(factory=TensorrtConfig, doc="TensorRT-LLM settings.")
    llamacpp: LlamacppConfig = setting(factory=LlamacppConfig, doc="llama.cpp settings.")

    def validate(self, path: str) -> None:
        if self.min_output_tokens is not None and self.min_output_tokens > self.max_output_tokens:
            raise ConfigError(
                "min_output_tokens",
                f"{self.min_output_tokens} is not <= max_output_tokens ({self.max_output_tokens})",
            )

    @property
    def forced_min_tokens(self) -> int:
        """Minimum output tokens actually requested: equal to max unless set (forced length)."""
        if self.min_output_tokens is None:
            return self.max_output_tokens
        return self.min_output_tokens

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def digest(self, model_identity: str | None = None) -> str:
        """A short stable hash of the resolved config, to match results with baselines.

        ``model_identity`` (``org/name@commit``) stands for ``model_name`` where the name typed
        does not pin the weights: two commits of one Hugging Face id are two configs, and
        ``org/name`` and ``org/name@<its commit>`` one."""
        data = self.to_dict()
        if model_identity is not None:
            data["model_name"] = model_identity
        blob = json.dumps(data, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def engine_digest(self) -> str:
        """Hash of what an engine is built from: without workload, runner and traffic settings,
        so a sweep over prompts or rates reuses one engine."""
        data = self.to_dict()
        for per_benchmark in ("workload", "runner", "traffic_simulation"):
            data.pop(per_benchmark)
        blob = json.dumps(data, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def replace(self, **changes: Any) -> ExperimentConfig:
        return dataclasses.replace(self, **changes)


# Fields whose values differ from these defaults are "used" by a config (see compat.py).
DEFAULTS = ExperimentConfig()
__all__ = [
    "ExperimentConfig",
    "DecoderConfig",
    "QuantizationConfig",
    "BatchingConfig",
    "ShardingConfig",
    "TrafficConfig",
    "WorkloadConfig",
    "RunnerConfig",
    "PytorchConfig",
    "DEFAULTS",
]
