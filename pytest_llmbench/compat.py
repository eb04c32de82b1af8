"""THE parameter compatibility matrix: universal parameters x backends.

One declarative table drives four things: translating a config into backend-native settings,
warning about or refusing parameters a backend lacks, the ``llm_requires`` marker's skips, and the
generated ``docs/compatibility.md``. Change behaviour here, never in a backend.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from pytest_llmbench.config.schema import DEFAULTS, ExperimentConfig
from pytest_llmbench.errors import ConfigError

BACKENDS: tuple[str, ...] = ("pytorch", "vllm", "sglang", "tensorrt", "openai", "llamacpp")


class Support(str, Enum):
    SUPPORTED = "supported"  # same meaning, same name or a plain rename
    TRANSLATED = "translated"  # same intent, different encoding or semantics (see the note)
    UNSUPPORTED = "unsupported"  # no equivalent: using it is refused, skipped or warned about


Convert = Callable[[Any, ExperimentConfig], Any]


@dataclass(frozen=True)
class Cell:
    """How one backend handles one parameter.

    ``target`` is the native setting, ``"sampling.<name>"`` or ``"engine.<name>"``; ``convert``
    maps our value (and the whole config, for parameters that depend on others) to the native one.
    """

    support: Support
    target: str | None = None
    convert: Convert | None = None
    note: str = ""
    only_when_used: bool = False  # a hint: left to the engine's own default unless set

    def native_value(self, value: Any, config: ExperimentConfig) -> Any:
        return self.convert(value, config) if self.convert else value


def same(target: str | None, note: str = "") -> Cell:
    return Cell(Support.SUPPORTED, target, None, note)


def translated(target: str | None, convert: Convert | None, note: str) -> Cell:
    return Cell(Support.TRANSLATED, target, convert, note)


def unsupported(note: str) -> Cell:
    return Cell(Support.UNSUPPORTED, None, None, note)


def hint(target: str, note: str) -> Cell:
    return Cell(Support.TRANSLATED, target, None, note, only_when_used=True)


def harness(note: str) -> Cell:
    """Handled by our harness itself (workload, runner), identical on every backend."""
    return Cell(Support.SUPPORTED, None, None, note)


@dataclass(frozen=True)
class Row:
    parameter: str  # dotted config key
    description: str
    cells: Mapping[str, Cell] = field(default_factory=dict)


def _greedy_temperature(value: float, config: ExperimentConfig) -> float:
    return 0.0 if config.decoder.greedy else value


def _top_k_minus_one(value: int, config: ExperimentConfig) -> int:
    return -1 if value == 0 else value


def _parallel_sizes(tp_name: str, pp_name: str) -> Convert:
    """sharding.strategy -> {tp_name: n} or {pp_name: n}; {} when the model is not sharded."""

    def convert(value: str, config: ExperimentConfig) -> dict[str, int]:
        n = config.sharding.num_devices
        if value == "tensor_parallel":
            return {tp_name: n}
        if value == "pipeline_parallel":
            return {pp_name: n}
        return {}

    return convert


# TensorRT-LLM decodes greedily when top_k is 1 (or unset) and top_p is unset
# (SamplingParams._greedy_decoding); it has no do_sample flag and documents temperature > 0 only.
# None means "leave the engine's own default": the tensorrt argument builder drops it.
def _trt_greedy_none(value: Any, config: ExperimentConfig) -> Any:
    return None if config.decoder.greedy else value


def _trt_top_k(value: int, config: ExperimentConfig) -> int | None:
    if config.decoder.greedy:
        return 1
    return value or None  # None: the runtime's 0, all logits


def _gguf_type(value: str, config: ExperimentConfig) -> str:
    """fp_precision -> the converted GGUF's tensor type, unless llamacpp.quantization names one."""
    if config.llamacpp.quantization:
        return config.llamacpp.quantization
    return {"float16": "f16", "bfloat16": "bf16"}.get(value, "f32")


