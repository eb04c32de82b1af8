"""The client knows when it is the bottleneck: due times, loop stalls, and a starved client."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_llmbench.backends.base import Completion, GenerationRequest, Schedule
from pytest_llmbench.loadgen import LoopMonitor
from pytest_llmbench.workload.traffic import run_schedule

ROOT = Path(__file__).resolve().parents[2]
FAST_SERVER = ROOT / "benchmarks" / "fake_openai_server.py"


def reqs(n: int) -> list[GenerationRequest]:
    return [GenerationRequest(f"q{i}", (1, 2), 2, 2) for i in range(n)]


async def finishing_after(work_s: float, request: GenerationRequest) -> Completion:
    start = time.perf_counter()
    await asyncio.sleep(work_s)
    return Completion(request.request_id, 2, 2, start, time.perf_counter())


def test_a_request_is_due_at_its_arrival_time() -> None:
    offsets = (0.0, 0.05, 0.1)
    start = time.perf_counter()
    out = asyncio.run(
        run_schedule(
            Schedule(arrival_offsets_s=offsets),
            reqs(3),
            lambda r: finishing_after(0.001, r),
            start_s=start,
        )
    )
    assert [c.scheduled_s for c in out] == [start + o for o in offsets]
    assert all(c.start_s >= c.scheduled_s for c in out if c.scheduled_s is not None)


def test_under_a_cap_a_request_is_due_when_a_slot_frees() -> None:
    """Two slots, four requests: the last two were due when the first two finished, not at the
    start (waiting for a slot is the schedule, not the client's lag)."""
    start = time.perf_counter()
    out = asyncio.run(
        run_schedule(
            Schedule(max_concurrency=2), reqs(4), lambda r: finishing_after(0.05, r), start
        )
    )
    assert out[0].scheduled_s == out[1].scheduled_s == start
    first_ends = sorted(c.end_s for c in out[:2])
    later_due = sorted(c.scheduled_s for c in out[2:] if c.scheduled_s is not None)
    assert len(later_due) == 2
    for due, freed_after in zip(later_due, first_ends, strict=True):
        assert due >= freed_after  # the slot was freed once the request holding it returned
    assert all(c.start_s >= c.scheduled_s for c in out if c.scheduled_s is not None)


def test_a_failing_send_still_gets_its_due_time() -> None:
    async def broken(request: GenerationRequest) -> Completion:
        raise ConnectionError("refused")

    start = time.perf_counter()
    [c] = asyncio.run(run_schedule(Schedule(), reqs(1), broken, start))
    assert c.error == "ConnectionError: refused" and c.scheduled_s == start


def test_the_loop_monitor_sees_a_blocked_loop() -> None:
    """Blocking the event loop's thread for 0.2 s makes the heartbeat wake that much late."""

    async def run() -> tuple[float, float]:
        monitor = LoopMonitor()
        monitor.start()
        await asyncio.sleep(0.03)  # the heartbeat is running
        time.sleep(0.2)  # the client's thread does something else: nothing reacts
        await asyncio.sleep(0.03)
        load = await monitor.stop()
        return load.max_stall_s, load.stalled_s

    max_stall_s, stalled_s = asyncio.run(run())
    assert max_stall_s >= 0.15 and stalled_s >= max_stall_s


@pytest.fixture
def fast_server() -> Iterator[str]:
    """The benchmarks' fake server (never the bottleneck), on another CPU where there is one."""
    cpus = sorted(os.sched_getaffinity(0))
    pin = ["--cpu", str(cpus[-1])] if len(cpus) > 1 else []
    proc = subprocess.Popen(
        [sys.executable, str(FAST_SERVER), "--port", "0", *pin], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline().split()[1])
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.kill()
        proc.wait(10)


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs CPU affinity (Linux)")
def test_a_client_starved_of_cpu_is_marked_client_bound(fast_server: str) -> None:
    """The client, at the lowest priority, shares its CPU with a busy loop: its requests leave
    late and its loop stalls, and the window says so, with the reasons."""
    cpu = sorted(os.sched_getaffinity(0))[0]
    script = Path(__file__).with_name("starved_client.py")
    done = subprocess.run(
        [sys.executable, str(script), fast_server, str(cpu), "100", "16"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    client = out["client"]
    assert out["errors"] == 0
    assert client["bound"] is True, client
    assert any("schedule lag" in r or "stalled" in r for r in client["reasons"]), client
    assert client["schedule_lag_s"]["count"] == 100 and client["processes"] == 1
