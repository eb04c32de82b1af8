"""run_on_schedule: arrivals at their offsets, a cap on requests in flight, results in order."""

from __future__ import annotations

import asyncio
import time

import pytest

from pytest_llmbench.backends.base import Completion, GenerationRequest, Schedule
from pytest_llmbench.backends.vllm import VllmBackend, run_on_schedule


def reqs(n: int) -> list[GenerationRequest]:
    return [GenerationRequest(f"r{i}", (1, 2), 2, 2) for i in range(n)]


def run(requests, schedule, work_s=0.05):
    in_flight = {"now": 0, "max": 0}

    async def submit(r: GenerationRequest) -> Completion:
        start = time.perf_counter()
        in_flight["now"] += 1
        in_flight["max"] = max(in_flight["max"], in_flight["now"])
        await asyncio.sleep(work_s)
        in_flight["now"] -= 1
        end = time.perf_counter()
        return Completion(r.request_id, 2, 2, start, end, end, (end, end))

    t0 = time.perf_counter()
    out = asyncio.run(run_on_schedule(requests, schedule, submit))
    return t0, out, in_flight["max"]


def test_concurrency_cap_holds_and_order_is_kept():
    _, out, peak = run(reqs(10), Schedule(max_concurrency=3))
    assert peak == 3
    assert [c.request_id for c in out] == [f"r{i}" for i in range(10)]


def test_requests_start_no_earlier_than_their_arrival_offset():
    offsets = (0.0, 0.05, 0.1, 0.2)
    t0, out, _ = run(reqs(4), Schedule(arrival_offsets_s=offsets), work_s=0.01)
    for c, offset in zip(out, offsets, strict=True):
        assert c.start_s - t0 >= offset - 1e-3
        assert c.start_s - t0 < offset + 0.05


def test_offsets_and_cap_together():
    _, out, peak = run(reqs(6), Schedule(arrival_offsets_s=(0.0,) * 6, max_concurrency=2))
    assert peak == 2 and len(out) == 6


def test_too_few_offsets_is_an_error():
    with pytest.raises(ValueError, match="2 arrival offsets for 3 requests"):
        run(reqs(3), Schedule(arrival_offsets_s=(0.0, 0.1)))


def test_capabilities_and_missing_vllm_reason(monkeypatch):
    caps = VllmBackend.capabilities
    assert all(
        (
            caps.streaming,
            caps.own_batching,
            caps.tensor_parallel,
            caps.logits,
            caps.own_process,
            caps.timed_arrivals,
        )
    )
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "vllm" else real(name, *a)
    )
    reason = VllmBackend.check_available()
    assert reason is not None
    assert (
        reason.startswith("vllm is not installed") and "pip install pytest-llmbench[vllm]" in reason
    )


def test_importing_the_backend_does_not_import_vllm():
    import subprocess
    import sys

    code = (
        "import sys, pytest_llmbench.backends.vllm, pytest_llmbench.backends.host; "
        "print('vllm' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