_TOP_K_NOTE = "0 (disabled) becomes -1, the engine's 'disabled'"
_ONE_SEQUENCE = "llama-cpp-python's Llama runs one sequence at a time: requests run in turn"
_IGNORE_EOS_NOTE = "with ignore_eos=True when it equals max_output_tokens"
_TRT_GREEDY_NOTE = "greedy is top_k=1 with top_p/temperature left unset (TensorRT-LLM's greedy)"
_GREEDY_NOTE = "greedy is expressed as temperature 0 (no do_sample flag)"
_BATCH_HINT = "a hint: the engine batches continuously; sets the max concurrent sequences"

MATRIX: tuple[Row, ...] = (
    Row(
        "model_name",
        "Local model directory, .gguf file or Hugging Face id[@revision]",
        {
            **{
                b: harness("a local directory or the cached snapshot of a Hugging Face id")
                for b in BACKENDS
                if b != "openai"
            },
            "openai": harness(
                "the server serves its own model; the local directory or snapshot gives the "
                "tokenizer"
            ),
            "llamacpp": harness(
                "a .gguf file (given, or picked from a repository with :FILE.gguf / :QUANT), or "
                "a model directory converted to GGUF (Llama, Qwen2)"
            ),
        },
    ),
    Row(
        "fp_precision",
        "Weight and activation dtype",
        {
            "pytorch": same("engine.dtype"),
            "vllm": same("engine.dtype"),
            "sglang": same("engine.dtype"),
            "tensorrt": same("engine.dtype"),
            "openai": unsupported("fixed by the server when it starts"),
            "llamacpp": translated(
                "engine.gguf_type",
                _gguf_type,
                "the converted GGUF's tensor type (f32, f16, bf16); llamacpp.quantization wins",
            ),
        },
    ),
    Row(
        "max_output_tokens",
        "Output tokens per request",
        {
            "pytorch": same("sampling.max_new_tokens"),
            "vllm": same("sampling.max_tokens"),
            "sglang": same("sampling.max_new_tokens"),
            "tensorrt": same("sampling.max_tokens"),
            "openai": same("sampling.max_tokens"),
            "llamacpp": same("sampling.max_tokens"),
        },
    ),
    Row(
        "min_output_tokens",
        "Minimum output tokens (forced equal to max by default, EOS ignored)",
        {
            "pytorch": translated(
                "sampling.min_new_tokens",
                lambda v, c: c.forced_min_tokens,
                "EOS suppressed until reached",
            ),
            "vllm": translated(
                "sampling.min_tokens", lambda v, c: c.forced_min_tokens, "with ignore_eos=True"
            ),
            "sglang": translated(
                "sampling.min_new_tokens", lambda v, c: c.forced_min_tokens, _IGNORE_EOS_NOTE
            ),
            "tensorrt": translated(
                "sampling.min_tokens", lambda v, c: c.forced_min_tokens, _IGNORE_EOS_NOTE
            ),
            "openai": translated(
                "sampling.min_tokens",
                lambda v, c: c.forced_min_tokens,
                "vLLM/SGLang extension with ignore_eos; other servers may ignore it",
            ),
            "llamacpp": translated(
                "sampling.min_tokens",
                lambda v, c: c.forced_min_tokens,
                "EOS masked by a logits processor until reached",
            ),
        },
    ),
    Row(
        "random_seed",
        "Seed of prompts and sampling",
        {
            "pytorch": same("sampling.seed", "torch.manual_seed before each run"),
            "vllm": same("sampling.seed"),
            "sglang": translated(
                "engine.random_seed", None, "ServerArgs.random_seed: one seed for the engine"
            ),
            "tensorrt": same("sampling.seed"),
            "openai": same("sampling.seed"),
            "llamacpp": same("engine.seed", "Llama(seed=...), reset before each run"),
        },
    ),
    Row(
        "decoder.do_sample",
        "Sample (true) or decode greedily (false)",
        {
            "pytorch": same("sampling.do_sample"),
            "vllm": translated(None, None, _GREEDY_NOTE),
            "sglang": translated(None, None, _GREEDY_NOTE),
            "tensorrt": translated(None, None, _TRT_GREEDY_NOTE),
            "openai": translated(None, None, _GREEDY_NOTE),
            "llamacpp": translated(None, None, _GREEDY_NOTE),
        },
    ),
    Row(
        "decoder.temperature",
        "Softmax temperature",
        {
            "pytorch": same(
                "sampling.temperature", "ignored by transformers when do_sample is false"
            ),
            "vllm": translated("sampling.temperature", _greedy_temperature, "0 when greedy"),
            "sglang": translated("sampling.temperature", _greedy_temperature, "0 when greedy"),
            "tensorrt": translated("sampling.temperature", _trt_greedy_none, "unset when greedy"),
            "openai": translated("sampling.temperature", _greedy_temperature, "0 when greedy"),
            "llamacpp": translated("sampling.temp", _greedy_temperature, "0 when greedy"),
        },
    ),
    Row(
        "decoder.top_p",
        "Nucleus sampling",
        {
            **{b: same("sampling.top_p") for b in BACKENDS},
            "tensorrt": translated(
                "sampling.top_p", _trt_greedy_none, "unset when greedy; 1.0 passed when sampling"
            ),
        },
    ),
    Row(
        "decoder.top_k",
        "Top-k sampling (0 disables)",
        {
            "pytorch": same("sampling.top_k", "0 disables"),
            "vllm": translated("sampling.top_k", _top_k_minus_one, _TOP_K_NOTE),
            "sglang": translated("sampling.top_k", _top_k_minus_one, _TOP_K_NOTE),
            "tensorrt": translated(
                "sampling.top_k", _trt_top_k, "1 when greedy; 0 left unset (all)"
            ),
            "openai": translated(
                "sampling.top_k", _top_k_minus_one, "vLLM/SGLang extension; " + _TOP_K_NOTE
            ),
            "llamacpp": same(
                "sampling.top_k", "0 disables (llama.cpp: <= 0 is the whole vocabulary)"
            ),
        },
    ),
    Row(
        "decoder.min_p",
        "Min-p sampling",
        {
            "pytorch": same("sampling.min_p"),
            "vllm": same("sampling.min_p"),
            "sglang": same("sampling.min_p"),
            "tensorrt": translated(
                "sampling.min_p",
                _trt_greedy_none,
                "unset when greedy; pytorch backend of the LLM API",
            ),
            "openai": same("sampling.min_p", "vLLM/SGLang extension"),
            "llamacpp": same("sampling.min_p"),
        },
    ),
    Row(
        "decoder.repetition_penalty",
        "Penalty on repeated tokens",
        {
            "pytorch": same("sampling.repetition_penalty"),
            "vllm": same("sampling.repetition_penalty"),
            "sglang": same("sampling.repetition_penalty"),
            "tensorrt": same("sampling.repetition_penalty"),
            "openai": same("sampling.repetition_penalty", "vLLM/SGLang extension"),
            "llamacpp": same("sampling.repeat_penalty"),
        },
    ),
    Row(
        "decoder.no_repeat_ngram_size",
        "Forbid repeated n-grams",
        {
            "pytorch": same("sampling.no_repeat_ngram_size"),
            "vllm": unsupported("vLLM has no n-gram blocking"),
            "sglang": unsupported("SGLang has no n-gram blocking"),
            "tensorrt": same("sampling.no_repeat_ngram_size"),
            "openai": unsupported("not part of the OpenAI protocol"),
            "llamacpp": unsupported("llama.cpp has no n-gram blocking"),
        },
    ),
    Row(
        "quantization.load_in_4bit",
        "BitsAndBytes 4-bit weights",
        {
            "pytorch": same("engine.load_in_4bit", "needs CUDA and bitsandbytes"),
            "vllm": translated(
                "engine.quantization",
                lambda v, c: "bitsandbytes" if v else None,
                "quantization='bitsandbytes'",
            ),
            "sglang": unsupported("use sglang.quantization (awq, gptq, fp8) instead"),
            "tensorrt": unsupported("use tensorrt.quantization (W4A16_AWQ, FP8) instead"),
            "openai": unsupported("fixed by the server when it starts"),
            "llamacpp": unsupported(
                "use llamacpp.quantization (q8_0) or a quantised .gguf instead"
            ),
        },
    ),
    Row(
        "quantization.load_in_8bit",
        "BitsAndBytes 8-bit weights",
        {
            "pytorch": same("engine.load_in_8bit", "needs CUDA and bitsandbytes"),
            "vllm": unsupported("vLLM supports BitsAndBytes 4-bit only, not 8-bit"),
            "sglang": unsupported("use sglang.quantization instead"),
            "tensorrt": unsupported("use tensorrt.quantization (e.g. W8A16) instead"),
            "openai": unsupported("fixed by the server when it starts"),
            "llamacpp": unsupported("use llamacpp.quantization: q8_0 instead"),
        },
    ),
    Row(
        "batching.batch_size",
        "Requests per batch",
        {
            "pytorch": same("engine.batch_size", "exact: generate() runs batches of this size"),
            "vllm": hint("engine.max_num_seqs", _BATCH_HINT),
            "sglang": hint("engine.max_running_requests", _BATCH_HINT),
            "tensorrt": hint("engine.max_batch_size", "an upper bound of in-flight batching"),
            "openai": translated(
                None, None, "requests in flight = batch_size when traffic is offline"
            ),
            "llamacpp": translated(None, None, _ONE_SEQUENCE),
        },
    ),
    Row(
        "batching.strategy",
        "static or token-aware dynamic batches",
        {
            "pytorch": same("engine.batching_strategy"),
            "vllm": translated(None, None, "always continuous batching"),
            "sglang": translated(None, None, "always continuous batching"),
            "tensorrt": translated(None, None, "always in-flight batching"),
            "openai": translated(None, None, "the server decides"),
            "llamacpp": translated(None, None, _ONE_SEQUENCE),
        },
    ),
    Row(
        "batching.max_tokens_per_batch",
        "Token cap per dynamic batch",
        {
            "pytorch": same("engine.max_tokens_per_batch"),
            "vllm": hint("engine.max_num_batched_tokens", "per scheduler step"),
            "sglang": hint("engine.chunked_prefill_size", "per prefill chunk"),
            "tensorrt": hint("engine.max_num_tokens", "per iteration"),
            "openai": unsupported("fixed by the server when it starts"),
            "llamacpp": unsupported("set llamacpp.n_batch (prompt tokens per decode call)"),
        },
    ),
    Row(
        "sharding.strategy",
        "Multi-GPU strategy",
        {
            "pytorch": translated(
                "engine.device_map",
                lambda v, c: "auto" if v != "none" else None,
                "device_map='auto' (layers split over GPUs, run in turn)",
            ),
            "vllm": translated(
                "engine.parallel",
                _parallel_sizes("tensor_parallel_size", "pipeline_parallel_size"),
                "tensor_parallel_size or pipeline_parallel_size",
            ),
            "sglang": translated(
                "engine.parallel", _parallel_sizes("tp_size", "pp_size"), "tp_size or pp_size"
            ),
            "tensorrt": translated(
                "engine.parallel",
                _parallel_sizes("tensor_parallel_size", "pipeline_parallel_size"),
                "tensor_parallel_size or pipeline_parallel_size",
            ),
            "openai": unsupported("fixed by the server when it starts"),
            "llamacpp": unsupported("one process on the CPU"),
        },
    ),
    Row(
        "traffic_simulation.mode",
        "Request arrival pattern",
        {
            "pytorch": translated(
                None, None, "arrivals are batched: generate() has no async queue"
            ),
            "vllm": same(None, "async engine with streaming"),
            "sglang": same(None, "async engine with streaming"),
            "tensorrt": same(None, "generate_async with streaming"),
            "openai": same(None, "concurrent HTTP requests"),
            "llamacpp": translated(
                None, None, "arrivals are served in turn: " + _ONE_SEQUENCE.split(": ")[0]
            ),
        },
    ),
)

