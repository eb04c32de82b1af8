"""Engine-only config sections: ``vllm:``, ``sglang:``, ``tensorrt:``, ``llamacpp:``.

Each key mirrors the engine's own argument; the mapping onto the installed engine's API lives in
the engine's backend module, which reports keys the installed release no longer has.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pytest_llmbench.config.fields import setting
from pytest_llmbench.errors import ConfigError


@dataclass(frozen=True)
class VllmAttentionConfig:
    backend: str | None = setting(None, doc="Attention backend (e.g. FLASH_ATTN, FLASHINFER).")
    flash_version: Literal[2, 3] | None = setting(None, doc="FlashAttention major version.")
    disable_sliding_window: bool = setting(False, doc="Disable sliding-window attention.")


@dataclass(frozen=True)
class VllmSpeculativeConfig:
    model: str | None = setting(None, doc="Draft model path (method draft_model).")
    num_tokens: int = setting(5, ge=1, doc="Speculative tokens per step.")
    method: Literal["draft_model", "ngram", "eagle", "eagle3", "medusa", "mtp"] | None = setting(
        None, doc="Speculation method; null disables speculative decoding."
    )
    ngram_min: int = setting(1, ge=1, doc="ngram: smallest prompt lookup window.")
    ngram_max: int = setting(4, ge=1, doc="ngram: largest prompt lookup window.")
    draft_tp_size: int = setting(1, ge=1, doc="Tensor parallel size of the draft model.")

    def validate(self, path: str) -> None:
        if self.ngram_min > self.ngram_max:
            raise ConfigError(f"{path}.ngram_min", f"{self.ngram_min} is not <= ngram_max")
        if self.method == "draft_model" and not self.model:
            raise ConfigError(f"{path}.model", "is required when method is 'draft_model'")


@dataclass(frozen=True)
class VllmLoraConfig:
    enabled: bool = setting(False, doc="Enable LoRA adapters.")
    max_loras: int = setting(1, ge=1, doc="LoRAs resident at once.")
    max_rank: int = setting(16, ge=1, doc="Largest LoRA rank.")
    extra_vocab_size: int = setting(0, ge=0, doc="Extra vocabulary of LoRA adapters.")


@dataclass(frozen=True)
class VllmConfig:
    """vLLM engine and sampling settings (``vllm.LLM`` / ``AsyncLLMEngine``)."""

    tensor_parallel_size: int | None = setting(
        None, ge=1, doc="GPUs per engine; null follows sharding.num_devices."
    )
    max_num_seqs: int | None = setting(None, ge=1, doc="Max sequences per scheduler step.")
    max_num_batched_tokens: int | None = setting(None, ge=1, doc="Token budget per step.")
    gpu_memory_utilization: float = setting(0.9, gt=0, le=1, doc="Fraction of GPU memory used.")
    swap_space: float = setting(4, ge=0, doc="CPU swap space per GPU, GiB.")
    cpu_offload_gb: float = setting(0, ge=0, doc="Weights offloaded to CPU, GiB.")
    enable_prefix_caching: bool | None = setting(None, doc="Automatic prefix caching.")
    enable_chunked_prefill: bool | None = setting(None, doc="Chunked prefill.")
    kv_cache_dtype: str = setting("auto", doc="KV cache dtype: auto, fp8, fp8_e5m2, fp8_e4m3.")
    block_size: int | None = setting(None, ge=1, doc="KV cache block size in tokens.")
    max_model_len: int | None = setting(None, ge=1, doc="Context length.")
    max_seq_len_to_capture: int | None = setting(None, ge=1, doc="Largest CUDA-graph sequence.")
    enforce_eager: bool = setting(False, doc="Disable CUDA graphs.")
    distributed_backend: Literal["mp", "ray"] | None = setting(
        None, doc="Distributed executor backend."
    )
    disable_custom_all_reduce: bool = setting(False, doc="Use NCCL instead of custom all-reduce.")
    attention: VllmAttentionConfig = setting(factory=VllmAttentionConfig, doc="Attention.")
    speculative: VllmSpeculativeConfig = setting(
        factory=VllmSpeculativeConfig, doc="Speculative decoding."
    )
    lora: VllmLoraConfig = setting(factory=VllmLoraConfig, doc="LoRA.")
    quantization_method: str | None = setting(
        None, doc="vLLM quantization (awq, gptq, fp8, bitsandbytes, ...)."
    )
    load_format: str = setting("auto", doc="Weight loading: auto, safetensors, dummy, ...")
    best_of: int | None = setting(None, ge=1, doc="Candidates per prompt (older vLLM only).")
    use_beam_search: bool = setting(False, doc="Beam search instead of sampling.")
    length_penalty: float = setting(1.0, doc="Beam search length penalty.")
    logprobs: int | None = setting(None, ge=0, doc="Log-probabilities returned per token.")
    logit_bias: dict[int, float] | None = setting(None, doc="Token id -> bias added to logits.")
    extra: dict[str, Any] = setting(factory=dict, doc="Passed verbatim to vllm.LLM(...).")


@dataclass(frozen=True)
class SglangSpeculativeConfig:
    algorithm: Literal["EAGLE", "EAGLE3", "NEXTN", "STANDALONE", "NGRAM"] | None = setting(
        None, doc="Speculative algorithm; null disables it."
    )
    draft_model_path: str | None = setting(None, doc="Draft model path.")
    num_steps: int | None = setting(None, ge=1, doc="Draft steps.")
    eagle_topk: int | None = setting(None, ge=1, doc="EAGLE top-k branching.")
    num_draft_tokens: int | None = setting(None, ge=1, doc="Draft tokens verified per step.")


@dataclass(frozen=True)
class SglangConfig:
    """SGLang engine settings (``sglang.Engine`` / ``sglang.launch_server``)."""

    tp_size: int | None = setting(None, ge=1, doc="Tensor parallel size.")
    dp_size: int = setting(1, ge=1, doc="Data parallel replicas.")
    mem_fraction_static: float | None = setting(None, gt=0, le=1, doc="Static memory fraction.")
    context_length: int | None = setting(None, ge=1, doc="Context length.")
    chunked_prefill_size: int | None = setting(None, doc="Chunked prefill size; -1 disables.")
    max_running_requests: int | None = setting(None, ge=1, doc="Max concurrent requests.")
    schedule_policy: Literal["lpm", "random", "fcfs", "dfs-weight", "lof"] = setting(
        "fcfs", doc="Scheduling policy; lpm favours prefix-cache hits."
    )
    disable_radix_cache: bool = setting(False, doc="Disable RadixAttention prefix caching.")
    disable_prefill_cuda_graph: bool = setting(
        False, doc="Run prefill without CUDA graphs (sglang >= 0.5.16 captures them by default)."
    )
    attention_backend: str | None = setting(None, doc="flashinfer, triton, fa3, ...")
    kv_cache_dtype: str = setting("auto", doc="KV cache dtype.")
    quantization: str | None = setting(None, doc="fp8, awq, gptq, ...")
    speculative: SglangSpeculativeConfig = setting(
        factory=SglangSpeculativeConfig, doc="Speculative decoding."
    )
    extra: dict[str, Any] = setting(factory=dict, doc="Passed verbatim to sglang.Engine(...).")


@dataclass(frozen=True)
class TensorrtKvCacheConfig:
    free_gpu_memory_fraction: float | None = setting(None, gt=0, le=1, doc="KV cache share.")
    enable_block_reuse: bool | None = setting(None, doc="Reuse KV blocks (prefix caching).")
    dtype: str | None = setting(None, doc="KV cache dtype: auto, fp8, ...")


@dataclass(frozen=True)
class TensorrtConfig:
    """TensorRT-LLM LLM-API settings (``tensorrt_llm.LLM`` / ``trtllm-serve``)."""

    tensor_parallel_size: int | None = setting(None, ge=1, doc="Tensor parallel size.")
    pipeline_parallel_size: int = setting(1, ge=1, doc="Pipeline parallel size.")
    max_batch_size: int | None = setting(None, ge=1, doc="Max requests per batch.")
    max_num_tokens: int | None = setting(None, ge=1, doc="Max tokens per batch.")
    max_seq_len: int | None = setting(None, ge=1, doc="Max sequence length.")
    kv_cache_config: TensorrtKvCacheConfig = setting(factory=TensorrtKvCacheConfig, doc="KV cache.")
    quantization: str | None = setting(None, doc="QuantAlgo name: FP8, W4A16_AWQ, NVFP4, ...")
    engine_dir: str | None = setting(None, doc="Prebuilt TensorRT engine directory.")
    build: dict[str, Any] = setting(factory=dict, doc="BuildConfig options for engine builds.")
    backend: Literal["pytorch", "tensorrt", "_autodeploy"] | None = setting(
        None, doc="LLM API backend; null is the release default."
    )
    extra: dict[str, Any] = setting(factory=dict, doc="Passed verbatim to tensorrt_llm.LLM(...).")


@dataclass(frozen=True)
class LlamacppConfig:
    """llama.cpp settings (``llama_cpp.Llama`` / llama.cpp's OpenAI server)."""

    quantization: Literal["f32", "f16", "bf16", "q8_0"] | None = setting(
        None,
        doc="Tensor type of the GGUF converted from a model directory; null follows fp_precision "
        "(auto and float32: f32, float16: f16, bfloat16: bf16). Ignored for a .gguf model.",
    )
    n_threads: int | None = setting(
        None, ge=1, doc="Threads for generation; null: llama-cpp-python's half the logical CPUs."
    )
    n_threads_batch: int | None = setting(
        None, ge=1, doc="Threads for prompt processing; null: all logical CPUs."
    )
    n_ctx: int = setting(2048, ge=16, doc="Context length in tokens (prompt plus output).")
    n_batch: int = setting(512, ge=1, doc="Prompt tokens per llama_decode call.")
    flash_attn: bool = setting(False, doc="Flash attention (llama.cpp's CPU kernel too).")
    extra: dict[str, Any] = setting(factory=dict, doc="Passed verbatim to llama_cpp.Llama(...).")
