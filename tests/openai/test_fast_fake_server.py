"""benchmarks/fake_openai_server.py with several workers: one port, every worker answers, and
none outlives the first process (the harness benchmark kills it with SIGKILL)."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("httptools")

from pytest_llmbench.backends.base import Schedule  # noqa: E402
from pytest_llmbench.backends.openai.client import ClientPlan, Prepared, drive  # noqa: E402

SERVER = Path(__file__).resolve().parents[2] / "benchmarks" / "fake_openai_server.py"


def refused(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def test_workers_share_the_port_and_end_with_the_first_process() -> None:
    proc = subprocess.Popen(
        [sys.executable, str(SERVER), "--port", "0", "--workers", "3"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline().split()[1])
        plan = ClientPlan(f"http://127.0.0.1:{port}/v1/completions", (), False, 30.0)
        body = b'{"prompt":[1,2],"max_tokens":4,"stream":true}'
        requests = [Prepared(f"r{i}", body, 2, 4) for i in range(60)]
        completions, _ = asyncio.run(drive(plan, requests, Schedule(max_concurrency=12)))
        assert [c.error for c in completions] == [None] * 60
        assert all(c.output_tokens == 4 for c in completions)
        workers = subprocess.run(
            ["pgrep", "-P", str(proc.pid)], capture_output=True, text=True
        ).stdout.split()
        assert len(workers) == 2
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    deadline = time.monotonic() + 30  # workers look for their parent every 0.5 s
    while time.monotonic() < deadline and not all(_gone(int(pid)) for pid in workers):
        time.sleep(0.1)
    assert all(_gone(int(pid)) for pid in workers)
    assert refused(port)


def _gone(pid: int) -> bool:
    """Exited: no such process, or a zombie (whoever adopted it may not have reaped it yet)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "State:\tZ" in status
