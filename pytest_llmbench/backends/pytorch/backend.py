"""HuggingFace transformers backend: ``model.generate`` with exact batches and forced lengths."""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pytest_llmbench.backends.base import (
    Backend,
    BackendSpec,
    Capabilities,
    Completion,
    EngineInfo,
    GenerationRequest,
)
from pytest_llmbench.backends.overhead import OverheadComparison
from pytest_llmbench.backends.pytorch.batching import dynamic_batches, static_batches
from pytest_llmbench.backends.pytorch.cache import StaticCaches, cuda_graph_state
from pytest_llmbench.backends.pytorch.overhead import compare_generate
from pytest_llmbench.backends.pytorch.timing import StepClock
from pytest_llmbench.backends.registry import install_hint
from pytest_llmbench.errors import BackendUnavailable, ConfigError, UnsupportedParameter

if TYPE_CHECKING:
    pass

    from pytest_llmbench.speculative import SpeculativeCounters

_SAMPLING_ONLY = ("temperature", "top_p", "top_k", "min_p")


def resolve_dtype(precision: str, device: str) -> str:
    """``auto`` is float32 on CPU (bf16 matmuls are slow there) and bfloat16 on CUDA."""
    if precision != "auto":
        return precision
    return "bfloat16" if device == "cuda" else "float32"


class _CandidateCounter:
    """Counts drafted and accepted tokens of transformers' assisted generation, by wrapping the
    candidate generator that ``generate`` builds (``model._get_candidate_generator``).

    It only observes: ``get_candidates`` results and the ``n_matches`` passed to
    ``update_candidate_strategy`` go through unchanged, so outputs are those of the plain call.
    """

    def __init__(self, method: str) -> None:
        self.method = method
        self.drafts = 0
        self.draft_tokens = 0
        self.accepted_tokens = 0

    def attach(self, model: Any) -> None:
        build = model._get_candidate_generator  # bound method of the class

        def counted(*args: Any, **kwargs: Any) -> Any:
            return self._wrap(build(*args, **kwargs))

        model._get_candidate_generator = counted

    def _wrap(self, generator: Any) -> Any:
        get_candidates = generator.get_candidates
        update = generator.update_candidate_strategy
        drafted = [0]

        def counted_candidates(input_ids: Any, *args: Any, **kwargs: Any) -> Any:
            out = get_candidates(input_ids, *args, **kwargs)
            drafted[0] = int(out[0].shape[1] - input_ids.shape[1])
            if drafted[0] > 0:
                self.drafts += 1
                self.draft_tokens += drafted[0]
            return out

        def counted_update(input_ids: Any, scores: Any, num_matches: Any) -> Any:
            if drafted[0] > 0:
                self.accepted_tokens += min(int(num_matches), drafted[0])
            return update(input_ids, scores, num_matches)

        generator.get_candidates = counted_candidates
        generator.update_candidate_strategy = counted_update
        return generator

    def counters(self) -> SpeculativeCounters:
        from pytest_llmbench.speculative import SpeculativeCounters

        return SpeculativeCounters(
            self.method,
            "transformers candidate generator",
            self.drafts,
            self.draft_tokens,
            self.accepted_tokens,
        )


