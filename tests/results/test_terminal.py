"""The terminal summary: one table per backend with the serving metrics, never pooled."""

from __future__ import annotations

import dataclasses

from pytest_llmbench.report.terminal import render_summary

from .factories import make_result


def _row(lines: list[str], name: str) -> list[str]:
    rows = [row for text in lines for row in text.splitlines()]
    return next(row for row in rows if row.startswith(name)).split()


def test_one_table_per_backend_with_latency_error_rate_and_energy() -> None:
    pytorch = make_result("test_a", "pytorch", energy_per_token=(0.5, 0.5, 0.5))
    vllm = make_result("test_a", "vllm", energy_per_token=(None, None, None))
    failing = dataclasses.replace(
        vllm.repetitions[0], requests=6, errors=4, itl_s=(0.002, 0.004, 0.006)
    )
    vllm = dataclasses.replace(vllm, repetitions=(failing,) * 3)
    lines = render_summary([pytorch, vllm])

    headers = [row for text in lines for row in text.splitlines() if row.startswith("benchmark")]
    assert len(headers) == 2  # side by side, never one pooled table
    for column in ("TTFT p50 ms", "ITL p50 ms", "E2E p99 ms", "err %", "J/out tok"):
        assert column in headers[0]
    assert lines[0].startswith("backend pytorch (transformers 1.0) on cuda")
    first = _row(lines, "test_a[pytorch]")
    assert first[5:7] == ["52.2", "10.00"]  # TTFT p50 (50 to 54.5 ms), ITL p50
    assert first[-2:] == ["0.0", "0.5"]  # no failed request; J per output token
    second = _row(lines, "test_a[vllm]")
    assert second[6] == "4.00"  # ITL p50: the middle of 2, 4, 6 ms
    assert second[-2:] == ["40.0", "unavailable"]  # 4 of 10 requests failed
    assert "energy: unavailable (NVML not found)" in lines


def test_throttled_repetitions_and_unsettled_warmup_are_flagged() -> None:
    result = make_result("test_a", "pytorch")
    hot = {
        "throttled": True,
        "gpus": [{"index": 0, "clock_event_reasons": ["gpu_idle", "sw_thermal_slowdown"]}],
    }
    reps = (dataclasses.replace(result.repetitions[0], telemetry=hot), *result.repetitions[1:])
    result = dataclasses.replace(
        result, repetitions=reps, warmup={"passes": 10, "settled": False, "pass_s": [1.0] * 10}
    )
    lines = render_summary([result])
    assert (
        "throttled: test_a[pytorch]: 1 of 3 repetitions ran with the GPU held back "
        "(sw_thermal_slowdown)" in lines
    )
    assert any(
        line.startswith("warm-up: test_a[pytorch]: throughput had not settled") for line in lines
    )
    calm = render_summary([make_result("test_a", "pytorch")])
    assert not any(line.startswith(("throttled:", "warm-up:")) for line in calm)
