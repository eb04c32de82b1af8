"""Several client processes sharing one schedule: a client that scales past one core.

One asyncio client saturates one core (about 0.2-0.3 ms of CPU per streamed request with
aiohttp); a server that answers thousands of requests per second needs more. ``N`` processes
(``--llm-client-processes``), started once per backend (multiprocessing *spawn*) and reused for
every run, each take every N-th request of the schedule (round robin keeps each share spread
over the whole run) with their arrival offsets unchanged, and 1/N of the concurrency cap. They
start together: each gets its share, says it is ready, then receives one start time on the
system-wide monotonic clock (``time.perf_counter`` is ``CLOCK_MONOTONIC`` on Linux, shared by all
processes, as :mod:`pytest_llmbench.backends.host` relies on too) and sends at start + offset.
Each returns its completions whole and its :class:`~pytest_llmbench.loadgen.ClientLoad`, so the
merge is exact: counts, percentiles and goodput come from every request, as with one process.

Under a concurrency cap, N processes are N closed loops of 1/N of the cap each: a slot freed in
one process is not taken by a request queued in another. With equal requests the difference is
small; it is the price of not sharing a queue between processes.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.connection
import os
import time
import traceback
import weakref
from collections.abc import Sequence
from typing import Any

from pytest_llmbench.backends.base import Completion, Schedule
from pytest_llmbench.backends.openai.client import ClientPlan, Prepared, drive, run_loop
from pytest_llmbench.errors import EngineError
from pytest_llmbench.loadgen import ClientLoad

START_LEAD_S = 0.02  # from the start message to the shared start: time for it to arrive
MAX_AUTO_PROCESSES = 8


def auto_processes(local_server: bool, cpus: int | None = None) -> int:
    """``--llm-client-processes auto``: one per CPU this process may use, less one for a server
    on this machine, at least 1 and at most :data:`MAX_AUTO_PROCESSES`."""
    if cpus is None:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
        cpus = cpus or os.cpu_count() or 1
    return max(1, min(MAX_AUTO_PROCESSES, cpus - (1 if local_server else 0)))


def split(schedule: Schedule, requests: int, processes: int) -> list[tuple[list[int], Schedule]]:
    """Each process's request indices and schedule: every N-th request with its own offset,
    1/N of the concurrency cap (the remainder to the first). Fewer processes than N when there
    are fewer requests or slots than processes; none for no requests."""
    cap = schedule.max_concurrency
    n = min(processes, requests, cap or requests)
    offsets = schedule.arrival_offsets_s
    out = []
    for p in range(n):
        indices = list(range(p, requests, n))
        share = Schedule(
            None if offsets is None else tuple(offsets[i] for i in indices),
            None if cap is None else cap // n + (1 if p < cap % n else 0),
        )
        out.append((indices, share))
    return out


def _child(conn: Any) -> None:
    """A client process: run each share it is given from the start time it is told."""
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):  # the parent is gone
            return
        if message is None:
            return
        plan, requests, schedule = message
        conn.send(("ready", None))
        start = conn.recv()
        if start is None:  # closed before the run began
            return
        start_s = start[1]
        try:
            completions, load = run_loop(drive(plan, requests, schedule, start_s))
            conn.send(("done", (completions, load)))
        except BaseException as exc:  # sent back: the parent fails the run with it
            conn.send(("error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()[-2000:]}"))


class ClientProcesses:
    """``count`` client processes, started now and reused until :meth:`close`."""

    def __init__(self, count: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conns: list[Any] = []
        self._procs: list[Any] = []
        for i in range(count):
            parent, child = ctx.Pipe(duplex=True)
            proc = ctx.Process(target=_child, args=(child,), name=f"llmbench-client-{i}")
            proc.daemon = True
            proc.start()
            child.close()
            self._conns.append(parent)
            self._procs.append(proc)
        self._finalizer = weakref.finalize(self, _stop, list(self._procs), list(self._conns))

    @property
    def count(self) -> int:
        return len(self._procs)

    @property
    def alive(self) -> bool:
        """Usable for another run: not closed, and no process failed or died."""
        return self._finalizer.alive and all(p.is_alive() for p in self._procs)

    def run(
        self, plan: ClientPlan, requests: Sequence[Prepared], schedule: Schedule
    ) -> tuple[list[Completion], tuple[ClientLoad, ...]]:
        """The whole schedule over the processes; completions in request order, and each
        process's load. EngineError when a client process fails or dies."""
        shares = split(schedule, len(requests), self.count)
        used = list(zip(self._conns, self._procs, strict=True))[: len(shares)]
        for (conn, proc), (indices, share) in zip(used, shares, strict=True):
            self._send(conn, proc, (plan, [requests[i] for i in indices], share))
        for conn, proc in used:
            self._receive(conn, proc, "ready")
        start_s = time.perf_counter() + START_LEAD_S
        for conn, proc in used:
            self._send(conn, proc, ("start", start_s))
        completions: list[Completion | None] = [None] * len(requests)
        loads = []
        for (conn, proc), (indices, _) in zip(used, shares, strict=True):
            done, load = self._receive(conn, proc, "done")
            for i, completion in zip(indices, done, strict=True):
                completions[i] = completion
            loads.append(load)
        assert all(c is not None for c in completions)
        return [c for c in completions if c is not None], tuple(loads)

    def _send(self, conn: Any, proc: Any, message: object) -> None:
        try:
            conn.send(message)
        except OSError:  # a broken pipe: the process is gone
            raise self._died(proc) from None

    def _receive(self, conn: Any, proc: Any, expected: str) -> Any:
        multiprocessing.connection.wait([conn, proc.sentinel])
        try:
            kind, payload = conn.recv()
        except (EOFError, OSError):
            raise self._died(proc) from None
        if kind != expected:
            self.close()  # its state is unknown: a later run starts fresh processes
            raise EngineError(f"client process {proc.name} failed: {payload}")
        return payload

    def _died(self, proc: Any) -> EngineError:
        proc.join(5)
        code = proc.exitcode
        self.close()  # the others may be mid-run: a later run starts fresh processes
        return EngineError(f"client process {proc.name} exited with code {code} during a run")

    def close(self) -> None:
        self._finalizer()


def _stop(procs: Sequence[Any], conns: Sequence[Any]) -> None:
    for conn in conns:
        with contextlib.suppress(OSError, ValueError):
            conn.send(None)
    for proc in procs:
        proc.join(2)
        if proc.is_alive():
            proc.kill()
            proc.join(2)
    for conn in conns:
        with contextlib.suppress(OSError):
            conn.close()
