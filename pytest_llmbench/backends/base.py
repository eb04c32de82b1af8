"""The backend protocol: what every engine adapter offers the runner, and the values it returns."""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from pytest_llmbench.compat import Translation
from pytest_llmbench.config.schema import ExperimentConfig
from pytest_llmbench.errors import QualityUnavailable

if TYPE_CHECKING:
    from pytest_llmbench.loadgen import ClientLoad
    from pytest_llmbench.speculative import SpeculativeCounters


class WindowProbe(Protocol):
    """Something read just before and just after each energy window (a server's own metrics)."""

    def start(self) -> None: ...

    def stop(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do; benchmarks skip with the reason when they need more."""

    streaming: bool = False  # per-token timestamps for every request (TTFT, inter-token latency)
    own_batching: bool = False  # continuous batching inside the engine (batch_size is a hint)
    tensor_parallel: bool = False  # one model over several GPUs
    logits: bool = False  # log-probabilities of a given prompt + response
    own_process: bool = False  # manages CUDA itself: never share a process with another engine
    timed_arrivals: bool = False  # accepts requests over time (Poisson, fixed concurrency)
    sessions: bool = (
        False  # runs free multi-turn conversations (converse(); pytest_llmbench.multiturn)
    )


@dataclass(frozen=True)
class GenerationRequest:
    """One prompt; token ids are exact so every backend sees the same input length."""

    request_id: str
    prompt_token_ids: tuple[int, ...]
    max_output_tokens: int
    min_output_tokens: int
    prompt_text: str | None = None  # for text-only protocols; decodes to the same ids
    # The conversation so far as (role, content) pairs, last a user message, for chat
    # endpoints (workload/conversations.py); None: the prompt is one user message
    messages: tuple[tuple[str, str], ...] | None = None

    @property
    def input_tokens(self) -> int:
        return len(self.prompt_token_ids)


@dataclass(frozen=True)
class Completion:
    """One request's outcome with host timestamps (``time.perf_counter`` seconds).

    ``token_times_s`` holds the time each output token became visible to the caller, where the
    backend can observe that cheaply; batch backends share one timeline for a whole batch.
    """

    request_id: str
    input_tokens: int
    output_tokens: int
    start_s: float
    end_s: float
    first_token_s: float | None = None
    token_times_s: tuple[float, ...] = ()
    output_token_ids: tuple[int, ...] = ()
    text: str | None = None
    error: str | None = None  # request-level failure (HTTP error, timeout); never retried silently
    # How output_tokens was counted when the engine did not count it itself: "usage" (the
    # server's usage block) or "tokenizer" (our re-tokenisation of the returned text).
    output_tokens_source: str | None = None
    # When the request became due under its schedule: its arrival time, or the moment a slot
    # freed for it under a concurrency cap; ``start_s - scheduled_s`` is the sender's lag
    # (pytest_llmbench.loadgen). None where no schedule drove the request.
    scheduled_s: float | None = None

    @property
    def latency_s(self) -> float:
        return self.end_s - self.start_s

    @property
    def ttft_s(self) -> float | None:
        return None if self.first_token_s is None else self.first_token_s - self.start_s

    @property
    def inter_token_s(self) -> list[float]:
        times = self.token_times_s
        return [b - a for a, b in zip(times, times[1:], strict=False)]


@dataclass(frozen=True)
class Schedule:
    """When requests are sent: offsets from the start (seconds) and/or a cap on requests in flight.

    Both None means offline: everything at once. Built by ``workload/traffic.py``.
    """

    arrival_offsets_s: tuple[float, ...] | None = None
    max_concurrency: int | None = None

    @property
    def offline(self) -> bool:
        return self.arrival_offsets_s is None and self.max_concurrency is None


@dataclass(frozen=True)
class EngineInfo:
    """Facts recorded with every result."""

    backend: str
    version: str
    model: str
    device: str  # "cpu", "cuda"
    cuda_devices: tuple[int, ...] = ()  # CUDA ordinals the engine uses (for energy meters)
    details: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class BackendSpec:
    """Everything needed to build one engine: resolved model path, config, its translation."""

    model_path: str
    config: ExperimentConfig
    translation: Translation
    device: str  # resolved: "cpu" or "cuda"
    # Backend-specific options that are not experiment settings (server URL, timeouts), keyed by
    # backend name, e.g. {"openai": OpenAIOptions(...)}; a backend ignores keys of others.
    options: Mapping[str, object] = field(default_factory=dict)


class Backend(abc.ABC):
    """An inference engine behind one interface.

    Subclasses import their engine inside methods, never at module import time, so that listing
    or selecting backends stays cheap.
    """

    name: ClassVar[str]
    extra: ClassVar[str]  # the pip extra that installs the engine: pytest-llmbench[<extra>]
    capabilities: ClassVar[Capabilities] = Capabilities()

    def __init__(self, spec: BackendSpec) -> None:
        self.spec = spec

    @classmethod
    @abc.abstractmethod
    def check_available(cls) -> str | None:
        """None when usable here, else the reason (missing package, no CUDA, ...). Cheap."""

    @abc.abstractmethod
    def start(self) -> None:
        """Load the model and get the engine ready; called once per session and spec."""

    @abc.abstractmethod
    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        """Serve ``requests`` submitted all at once (offline); one Completion per request."""

    def serve(self, requests: Sequence[GenerationRequest], schedule: Schedule) -> list[Completion]:
        """Serve ``requests`` on ``schedule`` with streaming timestamps (``timed_arrivals``)."""
        if schedule.offline:
            return self.generate(requests)
        raise NotImplementedError(f"{self.name} does not accept timed arrivals")

    @abc.abstractmethod
    def info(self) -> EngineInfo:
        """Version, device and model facts for the result."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the engine (GPU memory, processes)."""

    # The unified interface of the seed design; backends implement what they can.
    def encode(self, text: str) -> list[int]:
        raise NotImplementedError(f"{self.name} does not expose its tokenizer")

    def decode(self, token_ids: Sequence[int]) -> str:
        raise NotImplementedError(f"{self.name} does not expose its tokenizer")

    # -- quality (pytest_llmbench.quality): what a backend can tell about its answers -----------
    def token_logprobs(self, prompt_ids: Sequence[int], response_ids: Sequence[int]) -> list[float]:
        """Natural-log probability of each response token given the prompt and the response
        before it (the perplexity guard). QualityUnavailable, with the reason, where the engine
        cannot score a given text."""
        raise QualityUnavailable(f"{self.name} does not return log-probabilities of a given text")

    def greedy_token_ids(
        self, prompts: Sequence[Sequence[int]], output_tokens: int
    ) -> list[tuple[int, ...]]:
        """Greedy continuations of exactly ``output_tokens`` tokens (EOS ignored), whatever the
        config's sampling settings: the agreement probe. The default runs ``generate`` when the
        config already decodes greedily."""
        if not self.spec.config.decoder.greedy:
            raise QualityUnavailable(
                f"{self.name} cannot force greedy decoding and the config samples "
                "(decoder.do_sample with temperature > 0)"
            )
        requests = [
            GenerationRequest(f"probe-{i}", tuple(ids), output_tokens, output_tokens)
            for i, ids in enumerate(prompts)
        ]
        out = [tuple(c.output_token_ids) for c in self.generate(requests)]
        if any(len(ids) != output_tokens for ids in out):
            raise QualityUnavailable(f"{self.name} does not return generated token ids")
        return out

    def speculative_counters(self) -> SpeculativeCounters | None:
        """Cumulative speculative-decoding counts since start, or None where the engine does not
        speculate (or cannot say)."""
        return None

    def window_probe(self) -> WindowProbe | None:
        """What the runner reads around each energy window besides energy: the server's own
        timings (a managed vLLM/SGLang server's /metrics); None where there is nothing."""
        return None

    def client_load(self) -> tuple[ClientLoad, ...] | None:
        """How hard the last ``serve`` call's client worked, one entry per client process, where
        the backend is a client of a server (pytest_llmbench.loadgen); None otherwise."""
        return None
