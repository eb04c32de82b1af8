"""The server's own timings from its Prometheus ``/metrics``, per energy window, beside ours.

vLLM and SGLang servers count, per request, the time spent queued, in prefill and in decode, and
report KV-cache usage, preemptions and prefix-cache hits. Scraping ``/metrics`` just before and
just after a window and subtracting gives those quantities for the window's requests alone
(counters and histograms are cumulative since the server started): the mean from a histogram's
sum and count, and p50/p90/p99 interpolated within its buckets, as Prometheus'
``histogram_quantile`` does (so only as fine as the server's bucket edges). Gauges (KV-cache
usage, running and waiting requests) say something only while requests run: they are polled
every :data:`POLL_S` during the window, and the window reports their mean and peak.

A managed vLLM or SGLang server is scraped always (SGLang is started with ``--enable-metrics``);
an external server is scraped when its ``/metrics`` carries vLLM's or SGLang's names. A page
that cannot be read makes the section ``{"available": false, "reason": ...}``, never an error.
Neither engine returns per-request timings with a response, so the join with the client's
records is per window, not per request.
"""

from __future__ import annotations

import math
import threading
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

POLL_S = 0.5
KINDS = ("vllm", "sglang")

# What we report -> (Prometheus type, the engine's metric name), per engine. Counters are named
# without their "_total" suffix, as the parser names their family.
NAMES: dict[str, dict[str, tuple[str, str]]] = {
    "vllm": {
        "queue_time_s": ("histogram", "vllm:request_queue_time_seconds"),
        "prefill_time_s": ("histogram", "vllm:request_prefill_time_seconds"),
        "decode_time_s": ("histogram", "vllm:request_decode_time_seconds"),
        "ttft_s": ("histogram", "vllm:time_to_first_token_seconds"),
        "e2e_latency_s": ("histogram", "vllm:e2e_request_latency_seconds"),
        "requests": ("counter", "vllm:request_success"),
        "preemptions": ("counter", "vllm:num_preemptions"),
        "prefix_cache_queries": ("counter", "vllm:prefix_cache_queries"),
        "prefix_cache_hits": ("counter", "vllm:prefix_cache_hits"),
        "kv_cache_usage": ("gauge", "vllm:kv_cache_usage_perc"),  # a fraction, 0..1
        "running": ("gauge", "vllm:num_requests_running"),
        "waiting": ("gauge", "vllm:num_requests_waiting"),
    },
    "sglang": {
        "queue_time_s": ("histogram", "sglang:queue_time_seconds"),
        "ttft_s": ("histogram", "sglang:time_to_first_token_seconds"),
        "e2e_latency_s": ("histogram", "sglang:e2e_request_latency_seconds"),
        "requests": ("counter", "sglang:num_requests"),
        "preemptions": ("counter", "sglang:num_retracted_requests"),
        "kv_cache_usage": ("gauge", "sglang:token_usage"),
        "prefix_cache_hit_rate": ("gauge", "sglang:cache_hit_rate"),
        "running": ("gauge", "sglang:num_running_reqs"),
        "waiting": ("gauge", "sglang:num_queue_reqs"),
    },
}
QUANTILES = (0.5, 0.9, 0.99)


@dataclass
class Scrape:
    """One ``/metrics`` page reduced to our names: counters and gauges summed over label sets,
    histograms as cumulative bucket counts by upper edge plus sum and count."""

    values: dict[str, float] = field(default_factory=dict)
    buckets: dict[str, dict[float, float]] = field(default_factory=dict)
    sums: dict[str, float] = field(default_factory=dict)
    counts: dict[str, float] = field(default_factory=dict)


def detect_kind(text: str) -> str | None:
    """``vllm`` or ``sglang`` from the names on a page; None for neither."""
    for kind in KINDS:
        if f"\n{kind}:" in f"\n{text}":
            return kind
    return None


def parse(text: str, kind: str) -> Scrape:
    """The quantities of ``NAMES[kind]`` found on a Prometheus text page."""
    from prometheus_client.parser import text_string_to_metric_families

    wanted = {name: ours for ours, (_, name) in NAMES[kind].items()}
    scrape = Scrape()
    for family in text_string_to_metric_families(text):
        ours = wanted.get(family.name)
        if ours is None:
            continue
        for sample in family.samples:
            if sample.name.endswith("_bucket"):
                edge = float(sample.labels.get("le", "inf"))
                per = scrape.buckets.setdefault(ours, {})
                per[edge] = per.get(edge, 0.0) + sample.value
            elif sample.name.endswith("_sum"):
                scrape.sums[ours] = scrape.sums.get(ours, 0.0) + sample.value
            elif sample.name.endswith("_count"):
                scrape.counts[ours] = scrape.counts.get(ours, 0.0) + sample.value
            elif sample.name.endswith("_created"):
                continue
            else:
                scrape.values[ours] = scrape.values.get(ours, 0.0) + sample.value
    return scrape