_BY_NAME = {row.parameter: row for row in MATRIX}


def unknown_parameter(parameter: str) -> str | None:
    """Why ``parameter`` is not a universal parameter (closest names first), or None if it is.

    Worded to follow the name: ``f"{parameter} {unknown_parameter(parameter)}"``."""
    if parameter in _BY_NAME:
        return None
    import difflib

    close = difflib.get_close_matches(parameter, _BY_NAME, n=2, cutoff=0.8)
    hint = f"did you mean {' or '.join(close)}? " if close else ""
    known = ", ".join(sorted(_BY_NAME))
    return f"is not a universal parameter; {hint}known: {known}"


def row(parameter: str) -> Row:
    problem = unknown_parameter(parameter)
    if problem:
        raise ConfigError(parameter, problem)
    return _BY_NAME[parameter]


def cell(parameter: str, backend: str) -> Cell:
    cells = row(parameter).cells
    if backend not in cells:
        # Third-party backends declare nothing: treat as unsupported rather than guess.
        return unsupported(f"backend {backend!r} declares no support")
    return cells[backend]


def get_value(config: ExperimentConfig, parameter: str) -> Any:
    value: Any = config
    for part in parameter.split("."):
        value = getattr(value, part)
    return value


def is_used(config: ExperimentConfig, parameter: str) -> bool:
    """A parameter is used when the config moves it away from its default."""
    return get_value(config, parameter) != get_value(DEFAULTS, parameter)


