"""A pure-Python backend for testing the process host: importable by a spawned child.

Behaviour is chosen by request id: ``fail`` raises, ``sleep`` blocks for a minute (so a test can
kill the process mid-call), ``crash`` logs a traceback and kills itself, anything else completes
at once with perf_counter timestamps.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Sequence

from pytest_llmbench.backends.base import (
    Backend,
    Capabilities,
    Completion,
    EngineInfo,
    GenerationRequest,
)
from pytest_llmbench.backends.overhead import OverheadComparison, compare_paths
from pytest_llmbench.errors import UnsupportedParameter


class FakeBackend(Backend):
    name = "fake"
    extra = "fake"
    capabilities = Capabilities(streaming=True, own_process=True)

    def __init__(self, spec):  # type: ignore[no-untyped-def]
        super().__init__(spec)
        self.started = False

    @classmethod
    def check_available(cls) -> str | None:
        return None

    def start(self) -> None:
        if self.spec.model_path == "refuse":
            raise UnsupportedParameter("fake does not support quantization.load_in_8bit")
        if self.spec.model_path == "slow-start":
            time.sleep(60)
        self.started = True

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        if not self.started:
            raise RuntimeError("start() was not called")
        out = []
        for r in requests:
            if r.request_id == "fail":
                raise ValueError("fake engine: CUDA out of memory. Tried to allocate 2.00 GiB")
            if r.request_id == "sleep":
                time.sleep(60)
            if r.request_id == "crash":  # as SGLang does: a worker's traceback, then SIGKILL
                print("[2026-12-03 19:16:06] Ignore import error when loading x: No module named y")
                print("Traceback (most recent call last):", file=sys.stderr)
                print("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 5.89 GiB.")
                print("[2026-12-03 19:16:06] Received sigquit from a child process.", flush=True)
                sys.stderr.flush()
                os.kill(os.getpid(), signal.SIGKILL)
            t0 = time.perf_counter()
            times = tuple(time.perf_counter() for _ in range(r.max_output_tokens))
            out.append(
                Completion(
                    r.request_id,
                    r.input_tokens,
                    r.max_output_tokens,
                    t0,
                    times[-1],
                    times[0],
                    times,
                )
            )
        return out

    def harness_overhead(
        self,
        requests: Sequence[GenerationRequest],
        repetitions: int = 5,
        warmup: bool = True,
        harness_first: bool = False,
    ) -> OverheadComparison:
        """The direct path is ``generate`` itself (a model of a harness that adds nothing)."""

        def run() -> int:
            return sum(c.output_tokens for c in self.generate(requests))

        expected = sum(r.max_output_tokens for r in requests)
        return compare_paths("fake", run, run, expected, repetitions, warmup, harness_first)

    def info(self) -> EngineInfo:
        return EngineInfo(
            "fake", "1.0", self.spec.model_path, "cpu", details={"pid": str(os.getpid())}
        )

    def encode(self, text: str) -> list[int]:
        return [ord(c) for c in text]

    def decode(self, token_ids: Sequence[int]) -> str:
        return "".join(chr(i) for i in token_ids)

    def clock(self) -> float:
        return time.perf_counter()

    def environ(self, name: str) -> str | None:
        """A variable as this engine process sees it (None: unset)."""
        return os.environ.get(name)
