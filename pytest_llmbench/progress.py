"""Live progress of a benchmark: what the runner reports between passes, and the terminal line.

The runner calls a :class:`ProgressSink` only between warm-up passes and after a repetition's
energy window has closed, so writing to the terminal never lands inside a measurement.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class Progress:
    """Where a benchmark stands: ``done`` of ``total`` passes (warm-up) or repetitions.

    ``total`` is the most warm-up passes there can be while warm-up is adaptive. ``tok_s`` is
    output tokens per second over what this phase has run so far (None before any).
    """

    phase: str  # "warm-up" or "repetition"
    done: int
    total: int
    elapsed_s: float  # since the benchmark started, warm-up included
    output_tokens: int
    busy_s: float  # seconds of this phase's passes or windows so far

    @property
    def tok_s(self) -> float | None:
        return self.output_tokens / self.busy_s if self.busy_s > 0 else None

    def describe(self, test_id: str) -> str:
        rate = "-" if self.tok_s is None else f"{self.tok_s:,.1f}"
        limit = " at most" if self.phase == "warm-up" else ""
        return (
            f"llmbench {test_id}: {self.phase} {self.done}/{self.total}{limit}, "
            f"{self.elapsed_s:.1f} s elapsed, {rate} tok/s"
        )


class ProgressSink(Protocol):
    def __call__(self, progress: Progress) -> None: ...


class TerminalProgress:
    """One terminal line, rewritten in place, through pytest's terminal writer.

    Silent under ``-q``, in xdist workers and where the terminal takes no markup (stdout not a
    tty, ``--color=no``): a rewritten line in a log file is noise.
    """

    def __init__(self, config: Any, test_id: str) -> None:
        self._tw = config.get_terminal_writer()
        self._capman = config.pluginmanager.getplugin("capturemanager")
        worker = hasattr(config, "workerinput")  # an xdist worker's stdout is not the terminal
        self.enabled = not worker and config.get_verbosity() >= 0 and bool(self._tw.hasmarkup)
        self._test_id = test_id
        self._shown = False

    def _write(self, text: str) -> None:
        if self._capman is None:
            self._tw.write(text, flush=True)
            return
        with self._capman.global_and_fixture_disabled():  # the test's output is being captured
            self._tw.write(text, flush=True)

    def __call__(self, progress: Progress) -> None:
        if not self.enabled:
            return
        start = "\r" if self._shown else "\n"
        self._write(f"{start}{progress.describe(self._test_id)}\x1b[K")
        self._shown = True

    def finish(self) -> None:
        """Clear the line, so pytest's own progress goes on where it was."""
        if self._shown:
            self._write("\r\x1b[K")
            self._shown = False
