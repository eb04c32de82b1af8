"""The metrics a repetition produces: names, units and which direction is better.

One source of truth for the gate's rule parser, the comparison table and the report schema.
Names follow vLLM's ``benchmark_serving`` where one exists (``output_throughput``,
``request_throughput``); latencies carry their unit (``ttft_s``) and a per-repetition statistic
over requests (``ttft_s_p99``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Better(str, Enum):
    HIGHER = "higher"
    LOWER = "lower"


@dataclass(frozen=True)
class Metric:
    name: str
    unit: str
    better: Better
    description: str
    energy: bool = False  # needs an energy reading; gates on it skip when energy is unavailable
    # Same weights, same input, same value on every run (up to kernel rounding): the gate judges
    # it by its threshold from the first history run, with no between-run noise to learn.
    deterministic: bool = False
    # "repetition": one value per repetition; "result": one per result (perplexity); "pair": one
    # per pair of backends of a session (the report's agreement section)
    scope: str = "repetition"

    @property
    def worse_sign(self) -> int:
        """+1 when an increase is a regression, -1 when a decrease is."""
        return 1 if self.better is Better.LOWER else -1


LATENCY_BASES: dict[str, str] = {
    "ttft_s": "time to first token",
    "itl_s": "inter-token latency",
    "e2e_latency_s": "end-to-end request latency",
}
LATENCY_STATS: tuple[str, ...] = ("mean", "p50", "p90", "p99")


def _catalogue() -> dict[str, Metric]:
    items = [
        Metric("output_throughput", "tok/s", Better.HIGHER, "output tokens per second"),
        Metric("input_throughput", "tok/s", Better.HIGHER, "input (prompt) tokens per second"),
        Metric("request_throughput", "req/s", Better.HIGHER, "completed requests per second"),
        Metric("error_rate", "fraction", Better.LOWER, "failed requests / all requests"),
        Metric("goodput", "req/s", Better.HIGHER, "requests per second meeting every --llm-slo"),
        Metric(
            "peak_goodput",
            "req/s",
            Better.HIGHER,
            "goodput at the highest load that met the SLO (llm_bench.peak_goodput; 0: none met)",
            scope="result",
        ),
    ]
    for base, text in LATENCY_BASES.items():
        for stat in LATENCY_STATS:
            items.append(
                Metric(f"{base}_{stat}", "s", Better.LOWER, f"{text}, {stat} over requests")
            )
    items += [
        Metric("energy_j", "J", Better.LOWER, "energy of the window, all devices", energy=True),
        Metric("dynamic_energy_j", "J", Better.LOWER, "energy above idle", energy=True),
        Metric(
            "energy_per_output_token", "J/tok", Better.LOWER, "joules per output token", energy=True
        ),
        Metric(
            "dynamic_energy_per_output_token",
            "J/tok",
            Better.LOWER,
            "joules above idle per output token",
            energy=True,
        ),
        Metric("energy_per_request", "J/req", Better.LOWER, "joules per request", energy=True),
        Metric(
            "energy_per_good_request",
            "J/req",
            Better.LOWER,
            "joules per request that met every --llm-slo threshold",
            energy=True,
        ),
        Metric("average_power_w", "W", Better.LOWER, "average power over the window", energy=True),
        Metric(
            "perplexity",
            "ppl",
            Better.LOWER,
            "perplexity of the shipped reference text (quality.perplexity)",
            deterministic=True,
            scope="result",
        ),
        Metric(
            "token_agreement",
            "fraction",
            Better.HIGHER,
            "greedy-probe agreement of two backends of one session (agreement section)",
            deterministic=True,
            scope="pair",
        ),
    ]
    return {m.name: m for m in items}


METRICS: dict[str, Metric] = _catalogue()

# What `llmbench compare` shows when no --fail-on rule names a metric.
DEFAULT_COMPARE_METRICS: tuple[str, ...] = (
    "output_throughput",
    "request_throughput",
    "ttft_s_p50",
    "itl_s_p50",
    "e2e_latency_s_p99",
    "energy_per_output_token",
)


def get_metric(name: str) -> Metric:
    """The metric called ``name``; KeyError with a message that lists what exists."""
    try:
        return METRICS[name]
    except KeyError:
        raise KeyError(unknown_metric_message(name)) from None


def unknown_metric_message(name: str) -> str:
    if name in LATENCY_BASES:
        choices = ", ".join(f"{name}_{s}" for s in LATENCY_STATS)
        return f"{name!r} needs a statistic over requests: one of {choices}"
    return f"unknown metric {name!r}; known metrics: {', '.join(METRICS)}"
