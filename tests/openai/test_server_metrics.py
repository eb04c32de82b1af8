"""A server's own timings from its /metrics, per window: parsing, differences, unavailability."""

from __future__ import annotations

import json
import socket

import pytest
from openai_fakes import FakeServer

from pytest_llmbench.backends.openai.server_metrics import (
    MetricsProbe,
    detect_kind,
    histogram_quantile,
    parse,
    window_summary,
)


def vllm_page(
    requests: int, queue_le_10ms: int, queue_sum: float, kv: float, preempted: int, hits: int
) -> str:
    """A vLLM /metrics page with cumulative counts since the server started."""
    label = 'model_name="m",engine="0"'
    return f"""# HELP vllm:request_queue_time_seconds Histogram of time spent in WAITING phase.
# TYPE vllm:request_queue_time_seconds histogram
vllm:request_queue_time_seconds_bucket{{{label},le="0.01"}} {queue_le_10ms}.0
vllm:request_queue_time_seconds_bucket{{{label},le="0.1"}} {requests}.0
vllm:request_queue_time_seconds_bucket{{{label},le="+Inf"}} {requests}.0
vllm:request_queue_time_seconds_sum{{{label}}} {queue_sum}
vllm:request_queue_time_seconds_count{{{label}}} {requests}.0
# TYPE vllm:request_success_total counter
vllm:request_success_total{{{label},finished_reason="length"}} {requests}.0
# TYPE vllm:num_preemptions_total counter
vllm:num_preemptions_total{{{label}}} {preempted}.0
# TYPE vllm:prefix_cache_queries_total counter
vllm:prefix_cache_queries_total{{{label}}} {requests * 100}.0
# TYPE vllm:prefix_cache_hits_total counter
vllm:prefix_cache_hits_total{{{label}}} {hits}.0
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{{{label}}} {kv}
"""


BEFORE = vllm_page(requests=10, queue_le_10ms=10, queue_sum=0.02, kv=0.0, preempted=1, hits=0)
AFTER = vllm_page(requests=30, queue_le_10ms=20, queue_sum=1.02, kv=0.0, preempted=3, hits=1500)


def test_a_window_is_the_difference_of_two_pages() -> None:
    before, after = parse(BEFORE, "vllm"), parse(AFTER, "vllm")
    gauge = 'kv_cache_usage_perc{model_name="m",engine="0"}'
    busy = parse(AFTER.replace(f"{gauge} 0.0", f"{gauge} 0.6"), "vllm")
    out = window_summary("vllm", before, after, [busy])
    queue = out["queue_time_s"]
    assert queue["count"] == 20 and queue["mean"] == pytest.approx(1.0 / 20)
    # 10 of the window's 20 requests waited <= 10 ms, the other 10 between 10 and 100 ms
    assert queue["p50"] == pytest.approx(0.01)
    assert queue["p90"] == pytest.approx(0.01 + 0.09 * 0.8)
    assert out["requests"] == 20 and out["preemptions"] == 2
    assert out["prefix_cache_hit_rate"] == pytest.approx(1500 / 2000)
    assert out["kv_cache_usage"] == {"mean": pytest.approx(0.2), "peak": 0.6}
    assert out["available"] and out["kind"] == "vllm" and out["polls"] == 1
    assert "prefill_time_s" not in out  # not on the page: not made up


def test_histogram_quantile_interpolates_within_a_bucket() -> None:
    buckets = {0.1: 5.0, 0.2: 10.0, float("inf"): 10.0}
    assert histogram_quantile(0.25, buckets) == pytest.approx(0.05)
    assert histogram_quantile(0.75, buckets) == pytest.approx(0.15)
    assert histogram_quantile(0.5, {float("inf"): 4.0, 1.0: 0.0}) == 1.0  # in +Inf: last edge
    assert histogram_quantile(0.5, {1.0: 0.0, float("inf"): 0.0}) is None


def test_sglang_names_and_detection() -> None:
    page = (
        "# TYPE sglang:queue_time_seconds histogram\n"
        'sglang:queue_time_seconds_bucket{le="0.5"} 2.0\n'
        'sglang:queue_time_seconds_bucket{le="+Inf"} 2.0\n'
        "sglang:queue_time_seconds_sum 0.4\n"
        "sglang:queue_time_seconds_count 2.0\n"
        "# TYPE sglang:token_usage gauge\n"
        "sglang:token_usage 0.3\n"
        "# TYPE sglang:cache_hit_rate gauge\n"
        "sglang:cache_hit_rate 0.5\n"
    )
    assert detect_kind(page) == "sglang" and detect_kind(BEFORE) == "vllm"
    assert detect_kind("# nothing\nprocess_cpu_seconds_total 1.0\n") is None
    empty = parse("", "sglang")
    out = window_summary("sglang", empty, parse(page, "sglang"), [])
    assert out["queue_time_s"]["count"] == 2 and out["queue_time_s"]["mean"] == pytest.approx(0.2)
    assert out["kv_cache_usage"]["peak"] == 0.3 and out["prefix_cache_hit_rate"] == 0.5


def test_the_probe_reads_the_server_around_a_window(fake_server: FakeServer) -> None:
    fake_server.state.metrics = BEFORE
    probe = MetricsProbe(fake_server.url, kind=None, poll_s=0.0)  # an external server: detected
    probe.start()
    fake_server.state.metrics = AFTER
    out = probe.stop()
    assert out["available"] and out["kind"] == "vllm" and out["requests"] == 20


def test_an_unreadable_page_is_unavailable_with_the_reason_never_an_error(
    fake_server: FakeServer,
) -> None:
    probe = MetricsProbe(fake_server.url, kind="vllm", poll_s=0.0)  # the fake has no /metrics
    probe.start()
    out = probe.stop()
    assert out == {
        "available": False,
        "reason": f"GET {fake_server.url}/metrics: HTTP 404 Not Found",
    }
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    gone = MetricsProbe(f"http://127.0.0.1:{port}", kind="vllm", poll_s=0.0, timeout_s=2)
    gone.start()
    result = gone.stop()
    assert result["available"] is False and "Connection refused" in result["reason"]
    fake_server.state.metrics = "# just\nprocess_cpu_seconds_total 1.0\n"
    other = MetricsProbe(fake_server.url, kind=None, poll_s=0.0)
    other.start()
    assert other.stop()["reason"].endswith("carries neither vLLM's nor SGLang's metrics")


def test_windows_carry_the_server_section_end_to_end(
    pytester: pytest.Pytester, fake_server: FakeServer
) -> None:
    fake_server.state.delay_s = 0.0
    fake_server.state.metrics = BEFORE
    pytester.makepyfile(
        """
        def test_serving(llm_bench):
            llm_bench(num_prompts=2, input_tokens=4, output_tokens=4)
        """
    )
    result = pytester.runpytest_inprocess(
        "--llm-backend", "openai", "--llm-server-url", fake_server.url, "--llm-repeat", "2",
        "--llm-warmup", "0", "--llm-json", "r.json",
    )  # fmt: skip
    result.assert_outcomes(passed=1)
    report = json.loads((pytester.path / "r.json").read_text())
    reps = report["results"][0]["repetitions"]
    assert all(r["server"]["available"] and r["server"]["kind"] == "vllm" for r in reps)
    assert reps[0]["server"]["requests"] == 0  # the page did not move: nothing invented
    result.stdout.fnmatch_lines(["*server (vllm /metrics), test_serving*"])
