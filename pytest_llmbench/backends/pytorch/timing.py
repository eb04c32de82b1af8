"""Per-token timestamps inside ``model.generate`` that cost the decode loop no host sync.

transformers calls every stopping criterion once per decoding step, after the step's token is
appended; :class:`StepClock` is such a criterion that never stops anything and stamps the step.

- On the CPU the step has run when the criterion is called (eager execution), so
  ``time.perf_counter()`` is the step's end.
- On CUDA the kernels of the step are only queued when the criterion runs. A ``perf_counter``
  there would stamp the launch, not the finished step (TTFT too early, before prefill is done),
  and a ``torch.cuda.synchronize()`` per step would add a stall the engine does not have. The clock
  records a CUDA event instead: recording is asynchronous (a few microseconds of host time, no
  kernel), and the event's time is read once after ``generate`` returns. Event times are mapped
  onto ``perf_counter`` through an anchor event recorded right after a synchronise before the
  batch, when the GPU is idle, so the anchor's GPU time and its ``perf_counter`` agree to
  microseconds.

The criterion returns one cached all-false tensor per batch shape instead of allocating one per
step (an allocation and a fill kernel per token).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

TIMING_CPU = "perf_counter at each decoding step (CPU: the step has run when it is read)"
TIMING_CUDA = "CUDA event per decoding step, read after generate (no host sync inside the loop)"


class StepClock:
    """A stopping criterion that never stops: it timestamps every decoding step (seconds,
    ``perf_counter`` scale)."""

    def __init__(self, device: torch.device) -> None:
        self._cuda = device.type == "cuda"
        self._stamps: list[Any] = []  # floats on the CPU, torch.cuda.Event on CUDA
        self._never: torch.Tensor | None = None
        self._anchor_s = 0.0
        self._anchor: Any = None

    @property
    def method(self) -> str:
        return TIMING_CUDA if self._cuda else TIMING_CPU

    def start(self) -> None:
        """Call right before ``generate``: anchors CUDA event times to ``perf_counter``."""
        self._stamps.clear()
        if self._cuda:
            import torch

            torch.cuda.synchronize()
            self._anchor = torch.cuda.Event(enable_timing=True)
            self._anchor.record()
            self._anchor_s = time.perf_counter()

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: Any) -> Any:
        if self._cuda:
            import torch

            event = torch.cuda.Event(enable_timing=True)
            event.record()
            self._stamps.append(event)
        else:
            self._stamps.append(time.perf_counter())
        never = self._never
        rows, device = input_ids.shape[0], input_ids.device
        if never is None or never.shape[0] != rows or never.device != device:
            import torch

            never = self._never = torch.zeros(rows, dtype=torch.bool, device=device)
        return never

    def times_s(self) -> list[float]:
        """Each step's end on the ``perf_counter`` scale (waits for the last CUDA event)."""
        if not self._cuda:
            return list(self._stamps)
        if not self._stamps:
            return []
        self._stamps[-1].synchronize()
        anchor, at = self._anchor, self._anchor_s
        return [at + anchor.elapsed_time(event) / 1e3 for event in self._stamps]