class PytorchBackend(Backend):
    name = "pytorch"
    extra = "pytorch"
    capabilities = Capabilities(logits=True)

    def __init__(self, spec: BackendSpec) -> None:
        super().__init__(spec)
        self._model: Any = None
        self._draft: Any = None
        self._tokenizer: Any = None
        self._static: StaticCaches | None = None  # reused static KV caches (cache.py)
        self._timing = ""
        self._speculation: _CandidateCounter | None = None

    @classmethod
    def check_available(cls) -> str | None:
        for module in ("torch", "transformers"):
            if importlib.util.find_spec(module) is None:
                return f"{module} is not installed: {install_hint(cls.name, cls.extra)}"
        return None

    # -- loading -----------------------------------------------------------------------------
    def _load_kwargs(self) -> dict[str, Any]:
        import torch

        cfg = self.spec.config
        engine = self.spec.translation.engine
        kwargs: dict[str, Any] = {
            "dtype": getattr(torch, resolve_dtype(cfg.fp_precision, self.spec.device)),
            "low_cpu_mem_usage": cfg.pytorch.low_cpu_mem_usage,
        }
        if cfg.pytorch.attn_implementation:
            kwargs["attn_implementation"] = cfg.pytorch.attn_implementation
        if engine.get("device_map"):
            kwargs["device_map"] = engine["device_map"]
            if cfg.pytorch.max_memory:
                kwargs["max_memory"] = {
                    _device_key(k): v for k, v in cfg.pytorch.max_memory.items()
                }
            elif self.spec.device == "cuda":
                from accelerate.utils import get_max_memory

                kwargs["max_memory"] = sharded_max_memory(
                    get_max_memory(), cfg.sharding.num_devices
                )
        if engine.get("load_in_4bit") or engine.get("load_in_8bit"):
            kwargs["quantization_config"] = self._bnb_config(engine)
            kwargs.setdefault("device_map", {"": 0})
        return kwargs

    def _bnb_config(self, engine: dict[str, Any]) -> Any:
        field = (
            "quantization.load_in_4bit"
            if engine.get("load_in_4bit")
            else "quantization.load_in_8bit"
        )
        if self.spec.device != "cuda":
            raise UnsupportedParameter(f"{field} needs CUDA; this run uses {self.spec.device}")
        if importlib.util.find_spec("bitsandbytes") is None:
            raise UnsupportedParameter(f"{field} needs bitsandbytes: pip install bitsandbytes")
        from transformers import BitsAndBytesConfig

        return BitsAndBytesConfig(
            load_in_4bit=bool(engine.get("load_in_4bit")),
            load_in_8bit=bool(engine.get("load_in_8bit")),
        )

    def start(self) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        cfg = self.spec.config
        path = self.spec.model_path
        self._tokenizer = AutoTokenizer.from_pretrained(path, padding_side="left")
        if self._tokenizer.pad_token_id is None:
            self._tokenizer.pad_token = self._tokenizer.eos_token
        kwargs = self._load_kwargs()
        model: Any = AutoModelForCausalLM.from_pretrained(path, **kwargs)
        if "device_map" not in kwargs:
            model.to(self.spec.device)
        model.eval()
        assisted = cfg.pytorch.assisted_generation
        method = assisted.resolved_method
        if cfg.pytorch.cache_implementation == "static":
            if method is not None or not cfg.pytorch.use_cache:
                model.generation_config.cache_implementation = "static"  # transformers decides
            else:
                self._static = StaticCaches(model)
        tc = cfg.pytorch.torch_compile
        if tc.enabled:
            model.forward = torch.compile(
                model.forward, mode=tc.mode, fullgraph=tc.fullgraph, backend=tc.backend
            )
        self._model = model
        if method is not None:
            if cfg.batching.batch_size != 1:
                key = "model" if method == "draft_model" else "method"
                raise UnsupportedParameter(
                    f"pytorch.assisted_generation.{key} needs batching.batch_size 1 (transformers "
                    f"assisted generation is single-sequence), got {cfg.batching.batch_size}"
                )
            self._speculation = _CandidateCounter(method)
            self._speculation.attach(model)
        if method == "draft_model" and assisted.model:
            self._draft = AutoModelForCausalLM.from_pretrained(assisted.model, **kwargs)
            if "device_map" not in kwargs:
                self._draft.to(self.spec.device)
            self._draft.eval()

    # -- generation --------------------------------------------------------------------------
    def generate_kwargs(self, *, greedy: bool = False) -> dict[str, Any]:
        """``model.generate`` arguments from the translated sampling settings and ``pytorch:``;
        ``greedy`` drops every sampling setting (the agreement probe's plain argmax)."""
        cfg = self.spec.config
        pt = cfg.pytorch
        sampling = dict(self.spec.translation.sampling)
        sampling.pop("seed", None)
        if greedy:
            sampling = {"do_sample": False}
        if not sampling.get("do_sample"):
            for key in _SAMPLING_ONLY:  # transformers warns when they are set for greedy decoding
                sampling.pop(key, None)
        else:
            if sampling.get("top_k") == 0:
                sampling.pop("top_k")  # transformers' own "disabled" is None, not 0
            if sampling.get("min_p") == 0:
                sampling.pop("min_p")
        if sampling.get("no_repeat_ngram_size") == 0:
            sampling.pop("no_repeat_ngram_size")
        kwargs: dict[str, Any] = {
            **sampling,
            "use_cache": pt.use_cache,
            "num_beams": pt.num_beams,
            "output_scores": pt.output_scores,
            "return_dict_in_generate": pt.return_dict_in_generate,
            "pad_token_id": self._tokenizer.pad_token_id,
        }
        if pt.num_beams > 1:
            kwargs["early_stopping"] = pt.early_stopping
            kwargs["length_penalty"] = pt.length_penalty
        assisted = pt.assisted_generation
        if self._draft is not None:
            kwargs["assistant_model"] = self._draft
            kwargs["num_assistant_tokens"] = assisted.num_tokens
        elif assisted.resolved_method == "prompt_lookup":
            kwargs["prompt_lookup_num_tokens"] = assisted.num_tokens
            kwargs["max_matching_ngram_size"] = assisted.max_ngram
        kwargs.update(pt.extra)
        if greedy:
            kwargs["num_beams"] = 1
            kwargs.pop("early_stopping", None)
            kwargs.pop("length_penalty", None)
        return kwargs

    def _batches(self, requests: Sequence[GenerationRequest]) -> list[list[GenerationRequest]]:
        b = self.spec.config.batching
        if b.strategy == "dynamic":
            return dynamic_batches(requests, b.max_tokens_per_batch, b.batch_size)
        return static_batches(requests, b.batch_size)

    def _run_batch(
        self, batch: list[GenerationRequest], submitted_s: float, base_kwargs: dict[str, Any]
    ) -> list[Completion]:
        import torch
        from transformers import StoppingCriteriaList

        input_ids, attention = self._padded_inputs(batch)
        width = input_ids.shape[1]
        clock = StepClock(self._model.device)
        kwargs = dict(base_kwargs)
        kwargs["max_new_tokens"] = max(r.max_output_tokens for r in batch)
        kwargs["min_new_tokens"] = min(r.min_output_tokens for r in batch)
        kwargs["stopping_criteria"] = StoppingCriteriaList([clock])
        clock.start()
        with torch.inference_mode():  # the static cache is built and reset in it, like its use
            if self._static is not None:
                length = width + kwargs["max_new_tokens"]
                kwargs["past_key_values"] = self._static.get(len(batch), length)
            out = self._model.generate(input_ids=input_ids, attention_mask=attention, **kwargs)
        if self.spec.device == "cuda":
            torch.cuda.synchronize()
        end = time.perf_counter()
        step_times = clock.times_s()
        self._timing = clock.method
        sequences = out.sequences if hasattr(out, "sequences") else out
        return self._completions(batch, sequences, step_times, submitted_s, end)

    def _padded_inputs(self, batch: Sequence[GenerationRequest]) -> tuple[Any, Any]:
        """Token ids and attention mask of ``batch``, left-padded to its longest prompt, on the
        model's device."""
        import torch

        width = max(r.input_tokens for r in batch)
        pad = self._tokenizer.pad_token_id
        ids = [[pad] * (width - r.input_tokens) + list(r.prompt_token_ids) for r in batch]
        mask = [[0] * (width - r.input_tokens) + [1] * r.input_tokens for r in batch]
        device = self._model.device
        return (
            torch.tensor(ids, dtype=torch.long, device=device),
            torch.tensor(mask, dtype=torch.long, device=device),
        )

    def _completions(
        self,
        batch: Sequence[GenerationRequest],
        sequences: Any,
        step_times: Sequence[float],
        submitted_s: float,
        end_s: float,
    ) -> list[Completion]:
        """One Completion per request from ``generate``'s sequences (prompt columns first) and
        the step clock's times; a row's length ends at its first EOS past the forced minimum."""
        width = max(r.input_tokens for r in batch)
        generated = sequences[:, width:].tolist()
        eos = self._tokenizer.eos_token_id
        completions = []
        for req, row in zip(batch, generated, strict=True):
            n = _generated_length(row, eos, req.min_output_tokens)
            n = min(n, req.max_output_tokens)
            times = tuple(step_times[:n])
            completions.append(
                Completion(
                    request_id=req.request_id,
                    input_tokens=req.input_tokens,
                    output_tokens=n,
                    start_s=submitted_s,
                    end_s=times[-1] if times else end_s,
                    first_token_s=times[0] if times else None,
                    token_times_s=times,
                    output_token_ids=tuple(row[:n]),
                )
            )
        return completions

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        import torch

        if self._model is None:
            raise RuntimeError("start() was not called")
        base_kwargs = self.generate_kwargs()
        if base_kwargs.get("do_sample"):  # greedy draws nothing; seeding costs ~0.3 ms a call
            torch.manual_seed(self.spec.config.random_seed)
        submitted = time.perf_counter()  # offline: every request arrives now, batches queue
        by_id: dict[str, Completion] = {}
        for batch in self._batches(requests):
            for c in self._run_batch(batch, submitted, base_kwargs):
                by_id[c.request_id] = c
        return [by_id[r.request_id] for r in requests]

    def harness_overhead(
        self,
        requests: Sequence[GenerationRequest],
        repetitions: int = 5,
        warmup: bool = True,
        harness_first: bool = False,
    ) -> OverheadComparison:
        """Output tok/s of ``generate`` vs transformers' ``generate`` called by hand, same model."""
        return compare_generate(self, requests, repetitions, warmup, harness_first)

    # -- the unified interface ---------------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        return list(self._tokenizer.encode(text, add_special_tokens=False))

    def decode(self, token_ids: Sequence[int]) -> str:
        return str(self._tokenizer.decode(list(token_ids), skip_special_tokens=True))

    def generate_text(self, prompt: str, max_new_tokens: int, stop: Sequence[str] = ()) -> str:
        """Greedy text completion that ends at the first of ``stop`` strings (not included)."""
        import torch

        ids = self._tokenizer(prompt, return_tensors="pt").to(self._model.device)
        kwargs: dict[str, Any] = {
            "max_new_tokens": max_new_tokens,
            "do_sample": False,
            "pad_token_id": self._tokenizer.pad_token_id,
        }
        if stop:
            kwargs["stop_strings"] = list(stop)
            kwargs["tokenizer"] = self._tokenizer
        with torch.inference_mode():
            out = self._model.generate(**ids, **kwargs)
        text = self.decode(out[0, ids["input_ids"].shape[1] :].tolist())
        for s in stop:
            cut = text.find(s)
            if cut >= 0:
                text = text[:cut]
        return text

    def greedy_token_ids(
        self, prompts: Sequence[Sequence[int]], output_tokens: int
    ) -> list[tuple[int, ...]]:
        """Greedy continuations of exactly ``output_tokens`` tokens, batched as configured."""
        import torch

        if self._model is None:
            raise RuntimeError("start() was not called")
        torch.manual_seed(self.spec.config.random_seed)
        requests = [
            GenerationRequest(f"probe-{i}", tuple(ids), output_tokens, output_tokens)
            for i, ids in enumerate(prompts)
        ]
        kwargs = self.generate_kwargs(greedy=True)
        submitted = time.perf_counter()
        by_id = {
            c.request_id: c.output_token_ids
            for batch in self._batches(requests)
            for c in self._run_batch(batch, submitted, kwargs)
        }
        return [tuple(by_id[r.request_id]) for r in requests]

    def speculative_counters(self) -> SpeculativeCounters | None:
        return None if self._speculation is None else self._speculation.counters()

    def token_logprobs(self, prompt_ids: Sequence[int], response_ids: Sequence[int]) -> list[float]:
        """Log-probability of each response token given the prompt and the preceding response."""
        import torch

        if not prompt_ids:
            raise ValueError("prompt_ids must not be empty")
        ids = torch.tensor([list(prompt_ids) + list(response_ids)], device=self._model.device)
        with torch.inference_mode():
            logits = self._model(ids).logits.float()
        logprobs = torch.log_softmax(logits[0, len(prompt_ids) - 1 : -1], dim=-1)
        target = torch.tensor(list(response_ids), device=logprobs.device)
        return logprobs.gather(1, target.unsqueeze(1)).squeeze(1).tolist()

    def info(self) -> EngineInfo:
        import torch
        import transformers

        details = {"torch": torch.__version__, "transformers": transformers.__version__}
        if self._model is not None:
            details["dtype"] = str(self._model.dtype).removeprefix("torch.")
            details["attn_implementation"] = str(
                getattr(self._model.config, "_attn_implementation", "")
            )
            if self._static is not None:
                details["static_cache"] = (
                    "built once per batch shape, early-initialised, reset per call"
                    if self._static.early_initialised
                    else "built once per batch shape, reset per call"
                )
            if self.spec.device == "cuda":  # whichever way the decode step was compiled, if at all
                details["cuda_graphs"] = cuda_graph_state(self._model.device.index or 0)
        if self._timing:
            details["token_timing"] = self._timing
        devices: tuple[int, ...] = ()
        if self.spec.device == "cuda" and self._model is not None:
            devices = cuda_ordinals(p.device for p in self._model.parameters())
        return EngineInfo(
            backend=self.name,
            version=transformers.__version__,
            model=self.spec.model_path,
            device=self.spec.device,
            cuda_devices=devices,
            details=details,
        )

    def close(self) -> None:
        self._model = None
        self._draft = None
        self._speculation = None
        if self._static is not None:
            self._static.clear()
            self._static = None
        if self.spec.device == "cuda":
            import torch

            torch.cuda.empty_cache()


