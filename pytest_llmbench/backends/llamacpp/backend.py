"""llama.cpp in process, through llama-cpp-python's ``Llama``: GGUF models on the CPU.

``--llm-model`` is a ``.gguf`` file, or a model directory that is converted to GGUF first
(:mod:`.gguf_convert`, cached). ``Llama`` runs one sequence at a time, so the requests of an
offline batch run in turn, each submitted at the batch's start (their latencies include the
wait, as an offline engine's would).

Each request: the context is reset (no prefix reuse from the previous request, so repetitions of
one prompt stay independent), then ``Llama.generate`` streams token ids; each one is stamped
with ``perf_counter`` as it is yielded (TTFT includes the prompt's evaluation) and the loop stops
after ``max_tokens``. The forced length is a logits processor that masks EOS until
``min_tokens`` tokens exist, as ``min_new_tokens`` does in transformers; greedy decoding is
temperature 0 (llama.cpp's greedy sampler).
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pytest_llmbench.backends.base import (
    Backend,
    BackendSpec,
    Capabilities,
    Completion,
    EngineInfo,
    GenerationRequest,
)
from pytest_llmbench.backends.llamacpp.args import llama_kwargs, sampling_kwargs
from pytest_llmbench.errors import ConfigError

#: The install hint: llama-cpp-python ships as source only, built by pip (C++ compiler, CMake).
INSTALL_HINT = (
    "llama-cpp-python is not installed: pip install pytest-llmbench[llamacpp] (builds llama.cpp "
    "from source: a C++ compiler and CMake are needed; bash ci/setup.sh does it)"
)
TIMING = "streamed: perf_counter as Llama.generate yields each token"


def eos_mask(eos: int, prompt_tokens: int, min_tokens: int) -> Callable[[Any, Any], Any]:
    """A llama-cpp-python logits processor: EOS impossible until ``min_tokens`` are generated."""

    def mask(input_ids: Any, scores: Any) -> Any:
        if len(input_ids) - prompt_tokens < min_tokens:
            scores[eos] = -float("inf")
        return scores

    return mask


class LlamacppBackend(Backend):
    name = "llamacpp"
    extra = "llamacpp"
    capabilities = Capabilities(streaming=True, logits=True)

    def __init__(self, spec: BackendSpec) -> None:
        super().__init__(spec)
        self._llm: Any = None
        self._gguf: Path | None = None
        self._tokenizer: Any = None

    @classmethod
    def check_available(cls) -> str | None:
        if importlib.util.find_spec("llama_cpp") is None:
            return INSTALL_HINT
        if importlib.util.find_spec("gguf") is None:
            return "gguf is not installed: pip install pytest-llmbench[llamacpp]"
        return None

    def model_file(self) -> Path:
        """The GGUF this backend loads: the given file, or the model directory converted."""
        path = Path(self.spec.model_path)
        if path.is_file():
            if path.suffix != ".gguf":
                raise ConfigError("model_name", f"{path} is a file but not a .gguf file")
            return path
        if not path.is_dir():
            raise ConfigError("model_name", f"{path}: no such file or directory")
        from pytest_llmbench.backends.llamacpp.gguf_convert import ensure_gguf

        return ensure_gguf(path, self.spec.translation.engine["gguf_type"])

    def start(self) -> None:
        from llama_cpp import Llama

        self._gguf = self.model_file()
        self._llm = Llama(model_path=str(self._gguf), **llama_kwargs(self.spec))

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        if self._llm is None:
            raise RuntimeError("start() was not called")
        llm = self._llm
        sampling = sampling_kwargs(self.spec.translation)
        eos = int(llm.token_eos())
        seed = self.spec.translation.engine.get("seed")
        submitted = time.perf_counter()  # offline: every request arrives now, then waits its turn
        out = []
        for request in requests:
            llm.reset()
            if seed is not None:
                llm.set_seed(int(seed))
            prompt = list(request.prompt_token_ids)
            mask = eos_mask(eos, len(prompt), request.min_output_tokens)
            times: list[float] = []
            ids: list[int] = []
            stream = llm.generate(prompt, reset=True, logits_processor=[mask], **sampling)
            try:
                for token in stream:
                    times.append(time.perf_counter())
                    ids.append(int(token))
                    if len(ids) >= request.max_output_tokens or (
                        token == eos and len(ids) >= request.min_output_tokens
                    ):
                        break
            finally:
                stream.close()
            out.append(
                Completion(
                    request_id=request.request_id,
                    input_tokens=request.input_tokens,
                    output_tokens=len(ids),
                    start_s=submitted,
                    end_s=times[-1] if times else time.perf_counter(),
                    first_token_s=times[0] if times else None,
                    token_times_s=tuple(times),
                    output_token_ids=tuple(ids),
                )
            )
        return out

    # -- the unified interface ---------------------------------------------------------------
    def _hf_tokenizer(self) -> Any:
        if self._tokenizer is None:
            from pytest_llmbench.workload.tokenizer import hf_tokenizer

            self._tokenizer = hf_tokenizer(self.spec.model_path)
        return self._tokenizer

    def encode(self, text: str) -> list[int]:
        if Path(self.spec.model_path).is_dir():
            return list(self._hf_tokenizer().encode(text, add_special_tokens=False))
        return list(self._llm.tokenize(text.encode(), add_bos=False, special=False))

    def decode(self, token_ids: Sequence[int]) -> str:
        if Path(self.spec.model_path).is_dir():
            return str(self._hf_tokenizer().decode(list(token_ids), skip_special_tokens=True))
        return bytes(self._llm.detokenize(list(token_ids))).decode("utf-8", errors="replace")

    def token_logprobs(self, prompt_ids: Sequence[int], response_ids: Sequence[int]) -> list[float]:
        """Log-probability of each response token given the prompt and the preceding response."""
        import numpy as np

        if not prompt_ids:
            raise ValueError("prompt_ids must not be empty")
        from llama_cpp import Llama

        assert self._gguf is not None
        # Logits of every position need logits_all, which the serving engine leaves off (it
        # costs memory and time per token): a second, scoring-only context on the same file.
        scorer = Llama(model_path=str(self._gguf), **llama_kwargs(self.spec), logits_all=True)
        try:
            ids = list(prompt_ids) + list(response_ids)
            scorer.eval(ids)
            logits = np.asarray(scorer.scores[: len(ids)], dtype=np.float64)
        finally:
            scorer.close()
        rows = logits[len(prompt_ids) - 1 : len(ids) - 1]
        rows = rows - rows.max(axis=1, keepdims=True)
        logprobs = rows - np.log(np.exp(rows).sum(axis=1, keepdims=True))
        return [float(logprobs[i, t]) for i, t in enumerate(response_ids)]

    def info(self) -> EngineInfo:
        import llama_cpp

        details = {"token_timing": TIMING, "prefix_reuse": "off (context reset per request)"}
        if self._gguf is not None:
            details["gguf"] = self._gguf.name
            given = Path(self.spec.model_path).is_file()
            gguf_type = "as given" if given else str(self.spec.translation.engine["gguf_type"])
            details["gguf_type"] = gguf_type
            if not given:
                details["dtype"] = f"gguf {gguf_type}"  # what the agreement probe reports
        if self._llm is not None:
            details["n_threads"] = str(self._llm.context_params.n_threads)
            details["n_ctx"] = str(self._llm.n_ctx())
        return EngineInfo(
            backend=self.name,
            version=str(getattr(llama_cpp, "__version__", "unknown")),
            model=self.spec.model_path,
            device=self.spec.device,
            details=details,
        )

    def close(self) -> None:
        if self._llm is not None:
            close = getattr(self._llm, "close", None)
            if callable(close):
                close()
        self._llm = None