def histogram_quantile(q: float, buckets: Mapping[float, float]) -> float | None:
    """The q-quantile of cumulative bucket counts (upper edge -> count), interpolated linearly
    within its bucket as Prometheus does; the largest finite edge when it falls in +Inf."""
    edges = sorted(buckets)
    total = buckets[edges[-1]] if edges else 0.0
    if total <= 0:
        return None
    rank = q * total
    lower_edge, lower_count = 0.0, 0.0
    for edge in edges:
        count = buckets[edge]
        if count >= rank:
            if math.isinf(edge):
                return lower_edge
            if count == lower_count:
                return edge
            return lower_edge + (edge - lower_edge) * (rank - lower_count) / (count - lower_count)
        lower_edge, lower_count = edge, count
    return lower_edge


def window_summary(kind: str, before: Scrape, after: Scrape, polls: list[Scrape]) -> dict[str, Any]:
    """What the server says about one window: per-request stage times (count, mean and
    quantiles in seconds), counter increments, gauges' mean and peak while it ran."""
    out: dict[str, Any] = {"available": True, "kind": kind, "source": "/metrics"}
    for ours, (kind_of, _) in NAMES[kind].items():
        if kind_of == "histogram":
            count = after.counts.get(ours, 0.0) - before.counts.get(ours, 0.0)
            if ours not in after.counts:
                continue
            delta = {
                edge: n - before.buckets.get(ours, {}).get(edge, 0.0)
                for edge, n in after.buckets.get(ours, {}).items()
            }
            total = after.sums.get(ours, 0.0) - before.sums.get(ours, 0.0)
            out[ours] = {
                "count": int(round(count)),
                "mean": total / count if count > 0 else None,
                **{f"p{round(q * 100)}": histogram_quantile(q, delta) for q in QUANTILES},
            }
        elif kind_of == "counter":
            if ours in after.values:
                out[ours] = after.values[ours] - before.values.get(ours, 0.0)
        else:
            seen = [s.values[ours] for s in [before, *polls, after] if ours in s.values]
            if seen:
                out[ours] = {"mean": sum(seen) / len(seen), "peak": max(seen)}
    queries = out.get("prefix_cache_queries")
    if isinstance(queries, float) and queries > 0:
        out["prefix_cache_hit_rate"] = out.get("prefix_cache_hits", 0.0) / queries
    elif isinstance(out.get("prefix_cache_hit_rate"), dict):  # SGLang's own gauge
        out["prefix_cache_hit_rate"] = out["prefix_cache_hit_rate"]["mean"]
    out["polls"] = len(polls)
    return out


def unavailable(reason: str) -> dict[str, Any]:
    return {"available": False, "reason": reason}


class MetricsProbe:
    """Scrapes one server's ``/metrics`` around each window (:meth:`start`, :meth:`stop`).

    ``kind`` None: detect vLLM or SGLang from the first page (an external server). Once the
    page could not be read, or named neither engine, every window reports that reason and the
    server is not asked again.
    """

    def __init__(
        self,
        base_url: str,
        kind: str | None,
        headers: Mapping[str, str] | None = None,
        poll_s: float = POLL_S,
        timeout_s: float = 5.0,
    ) -> None:
        self.url = f"{base_url.rstrip('/')}/metrics"
        self.kind = kind
        self.headers = dict(headers or {})
        self.poll_s = poll_s
        self.timeout_s = timeout_s
        self.failed: str | None = None
        self._before: Scrape | None = None
        self._polls: list[Scrape] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _get(self) -> str:
        request = urllib.request.Request(self.url, headers=self.headers)
        with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
            return str(response.read().decode("utf-8", "replace"))

    def _fetch(self) -> Scrape | str:
        """A parsed page, or why it cannot be had."""
        try:
            text = self._get()
        except urllib.error.HTTPError as exc:
            return f"GET {self.url}: HTTP {exc.code} {exc.reason}"
        except (urllib.error.URLError, OSError, ValueError) as exc:
            return f"GET {self.url}: {getattr(exc, 'reason', exc)}"
        kind = self.kind or detect_kind(text)
        if kind is None:
            return f"{self.url} carries neither vLLM's nor SGLang's metrics"
        try:
            scrape = parse(text, kind)
        except ValueError as exc:  # not Prometheus text
            return f"{self.url}: not a Prometheus page ({exc})"
        self.kind = kind
        return scrape

    def _scrape(self) -> Scrape | None:
        """A window's first or last page; a failure is kept and ends scraping for good."""
        if self.failed is not None:
            return None
        got = self._fetch()
        if isinstance(got, str):
            self.failed = got
            return None
        return got

    def start(self) -> None:
        """Just before the window: the first scrape, then polling in a thread."""
        self._before = self._scrape()
        self._polls = []
        self._stop.clear()
        if self._before is not None and self.poll_s > 0:
            self._thread = threading.Thread(target=self._poll, name="llmbench-metrics", daemon=True)
            self._thread.start()

    def _poll(self) -> None:
        while not self._stop.wait(self.poll_s):
            got = self._fetch()
            if isinstance(got, str):  # a busy server may miss a poll: the window goes on
                return
            self._polls.append(got)

    def stop(self) -> dict[str, Any]:
        """Just after the window: the last scrape and the window's summary."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.timeout_s + self.poll_s)
            self._thread = None
        after = self._scrape() if self._before is not None else None
        if self._before is None or after is None or self.kind is None:
            return unavailable(self.failed or "no scrape before the window")
        return window_summary(self.kind, self._before, after, self._polls)