def _generated_length(row: list[int], eos: int | None, min_tokens: int) -> int:
    """Tokens up to and including the first EOS at or after ``min_tokens`` (pads follow it)."""
    if eos is None:
        return len(row)
    for i in range(min_tokens, len(row)):
        if row[i] == eos:
            return i + 1
    return len(row)


def sharded_max_memory(free: Mapping[int | str, int], num_devices: int) -> dict[int | str, int]:
    """``max_memory`` for ``device_map="auto"`` on the first ``num_devices`` GPUs.

    Alone, ``device_map="auto"`` spreads the model over every GPU CUDA sees; leaving the other
    GPUs out of ``max_memory`` keeps it on ``sharding.num_devices`` of them (the CPU keeps its
    entry: what does not fit is offloaded, as without the limit). ``free``: accelerate's
    ``get_max_memory()`` (bytes per CUDA ordinal, and ``"cpu"``). ConfigError naming
    ``sharding.num_devices`` when fewer GPUs are visible.
    """
    gpus = sorted(k for k in free if isinstance(k, int))
    if len(gpus) < num_devices:
        raise ConfigError(
            "sharding.num_devices",
            f"{num_devices} GPUs asked for but CUDA sees {len(gpus)}; lower it or make more "
            "GPUs visible (CUDA_VISIBLE_DEVICES)",
        )
    return {k: v for k, v in free.items() if not isinstance(k, int) or k in gpus[:num_devices]}


def cuda_ordinals(devices: Iterable[Any]) -> tuple[int, ...]:
    """The CUDA ordinals among ``devices`` (``torch.device`` of each parameter); parameters
    offloaded to the CPU or disk (``device_map``) are on no GPU and count for none."""
    return tuple(sorted({d.index or 0 for d in devices if d.type == "cuda"}))


def _device_key(key: str) -> int | str:
    return int(key) if key.isdigit() else key


def cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def resolve_device(requested: str) -> str:
    """``auto`` -> cuda when torch sees a GPU, else cpu; ``cuda`` without a GPU is an error."""
    if requested == "cpu":
        return "cpu"
    has_cuda = cuda_available()
    if requested == "cuda" and not has_cuda:
        raise BackendUnavailable("--llm-device cuda: torch sees no CUDA device")
    return "cuda" if has_cuda else "cpu"
