"""Speculative-decoding counters: vLLM's metrics translated, HF assisted generation counted."""

from __future__ import annotations

import importlib.util

import pytest

from pytest_llmbench.speculative import (
    SpeculativeCounters,
    from_prometheus_text,
    from_vllm_metrics,
)


def test_derived_rates_follow_vllms_definitions() -> None:
    c = SpeculativeCounters("ngram", "test", drafts=10, draft_tokens=40, accepted_tokens=25)
    d = c.to_dict()
    assert d["acceptance_rate"] == 25 / 40
    assert d["mean_accepted_length"] == 1 + 25 / 10  # the bonus token included
    assert d["draft_tokens_per_step"] == 4.0


def test_a_run_is_the_difference_of_two_snapshots() -> None:
    before = SpeculativeCounters("ngram", "test", 3, 12, 5)
    after = SpeculativeCounters("ngram", "test", 13, 52, 30)
    assert (after - before).to_dict()["acceptance_rate"] == 25 / 40


def test_nothing_drafted_has_no_rates() -> None:
    d = SpeculativeCounters("prompt_lookup", "test").to_dict()
    assert d["acceptance_rate"] is None and d["mean_accepted_length"] is None


@pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vllm is not installed")
def test_vllm_reader_snapshot_translates() -> None:
    from vllm.v1.metrics.reader import Counter, Gauge, Vector

    labels = {"model_name": "m", "engine": "0"}
    snapshot = [
        Gauge("vllm:num_requests_running", labels, 0.0),
        Counter("vllm:spec_decode_num_drafts", labels, 10),
        Counter("vllm:spec_decode_num_draft_tokens", labels, 40),
        Counter("vllm:spec_decode_num_accepted_tokens", labels, 25),
        Vector("vllm:spec_decode_num_accepted_tokens_per_pos", labels, [9, 8, 5, 3]),
        # a second engine (data parallel) adds up
        Counter("vllm:spec_decode_num_drafts", {**labels, "engine": "1"}, 2),
    ]
    c = from_vllm_metrics(snapshot, "ngram")
    assert c == SpeculativeCounters("ngram", "vllm metrics", 12, 40, 25)


def test_no_spec_decode_metrics_means_no_section() -> None:
    assert from_vllm_metrics([], "ngram") is None
    assert from_prometheus_text("# HELP x\nvllm:num_requests_running 0\n", "ngram") is None


def test_prometheus_page_of_a_vllm_server_translates() -> None:
    prometheus_client = pytest.importorskip("prometheus_client")

    registry = prometheus_client.CollectorRegistry()
    names = ("drafts", "draft_tokens", "accepted_tokens")
    counters = {
        n: prometheus_client.Counter(
            f"vllm:spec_decode_num_{n}", n, ["model_name", "engine"], registry=registry
        )
        for n in names
    }
    for engine, (drafts, drafted, accepted) in {"0": (10, 40, 25), "1": (1, 4, 4)}.items():
        counters["drafts"].labels("tiny model", engine).inc(drafts)
        counters["draft_tokens"].labels("tiny model", engine).inc(drafted)
        counters["accepted_tokens"].labels("tiny model", engine).inc(accepted)
    text = prometheus_client.generate_latest(registry).decode()
    assert "vllm:spec_decode_num_drafts_created" in text  # the page's other samples are skipped
    c = from_prometheus_text(text, "ngram")
    assert c == SpeculativeCounters("ngram", "vllm /metrics", 11, 44, 29)
