"""The direct transformers path for :mod:`pytest_llmbench.backends.overhead`: generate by hand.

What a user writes after reading transformers' docs, on the backend's own model object: inputs
padded and moved to the device once, the same generation settings (``generate_kwargs``), the
forced length as ``min_new_tokens``/``max_new_tokens``, and where the config asks for a static
cache, one ``StaticCache`` passed as ``past_key_values`` and reset between calls (the backend's
own, so the compiled decode step sees the same cache addresses on both paths). The generated ids
are copied to the host, as a user needs them. Only the ``generate`` calls are timed.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pytest_llmbench.backends.base import Completion, GenerationRequest
from pytest_llmbench.backends.overhead import OverheadComparison, compare_paths
from pytest_llmbench.backends.pytorch.cache import StaticCaches


class HeldModel(Protocol):
    """What the comparison needs of the backend (a protocol: this module never imports it)."""

    _model: Any
    _tokenizer: Any
    _static: StaticCaches | None

    def generate_kwargs(self) -> dict[str, Any]: ...

    def _batches(self, requests: Sequence[GenerationRequest]) -> list[list[GenerationRequest]]: ...

    def _padded_inputs(self, batch: Sequence[GenerationRequest]) -> tuple[Any, Any]: ...

    def _completions(
        self,
        batch: Sequence[GenerationRequest],
        sequences: Any,
        step_times: Sequence[float],
        submitted_s: float,
        end_s: float,
    ) -> list[Completion]: ...

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]: ...


def compare_generate(
    backend: HeldModel,
    requests: Sequence[GenerationRequest],
    repetitions: int = 5,
    warmup: bool = True,
    harness_first: bool = False,
) -> OverheadComparison:
    """Time ``backend.generate(requests)`` against ``model.generate`` called by hand."""
    import torch

    model = backend._model
    settings = backend.generate_kwargs()
    for length in ("max_new_tokens", "min_new_tokens"):  # per batch, below, as the backend does
        settings.pop(length, None)
    prepared = []
    for batch in backend._batches(requests):  # inputs built once, outside the timed calls
        input_ids, attention_mask = backend._padded_inputs(batch)
        prepared.append(
            (
                input_ids,
                attention_mask,
                max(r.max_output_tokens for r in batch),
                min(r.min_output_tokens for r in batch),
            )
        )

    def direct() -> int:
        tokens = 0
        with torch.inference_mode():
            for input_ids, attention_mask, longest, shortest in prepared:
                extra: dict[str, Any] = {}
                if backend._static is not None:
                    width = input_ids.shape[1]
                    extra["past_key_values"] = backend._static.get(len(input_ids), width + longest)
                out = model.generate(
                    input_ids=input_ids,
                    attention_mask=attention_mask,
                    max_new_tokens=longest,
                    min_new_tokens=shortest,
                    **settings,
                    **extra,
                )
                sequences = out.sequences if hasattr(out, "sequences") else out
                tokens += sequences[:, input_ids.shape[1] :].cpu().numel()
        return tokens

    def harness() -> int:
        return sum(c.output_tokens for c in backend.generate(requests))

    return compare_paths(
        "generate",
        direct,
        harness,
        expected_tokens=sum(r.max_output_tokens for r in requests),
        repetitions=repetitions,
        warmup=warmup,
        harness_first=harness_first,
    )


@dataclass(frozen=True)
class AddedHostTime:
    """Host time the plugin's path adds to one ``generate`` call of a batch, measured alone.

    Wall time (``perf_counter``) and the calling thread's CPU time (``thread_time``) of the same
    work: on a busy machine other processes stretch the wall time of this work but not the CPU
    time it takes, so the CPU figures are what a load-proof bound is set on.
    """

    per_step_s: float  # the StepClock criterion and the OR that StoppingCriteriaList applies
    per_batch_s: float  # clock anchor and read-back, input tensors, per-request Completions
    steps: int
    per_step_cpu_s: float = 0.0
    per_batch_cpu_s: float = 0.0

    @property
    def per_run_s(self) -> float:
        return self.per_batch_s + self.per_step_s * self.steps

    @property
    def per_run_cpu_s(self) -> float:
        return self.per_batch_cpu_s + self.per_step_cpu_s * self.steps


def added_host_time(
    backend: HeldModel, batch: Sequence[GenerationRequest], steps: int, repetitions: int = 5
) -> AddedHostTime:
    """Time, outside any ``generate``, the work the backend's path adds to one batch of
    ``steps`` decoding steps (medians over ``repetitions``): per step, the clock; per batch, the
    clock's anchor and read-back, building the input tensors inside the call, and turning
    sequences into Completions (whose copy to the host the direct path makes too, so this
    slightly over-counts).

    Where decoding is bound by the host (eager transformers: Python and kernel launches), whole
    runs swing by more than the harness could cost, so a paired end-to-end ratio cannot resolve
    a 2% difference; the added work itself can be timed to microseconds.
    """
    import torch

    from pytest_llmbench.backends.pytorch.timing import StepClock

    rows = len(batch)
    if steps < 1 or rows < 1:
        raise ValueError(f"rows and steps must be >= 1, got {rows} and {steps}")
    device = backend._model.device
    ids = torch.zeros((rows, 1), dtype=torch.long, device=device)
    scores = torch.zeros((rows, 1), device=device)  # the clock ignores it
    width = max(r.input_tokens for r in batch)
    token = 1 if backend._tokenizer.eos_token_id == 0 else 0  # never EOS: full-length rows
    sequences = torch.full((rows, width + steps), token, dtype=torch.long, device=device)
    clocks = (time.perf_counter, time.thread_time)
    per_step: list[list[float]] = [[], []]  # [wall, cpu] per repetition
    per_batch: list[list[float]] = [[], []]
    for _ in range(repetitions):
        t0 = [c() for c in clocks]
        backend._padded_inputs(batch)
        clock = StepClock(torch.device(device))
        done = torch.zeros(rows, dtype=torch.bool, device=device)
        clock.start()
        t1 = [c() for c in clocks]
        for _ in range(steps):
            done = done | clock(ids, scores)  # what StoppingCriteriaList does with the answer
        t2 = [c() for c in clocks]
        step_times = clock.times_s()
        backend._completions(batch, sequences, step_times, 0.0, 0.0)
        t3 = [c() for c in clocks]
        for k in range(2):
            per_step[k].append((t2[k] - t1[k]) / steps)
            per_batch[k].append((t1[k] - t0[k]) + (t3[k] - t2[k]))
    median = statistics.median
    return AddedHostTime(
        per_step_s=median(per_step[0]),
        per_batch_s=median(per_batch[0]),
        steps=steps,
        per_step_cpu_s=median(per_step[1]),
        per_batch_cpu_s=median(per_batch[1]),
    )
