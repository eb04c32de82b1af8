"""Is the load generator the bottleneck? What a client measures about itself, and the verdict.

A serving benchmark measures the server only while its client keeps to the schedule and reads
the responses as they arrive. An asyncio client runs on one thread: when that thread is short of
CPU (busy with its own work, or starved by other processes), requests go out late and responses
are read late, and the numbers describe the client, not the server. Per run the client records:

- **schedule lag**, per request: the moment it was sent minus the moment it became due (its
  arrival time, or when a connection slot freed for it under a concurrency cap), from
  ``Completion.start_s - Completion.scheduled_s``;
- **CPU share**: CPU seconds of the event loop's thread over the run's wall seconds (1.0: one
  core fully busy; the busiest client process counts);
- **stalls**: a heartbeat task asks to wake every :data:`HEARTBEAT_S`; each wake-up more than
  :data:`STALL_S` late is a stall, and its lateness is time the loop could not react.

A run is **client-bound** when any of these crosses its limit:

- schedule lag p99 > max(:data:`LAG_LIMIT_S`, :data:`LAG_LIMIT_SHARE` x median end-to-end
  latency): requests left late by more than the timing's own resolution, and by a noticeable
  part of what is being measured;
- CPU share >= :data:`CPU_LIMIT`: the client had no slack to keep the schedule;
- stalled time > :data:`STALL_LIMIT_SHARE` of the run: the loop was unable to read responses
  on time for that long, so latencies include the client's own delay.

A gated metric of a client-bound result is ``unmeasured`` (:mod:`pytest_llmbench.gate`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pytest_llmbench.stats import percentile

LAG_LIMIT_S = 0.010
LAG_LIMIT_SHARE = 0.05
CPU_LIMIT = 0.90
HEARTBEAT_S = 0.010
STALL_S = 0.010
STALL_LIMIT_SHARE = 0.05


@dataclass(frozen=True)
class ClientLoad:
    """One client process over one or more runs (seconds): wall time, CPU time of its event
    loop's thread, and its stalls (count, total lateness, the longest)."""

    wall_s: float
    cpu_s: float
    stalls: int = 0
    stalled_s: float = 0.0
    max_stall_s: float = 0.0

    def __add__(self, other: ClientLoad) -> ClientLoad:
        """The same process over two runs one after the other."""
        return ClientLoad(
            self.wall_s + other.wall_s,
            self.cpu_s + other.cpu_s,
            self.stalls + other.stalls,
            self.stalled_s + other.stalled_s,
            max(self.max_stall_s, other.max_stall_s),
        )

    @property
    def cpu_share(self) -> float:
        return self.cpu_s / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def stalled_share(self) -> float:
        return self.stalled_s / self.wall_s if self.wall_s > 0 else 0.0


def add_runs(total: Sequence[ClientLoad], run: Sequence[ClientLoad]) -> tuple[ClientLoad, ...]:
    """Per-process loads of runs one after another (``run`` may use fewer processes)."""
    if not total:
        return tuple(run)
    longer, shorter = (total, run) if len(total) >= len(run) else (run, total)
    return tuple(a + shorter[i] if i < len(shorter) else a for i, a in enumerate(longer))


class LoopMonitor:
    """Measures the event loop it runs on: CPU of the loop's thread and heartbeat stalls.

    ``start()`` and ``stop()`` are called from inside the loop (the thread that runs it).
    """

    def __init__(self, heartbeat_s: float = HEARTBEAT_S, stall_s: float = STALL_S) -> None:
        self.heartbeat_s = heartbeat_s
        self.stall_s = stall_s
        self._task: asyncio.Task[None] | None = None
        self._stalls = 0
        self._stalled_s = 0.0
        self._max_stall_s = 0.0
        self._wall0 = self._cpu0 = 0.0

    def start(self) -> None:
        self._wall0 = time.perf_counter()
        self._cpu0 = time.thread_time()
        self._task = asyncio.get_running_loop().create_task(self._beat())

    async def _beat(self) -> None:
        period = self.heartbeat_s
        while True:
            asked = time.perf_counter()
            await asyncio.sleep(period)
            late = time.perf_counter() - asked - period
            if late > self.stall_s:
                self._stalls += 1
                self._stalled_s += late
                self._max_stall_s = max(self._max_stall_s, late)

    async def stop(self) -> ClientLoad:
        cpu = time.thread_time() - self._cpu0
        wall = time.perf_counter() - self._wall0
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        return ClientLoad(wall, cpu, self._stalls, self._stalled_s, self._max_stall_s)


def schedule_lags_s(start_s: Iterable[float], scheduled_s: Iterable[float | None]) -> list[float]:
    """Per request, sent minus due (seconds; never below 0); requests without a due time skip."""
    return [max(0.0, s - d) for s, d in zip(start_s, scheduled_s, strict=True) if d is not None]


def client_summary(
    lags_s: Sequence[float], loads: Sequence[ClientLoad], e2e_p50_s: float | None
) -> dict[str, Any]:
    """The ``client`` section of a repetition: lag statistics, CPU share and stalls of the
    busiest process, and the verdict (``bound`` with its ``reasons``)."""
    lag: dict[str, float | int | None] = {"count": len(lags_s), "p50": None, "p99": None}
    lag["max"] = None
    if lags_s:
        ordered = sorted(lags_s)
        lag.update(p50=percentile(ordered, 50), p99=percentile(ordered, 99), max=ordered[-1])
    cpu_share = max((load.cpu_share for load in loads), default=0.0)
    stalled_share = max((load.stalled_share for load in loads), default=0.0)
    lag_limit = max(LAG_LIMIT_S, LAG_LIMIT_SHARE * (e2e_p50_s or 0.0))
    reasons = []
    p99 = lag["p99"]
    if isinstance(p99, float) and p99 > lag_limit:
        reasons.append(f"schedule lag p99 {p99 * 1000:.1f} ms > {lag_limit * 1000:.1f} ms")
    if cpu_share >= CPU_LIMIT:
        reasons.append(f"event loop busy {cpu_share * 100:.0f}% of the run (>= {CPU_LIMIT:.0%})")
    if stalled_share > STALL_LIMIT_SHARE:
        reasons.append(
            f"event loop stalled {stalled_share * 100:.1f}% of the run (> {STALL_LIMIT_SHARE:.0%})"
        )
    return {
        "processes": len(loads),
        "schedule_lag_s": lag,
        "lag_limit_s": lag_limit,
        "cpu_share": cpu_share,
        "cpu_s": sum(load.cpu_s for load in loads),
        "stalls": sum(load.stalls for load in loads),
        "stalled_share": stalled_share,
        "max_stall_s": max((load.max_stall_s for load in loads), default=0.0),
        "bound": bool(reasons),
        "reasons": reasons,
    }