@dataclass(frozen=True)
class Translation:
    """A config translated for one backend."""

    backend: str
    sampling: dict[str, Any]
    engine: dict[str, Any]
    unsupported: tuple[tuple[str, str], ...]  # (parameter, reason) of used parameters
    notes: tuple[tuple[str, str], ...]  # (parameter, note) of used, translated parameters


def translate(config: ExperimentConfig, backend: str) -> Translation:
    """Map every universal parameter onto ``backend``'s native settings."""
    sampling: dict[str, Any] = {}
    engine: dict[str, Any] = {}
    problems: list[tuple[str, str]] = []
    notes: list[tuple[str, str]] = []
    for r in MATRIX:
        c = cell(r.parameter, backend)
        value = get_value(config, r.parameter)
        used = is_used(config, r.parameter)
        if c.support is Support.UNSUPPORTED:
            if used:
                problems.append((r.parameter, c.note))
            continue
        if c.support is Support.TRANSLATED and used:
            notes.append((r.parameter, c.note))
        if c.target is None or (c.only_when_used and not used):
            continue
        scope, _, name = c.target.partition(".")
        (sampling if scope == "sampling" else engine)[name] = c.native_value(value, config)
    return Translation(backend, sampling, engine, tuple(problems), tuple(notes))


def unsupported_reason(parameter: str, backend: str) -> str | None:
    """Why ``backend`` cannot honour ``parameter``, or None when it can."""
    c = cell(parameter, backend)
    if c.support is Support.UNSUPPORTED:
        return f"{backend} does not support {parameter}: {c.note}"
    return None


def render_markdown() -> str:
    """The text of docs/compatibility.md (a test keeps the checked-in file in sync)."""
    symbol = {Support.SUPPORTED: "yes", Support.TRANSLATED: "translated", Support.UNSUPPORTED: "no"}
    lines = [
        "# Parameter compatibility",
        "",
        "Generated from `pytest_llmbench/compat.py` by `llmbench compat --markdown`; do not edit.",
        "",
        "`yes`: same meaning; `translated`: same intent, different encoding (see the note);",
        "`no`: no equivalent. A config that sets a `no` parameter away from its default is",
        "refused, skipped or warned about per `--llm-unsupported` (default: skip).",
        "",
        "| parameter | " + " | ".join(BACKENDS) + " |",
        "|---" * (len(BACKENDS) + 1) + "|",
    ]
    for r in MATRIX:
        cells = []
        for b in BACKENDS:
            c = cell(r.parameter, b)
            text = symbol[c.support]
            if c.target:
                text += f" `{c.target.split('.', 1)[1]}`"
            if c.note:
                text += f" ({c.note})"
            cells.append(text)
        lines.append(f"| `{r.parameter}` | " + " | ".join(cells) + " |")
    lines.append("")
    return "\n".join(lines)
