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


def test_an_itl_that_could_not_be_timed_is_a_dash_with_the_reason() -> None:
    """Tokens that arrive together give no gap to time: '-' and the backend's reason, never
    0.00 (the openai backend on a server that sends its stream in one read)."""
    base = make_result("test_s", "openai", energy_per_token=(None,))
    untimed = dataclasses.replace(base.repetitions[0], itl_s=())
    why = "each request's output arrived in one network read: ..."
    result = dataclasses.replace(
        base, repetitions=(untimed,), engine_details={"itl_unavailable": why}
    )
    lines = render_summary([result])
    assert _row(lines, "test_s[openai]")[6] == "-"
    assert f"ITL: unavailable for test_s[openai] ({why})" in lines
    # Without the backend's reason, a generic one; with one token per request, nothing to say.
    bare = dataclasses.replace(result, engine_details={})
    assert any(
        line.startswith("ITL: unavailable for test_s[openai] (no two output tokens")
        for line in render_summary([bare])
    )
    one_token = dataclasses.replace(untimed, output_tokens=untimed.requests)
    single = dataclasses.replace(bare, repetitions=(one_token,))
    assert not any(line.startswith("ITL:") for line in render_summary([single]))
