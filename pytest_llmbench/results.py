"""BenchmarkResult and the JSON report: what was measured, and how it travels and is stored.

The report's shape is versioned (``SCHEMA_VERSION``) and described by the JSON Schema
``pytest_llmbench/schema/report-v2.json`` (:func:`load_schema`). Sections of a result marked
"derived" in the schema (``metrics``, ``statistics``, ``throughput``, ``energy``) are recomputed
from the raw repetitions when a report is read, so they can never disagree.

Version 2 keeps a summary of each repetition's latencies (:mod:`pytest_llmbench.latency`) instead
of every sample, unless samples were asked for (``--llm-keep-samples``); version 1 reports, which
kept every sample, are still read.
"""

from __future__ import annotations

import json
import math
import re
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_llmbench.energy.base import EnergyReading, EnergyUnavailable
from pytest_llmbench.energy.trace import TracePoints
from pytest_llmbench.errors import ReportError
from pytest_llmbench.latency import LatencySummary, pooled_summary
from pytest_llmbench.plain import (
    as_text,
    plain_float,
    plain_int,
    plain_json,
    plain_str,
    plain_str_dict,
)
from pytest_llmbench.stats import Summary

if TYPE_CHECKING:
    from pytest_llmbench.backends.base import Completion
    from pytest_llmbench.goodput import SLO
    from pytest_llmbench.loadgen import ClientLoad

SCHEMA_VERSION = 2
READABLE_SCHEMA_VERSIONS = (1, 2)  # versions Report.from_dict still reads
SCHEMA_RESOURCE = f"schema/report-v{SCHEMA_VERSION}.json"  # inside the package
USER_PROPERTY = "llmbench_result"  # key under which a result rides on the test report


@dataclass(frozen=True)
class Repetition:
    """One measured repetition: the workload run ``iterations`` times inside one energy window."""

    window_s: float
    iterations: int
    requests: int
    errors: int
    input_tokens: int
    output_tokens: int
    ttft_s: tuple[float, ...]
    itl_s: tuple[float, ...]
    e2e_latency_s: tuple[float, ...]
    energy: EnergyReading | EnergyUnavailable
    good_requests: int | None = None  # requests that met every SLO; None when no SLO was set
    # GPU state at both ends of the window (energy.telemetry.window_telemetry); None off-GPU
    telemetry: dict[str, Any] | None = None
    # Summaries of the three latency sample sets, by LATENCY_FIELDS name: computed from the
    # samples, or given alone when the samples were dropped (see without_samples()).
    latency: Mapping[str, LatencySummary] | None = None
    samples_dropped: bool = False
    # How the load generator fared (pytest_llmbench.loadgen.client_summary): schedule lag, CPU
    # share, stalls and the client-bound verdict; None where the backend is not a client
    client: dict[str, Any] | None = None
    # The server's own account of the window from its /metrics (backends/openai/server_metrics):
    # queue, prefill and decode times, KV-cache usage, preemptions, prefix-cache hits
    server: dict[str, Any] | None = None

    @property
    def throttled(self) -> bool:
        """The GPU was held back (power, thermal or hardware slowdown) around this window."""
        return bool(self.telemetry and self.telemetry.get("throttled"))

    @property
    def client_bound(self) -> bool:
        """The load generator, not the server, limited this window (pytest_llmbench.loadgen)."""
        return bool(self.client and self.client.get("bound"))

    @classmethod
    def from_completions(
        cls,
        completions: Sequence[Completion],
        window_s: float,
        iterations: int,
        energy: EnergyReading | EnergyUnavailable,
        slo: SLO | None = None,
        telemetry: dict[str, Any] | None = None,
        client_loads: Sequence[ClientLoad] | None = None,
    ) -> Repetition:
        ok = [c for c in completions if c.error is None]
        good = None
        if slo is not None:
            from pytest_llmbench.goodput import meets_slo

            good = sum(meets_slo(c, slo) for c in completions)
        client = None
        if client_loads:
            from pytest_llmbench.loadgen import client_summary, schedule_lags_s
            from pytest_llmbench.stats import percentile

            lags = schedule_lags_s(
                (c.start_s for c in completions), (c.scheduled_s for c in completions)
            )
            e2e = sorted(c.latency_s for c in ok)
            client = client_summary(lags, client_loads, percentile(e2e, 50) if e2e else None)
        return cls(
            window_s=window_s,
            iterations=iterations,
            requests=len(ok),
            errors=len(completions) - len(ok),
            input_tokens=sum(c.input_tokens for c in ok),
            output_tokens=sum(c.output_tokens for c in ok),
            ttft_s=tuple(t for c in ok if (t := c.ttft_s) is not None),
            itl_s=tuple(x for c in ok for x in c.inter_token_s),
            e2e_latency_s=tuple(c.latency_s for c in ok),
            energy=energy,
            good_requests=good,
            telemetry=telemetry,
            client=client,
        )

    def __post_init__(self) -> None:
        # Plain builtin numbers only (engines hand numpy scalars): see pytest_llmbench.plain.
        set_ = object.__setattr__
        set_(self, "window_s", plain_float(self.window_s, "window_s"))
        for name in ("iterations", "requests", "errors", "input_tokens", "output_tokens"):
            set_(self, name, plain_int(getattr(self, name), name))
        for name in ("ttft_s", "itl_s", "e2e_latency_s"):
            set_(self, name, tuple(plain_float(x, name) for x in getattr(self, name)))
        if self.good_requests is not None:
            set_(self, "good_requests", plain_int(self.good_requests, "good_requests"))
        if self.telemetry is not None:
            telemetry = plain_json(self.telemetry, "telemetry")
            if not isinstance(telemetry, dict) or not isinstance(telemetry.get("gpus", []), list):
                raise TypeError("telemetry: expected an object with a 'gpus' list")
            set_(self, "telemetry", telemetry)
        if self.server is not None:
            server = plain_json(self.server, "server")
            if not isinstance(server, dict) or not isinstance(server.get("available"), bool):
                raise TypeError("server: expected an object with a boolean 'available'")
            set_(self, "server", server)
        if self.client is not None:
            client = plain_json(self.client, "client")
            if not isinstance(client, dict) or not isinstance(client.get("bound"), bool):
                raise TypeError("client: expected an object with a boolean 'bound'")
            set_(self, "client", client)
        samples = self.latencies()
        if not self.samples_dropped:
            set_(self, "latency", {k: LatencySummary.of(v) for k, v in samples.items()})
        elif any(samples.values()):
            raise ValueError("samples given for a repetition whose samples were dropped")
        elif self.latency is None or set(self.latency) != set(LATENCY_FIELDS):
            raise ValueError(f"latency: expected summaries of {', '.join(LATENCY_FIELDS)}")

    @property
    def summaries(self) -> Mapping[str, LatencySummary]:
        """The latency summaries by field name (``ttft_s``, ``itl_s``, ``e2e_latency_s``)."""
        assert self.latency is not None  # set in __post_init__
        return self.latency

    @property
    def samples_kept(self) -> bool:
        """Every latency sample is here (not only the summaries)."""
        return not self.samples_dropped

    def without_samples(self) -> Repetition:
        """This repetition with summaries only: what a report keeps by default."""
        return replace(
            self,
            ttft_s=(),
            itl_s=(),
            e2e_latency_s=(),
            latency=self.summaries,
            samples_dropped=True,
        )

    def metrics(self) -> dict[str, float | None]:
        """Scalar metrics of this repetition, the unit of the statistics and of gating."""
        w = self.window_s
        out: dict[str, float | None] = {
            "output_throughput": self.output_tokens / w if w > 0 else None,
            "input_throughput": self.input_tokens / w if w > 0 else None,
            "request_throughput": self.requests / w if w > 0 else None,
            # vLLM's goodput: requests meeting every SLO per second of the run (--llm-slo).
            "goodput": self.good_requests / w if self.good_requests is not None and w > 0 else None,
            "error_rate": self.errors / (self.requests + self.errors)
            if self.requests + self.errors
            else None,
        }
        for name, summary in self.summaries.items():
            for key, value in summary.stats().items():
                out[f"{name}_{key}"] = value
        if isinstance(self.energy, EnergyReading):
            e = self.energy
            out["energy_j"] = e.energy_j
            out["dynamic_energy_j"] = e.dynamic_energy_j
            out["energy_per_output_token"] = (
                e.energy_j / self.output_tokens if self.output_tokens else None
            )
            out["dynamic_energy_per_output_token"] = (
                e.dynamic_energy_j / self.output_tokens
                if self.output_tokens and e.dynamic_energy_j is not None
                else None
            )
            out["energy_per_request"] = e.energy_j / self.requests if self.requests else None
            out["energy_per_good_request"] = (
                e.energy_j / self.good_requests if self.good_requests else None
            )
            out["average_power_w"] = e.average_power_w
        return out

    def latencies(self) -> dict[str, tuple[float, ...]]:
        """Per-request (or per-token, for ``itl_s``) latency samples in seconds, by metric base
        name; empty where only summaries were kept (see :attr:`samples_kept`)."""
        return {"ttft_s": self.ttft_s, "itl_s": self.itl_s, "e2e_latency_s": self.e2e_latency_s}

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            name: getattr(self, name)
            for name in (
                "window_s",
                "iterations",
                "requests",
                "errors",
                "input_tokens",
                "output_tokens",
                "good_requests",
                "telemetry",
            )
        }
        if self.client is not None:  # absent rather than null: most backends are no client
            data["client"] = self.client
        if self.server is not None:
            data["server"] = self.server
        data["energy"] = energy_to_dict(self.energy)
        data["latency"] = {k: s.to_dict() for k, s in self.summaries.items()}
        if self.samples_kept:
            data["samples"] = {k: list(v) for k, v in self.latencies().items()}
        data["metrics"] = self.metrics()
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], schema_version: int = SCHEMA_VERSION) -> Repetition:
        """Parse a repetition of a report of ``schema_version`` (1: samples only)."""
        summaries: dict[str, LatencySummary] | None = None
        if schema_version == 1:
            samples = {k: tuple(data[k]) for k in LATENCY_FIELDS}
        else:
            kept = data.get("samples") or {}
            samples = {k: tuple(kept.get(k, ())) for k in LATENCY_FIELDS}
            summaries = {
                k: LatencySummary.from_dict(data["latency"][k], f"latency.{k}")
                for k in LATENCY_FIELDS
            }
        return cls(
            window_s=data["window_s"],
            iterations=data["iterations"],
            requests=data["requests"],
            errors=data["errors"],
            input_tokens=data["input_tokens"],
            output_tokens=data["output_tokens"],
            ttft_s=samples["ttft_s"],
            itl_s=samples["itl_s"],
            e2e_latency_s=samples["e2e_latency_s"],
            energy=energy_from_dict(data["energy"]),
            good_requests=data.get("good_requests"),
            telemetry=data.get("telemetry"),
            client=data.get("client"),
            server=data.get("server"),
            latency=summaries,
            samples_dropped=summaries is not None and "samples" not in data,
        )


LATENCY_FIELDS = ("ttft_s", "itl_s", "e2e_latency_s")


def energy_to_dict(energy: EnergyReading | EnergyUnavailable) -> dict[str, Any]:
    if isinstance(energy, EnergyUnavailable):
        return {"available": False, "reason": energy.reason, "method": energy.method}
    data = asdict(energy)
    del data["power_trace"]  # last, below: the longest part
    data["available"] = True
    data["dynamic_energy_j"] = energy.dynamic_energy_j
    data["average_power_w"] = energy.average_power_w
    # Two arrays of numbers per device rather than [t, W] pairs: half the JSON lines.
    data["power_trace"] = {
        device: {"t_s": [t for t, _ in points], "power_w": [w for _, w in points]}
        for device, points in energy.power_trace.items()
    }
    return data


def energy_from_dict(data: Mapping[str, Any]) -> EnergyReading | EnergyUnavailable:
    from pytest_llmbench.energy.base import DeviceInfo

    if not data.get("available"):
        return EnergyUnavailable(reason=data["reason"], method=data.get("method", "none"))
    known = {f for f in EnergyReading.__dataclass_fields__}
    kwargs = {k: v for k, v in data.items() if k in known}
    kwargs["devices"] = tuple(DeviceInfo(**d) for d in data["devices"])
    # Reports from before power traces have none: an empty trace, which the HTML explains.
    kwargs["power_trace"] = _power_trace_from_dict(data.get("power_trace", {}))
    return EnergyReading(**kwargs)


def _power_trace_from_dict(data: object) -> dict[str, TracePoints]:
    """``energy.power_trace`` of a report: per device, ``t_s`` and ``power_w`` arrays of one
    length. Errors name the field; the reading checks the bound on points and finiteness."""
    where = "energy.power_trace"
    if not isinstance(data, Mapping):
        raise TypeError(f"{where}: expected an object, found {type(data).__name__}")
    trace = {}
    for device, columns in data.items():
        at = f"{where}.{device}"
        if not isinstance(columns, Mapping):
            raise TypeError(
                f"{at}: expected an object with t_s and power_w, found {type(columns).__name__}"
            )
        arrays = []
        for key in ("t_s", "power_w"):
            values = columns.get(key)
            if not isinstance(values, list):
                raise TypeError(f"{at}.{key}: expected an array of numbers")
            arrays.append([plain_float(v, f"{at}.{key}[{i}]") for i, v in enumerate(values)])
        times_s, power_w = arrays
        if len(times_s) != len(power_w):
            raise ValueError(f"{at}: {len(times_s)} t_s but {len(power_w)} power_w values")
        trace[device] = tuple(zip(times_s, power_w, strict=True))
    return trace


_RESULT_TEXT_FIELDS = (
    "test_id",
    "backend",
    "model",
    "device",
    "config_hash",
    "energy_method",
    "started_at",
    "finished_at",
)


@dataclass(frozen=True)
class BenchmarkResult:
    """Everything one benchmark test measured, with what is needed to compare it later."""

    test_id: str
    backend: str
    backend_version: str
    model: str
    device: str
    config_hash: str
    config: dict[str, Any]
    workload: dict[str, Any]
    traffic: dict[str, Any]
    repetitions: tuple[Repetition, ...]
    energy_method: str
    started_at: str
    finished_at: str
    engine_details: dict[str, str] = field(default_factory=dict)
    warmup: dict[str, Any] = field(default_factory=dict)  # runner.Warmup.to_dict()
    # quality.perplexity of the engine (pytest_llmbench.quality); None in reports from before it
    quality: dict[str, Any] | None = None
    # speculative decoding counts over this result's call (pytest_llmbench.speculative)
    speculative: dict[str, Any] | None = None
    # where the model came from: Hugging Face id, revision, commit, local path, context
    # (ResolvedModel.section); None in reports from before it
    model_source: dict[str, Any] | None = None
    # a multi-turn result (pytest_llmbench.multiturn): mode, turn index, per-turn statistics
    conversation: dict[str, Any] | None = None
    # a peak-goodput search (pytest_llmbench.search): its curve and peak; the repetitions are
    # those of the peak load (or of the lowest load tried when none met the SLO)
    search: dict[str, Any] | None = None
    # Latencies of all repetitions pooled, by LATENCY_FIELDS name: computed from the samples when
    # every repetition kept them; else as given (exact percentiles from measurement time), else
    # what the repetitions' summaries tell (no percentiles). See latency_summaries().
    pooled_latency: Mapping[str, LatencySummary] | None = None

    @property
    def throttled_repetitions(self) -> int:
        return sum(1 for r in self.repetitions if r.throttled)

    @property
    def client_bound_repetitions(self) -> int:
        return sum(1 for r in self.repetitions if r.client_bound)

    @property
    def client_bound(self) -> str | None:
        """Why the load generator limited this result (its first client-bound repetition's
        reasons), or None: its numbers then describe the client, and a gate calls its gated
        metrics unmeasured."""
        for rep in self.repetitions:
            if rep.client_bound and rep.client is not None:
                reasons = rep.client.get("reasons") or ["client-bound"]
                count = self.client_bound_repetitions
                return f"client-bound in {count} of {len(self.repetitions)} repetitions: " + (
                    "; ".join(str(r) for r in reasons)
                )
        return None

    def __post_init__(self) -> None:
        # The boundary where engine facts (versions, details) and config values enter a result:
        # only exact builtin JSON types pass, so json and xdist's execnet carry it unchanged.
        set_ = object.__setattr__
        for name in _RESULT_TEXT_FIELDS:
            set_(self, name, plain_str(getattr(self, name), name))
        set_(self, "backend_version", as_text(self.backend_version))  # e.g. torch's TorchVersion
        for name in ("config", "workload", "traffic"):
            set_(self, name, plain_json(getattr(self, name), name))
        set_(self, "engine_details", plain_str_dict(self.engine_details))
        warmup = plain_json({} if self.warmup is None else self.warmup, "warmup")
        if not isinstance(warmup, dict):
            raise TypeError(f"warmup: expected an object, found {type(warmup).__name__}")
        set_(self, "warmup", warmup)
        set_(self, "repetitions", tuple(self.repetitions))
        for name in ("quality", "speculative", "model_source", "conversation", "search"):
            value = getattr(self, name)
            if value is not None:
                value = plain_json(value, name)
                if not isinstance(value, dict):
                    raise TypeError(f"{name}: expected an object, found {type(value).__name__}")
                set_(self, name, value)
        if all(r.samples_kept for r in self.repetitions):
            pooled = {
                k: LatencySummary.of([v for r in self.repetitions for v in r.latencies()[k]])
                for k in LATENCY_FIELDS
            }
        elif self.pooled_latency is not None:
            pooled = dict(self.pooled_latency)
            for k in LATENCY_FIELDS:
                counted = sum(r.summaries[k].count for r in self.repetitions)
                if k not in pooled or pooled[k].count != counted:
                    raise ValueError(
                        f"latency.{k}: pooled count does not match the repetitions' ({counted})"
                    )
        else:
            pooled = {
                k: pooled_summary([r.summaries[k] for r in self.repetitions])
                for k in LATENCY_FIELDS
            }
        set_(self, "pooled_latency", pooled)

    def result_metrics(self) -> dict[str, float | None]:
        """Metrics measured once per result, not per repetition: perplexity (deterministic) and
        a search's peak goodput."""
        quality = self.quality or {}
        value = quality.get("perplexity")
        out = {"perplexity": float(value) if isinstance(value, (int, float)) else None}
        peak = (self.search or {}).get("peak_goodput")
        out["peak_goodput"] = float(peak) if isinstance(peak, (int, float)) else None
        return out

    def without_samples(self) -> BenchmarkResult:
        """This result with latency summaries only (exact percentiles kept): the report's
        default, whose size does not grow with the number of tokens measured."""
        return replace(
            self,
            repetitions=tuple(r.without_samples() for r in self.repetitions),
            pooled_latency=self.latency_summaries(),
        )

    def latency_summaries(self) -> dict[str, LatencySummary]:
        """Latencies of all repetitions pooled (seconds), by field name."""
        assert self.pooled_latency is not None  # set in __post_init__
        return dict(self.pooled_latency)

    def aggregate(self) -> dict[str, float | None]:
        """Mean over repetitions of each metric (None where a repetition lacks it), and the
        result-level metrics (perplexity) where measured."""
        out: dict[str, float | None] = {
            name: statistics.fmean(values) if values is not None else None
            for name, values in self.metric_table().items()
        }
        out.update({k: v for k, v in self.result_metrics().items() if v is not None})
        return out

    def metric_table(self) -> dict[str, list[float] | None]:
        """Each metric's value in every repetition; None where any repetition lacks it."""
        per_rep = [r.metrics() for r in self.repetitions]
        out: dict[str, list[float] | None] = {}
        for key in per_rep[0] if per_rep else {}:
            values = [m.get(key) for m in per_rep]
            present = [v for v in values if v is not None]
            out[key] = present if present and len(present) == len(values) else None
        return out

    def metric_values(self, name: str) -> list[float] | None:
        """``name``'s value in every repetition (the unit of comparison), or None if missing; a
        result-level metric has one value."""
        once = self.result_metrics()
        if name in once:
            value = once[name]
            return None if value is None else [value]
        return self.metric_table().get(name)

    def statistics(self) -> dict[str, Summary]:
        """Mean, median, stdev and 95% interval over repetitions, per metric."""
        return {
            name: Summary.of(values)
            for name, values in self.metric_table().items()
            if values is not None
        }

    def throughput(self) -> dict[str, float | None]:
        """Tokens and requests per second over all repetitions (totals / total window)."""
        window = sum(r.window_s for r in self.repetitions)

        def rate(total: int) -> float | None:
            return total / window if window > 0 else None

        return {
            "input_tok_s": rate(sum(r.input_tokens for r in self.repetitions)),
            "output_tok_s": rate(sum(r.output_tokens for r in self.repetitions)),
            "requests_s": rate(sum(r.requests for r in self.repetitions)),
        }

    def latency(self) -> dict[str, dict[str, float | None]]:
        """Latency mean and percentiles (seconds) over the requests of all repetitions pooled."""
        return {name: s.stats() for name, s in self.latency_summaries().items()}

    def energy_summary(self) -> dict[str, Any]:
        """Energy per repetition (means), or ``{"available": False, "reason": ...}``."""
        reason = self.energy_unavailable_reason
        if reason is not None or not self.repetitions:
            return {"available": False, "reason": reason or "no repetitions"}
        readings = [r.energy for r in self.repetitions if isinstance(r.energy, EnergyReading)]
        table = self.metric_table()

        def mean(name: str) -> float | None:
            values = table.get(name)
            return statistics.fmean(values) if values else None

        first = readings[0]
        return {
            "available": True,
            "method": first.method,
            "energy_j": mean("energy_j"),
            "dynamic_energy_j": mean("dynamic_energy_j"),
            "energy_per_output_token": mean("energy_per_output_token"),
            "energy_per_request": mean("energy_per_request"),
            "average_power_w": mean("average_power_w"),
            "window_s": statistics.fmean(e.window_s for e in readings),
            "short_windows": self.short_energy_windows,
            "devices": [asdict(d) for d in first.devices],
        }

    @property
    def energy_unavailable_reason(self) -> str | None:
        for rep in self.repetitions:
            if isinstance(rep.energy, EnergyUnavailable):
                return rep.energy.reason
        return None

    @property
    def short_energy_windows(self) -> int:
        return sum(
            1
            for r in self.repetitions
            if isinstance(r.energy, EnergyReading) and r.energy.short_window
        )

    def to_dict(self) -> dict[str, Any]:
        data = {
            f: getattr(self, f)
            for f in self.__dataclass_fields__
            if f not in ("repetitions", "pooled_latency")
        }
        # optional sections: absent rather than null
        for name in ("quality", "speculative", "model_source", "conversation", "search"):
            if data[name] is None:
                del data[name]
        data["repetitions"] = [r.to_dict() for r in self.repetitions]
        data["aggregate"] = self.aggregate()
        data["statistics"] = {name: s.to_dict() for name, s in self.statistics().items()}
        data["throughput"] = self.throughput()
        data["latency"] = {k: s.to_dict() for k, s in self.latency_summaries().items()}
        data["energy"] = self.energy_summary()
        return data

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], schema_version: int = SCHEMA_VERSION
    ) -> BenchmarkResult:
        """Parse a result of a report of ``schema_version`` (see :meth:`Report.from_dict`)."""
        fields = {f for f in cls.__dataclass_fields__} - {"pooled_latency"}
        kwargs = {k: v for k, v in data.items() if k in fields}
        kwargs["repetitions"] = tuple(
            Repetition.from_dict(r, schema_version) for r in data["repetitions"]
        )
        if schema_version >= 2 and data.get("latency"):
            kwargs["pooled_latency"] = {
                k: LatencySummary.from_dict(v, f"latency.{k}") for k, v in data["latency"].items()
            }
        return cls(**kwargs)


# -- the report ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Report:
    """A JSON report: results of one session (or several merged), and the machine they ran on.

    ``complete`` is False while a session is running or after it was interrupted. Results of
    different backends sit side by side; ``mixed_backends`` is True only in reports merged
    with mixing explicitly allowed (see :mod:`pytest_llmbench.merge`).
    """

    results: tuple[BenchmarkResult, ...]
    started_at: str
    finished_at: str | None
    complete: bool
    machine: dict[str, Any] = field(default_factory=dict)
    pytest_llmbench_version: str = ""
    schema_version: int = SCHEMA_VERSION
    mixed_backends: bool = False
    # One entry per pair of backends of one session (quality.agreement.compare_probes)
    agreement: tuple[dict[str, Any], ...] = ()
    # The gate's comparison with a baseline (gate.Comparison.to_dict()), kept as written
    comparison: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "agreement", tuple(self.agreement))
        if not self.pytest_llmbench_version:
            from pytest_llmbench import __version__

            object.__setattr__(self, "pytest_llmbench_version", __version__)

    @property
    def backends(self) -> list[str]:
        return sorted({r.backend for r in self.results})

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "schema_version": self.schema_version,
            "pytest_llmbench_version": self.pytest_llmbench_version,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "complete": self.complete,
            "backends": self.backends,
            "machine": self.machine,
            "results": [r.to_dict() for r in self.results],
        }
        if self.mixed_backends:
            data["mixed_backends"] = True
        if self.agreement:
            data["agreement"] = [dict(entry) for entry in self.agreement]
        if self.comparison is not None:
            data["comparison"] = self.comparison
        return data

    def to_json(self) -> str:
        return report_json(self.to_dict())

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "<report>") -> Report:
        """Parse a report dict; :class:`ReportError` naming ``source`` and the problem."""
        if not isinstance(data, Mapping):
            raise ReportError(source, f"expected a JSON object, found {type(data).__name__}")
        version = data.get("schema_version")
        if version not in READABLE_SCHEMA_VERSIONS:
            expected = " or ".join(str(v) for v in READABLE_SCHEMA_VERSIONS)
            raise ReportError(
                source, f"schema_version {version!r} is not supported (expected {expected})"
            )
        for key, kind in (("results", list), ("started_at", str), ("complete", bool)):
            if key not in data:
                raise ReportError(source, f"missing key {key!r}")
            if not isinstance(data[key], kind):
                raise ReportError(source, f"{key!r} should be a {kind.__name__}")
        results = []
        for i, item in enumerate(data["results"]):
            try:
                results.append(BenchmarkResult.from_dict(item, version))
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                what = f"missing key {exc}" if isinstance(exc, KeyError) else str(exc)
                raise ReportError(source, f"results[{i}]: {what}") from None
        machine = data.get("machine") or {}
        if not isinstance(machine, dict):
            raise ReportError(
                source, f"'machine' should be an object, found {type(machine).__name__}"
            )
        agreement = data.get("agreement") or []
        if not isinstance(agreement, list) or not all(
            isinstance(e, dict) and isinstance(e.get("backends"), list) for e in agreement
        ):
            raise ReportError(source, "'agreement' should be a list of objects with 'backends'")
        return cls(
            results=tuple(results),
            agreement=tuple(agreement),
            started_at=data["started_at"],
            finished_at=data.get("finished_at"),
            complete=data["complete"],
            machine=dict(machine),
            pytest_llmbench_version=str(data.get("pytest_llmbench_version") or ""),
            schema_version=SCHEMA_VERSION,
            mixed_backends=bool(data.get("mixed_backends", False)),
            comparison=data["comparison"] if isinstance(data.get("comparison"), dict) else None,
        )


# json.dumps(indent=2) puts each item of an array on its own line. An array of numbers (histogram
# counts, kept samples, power traces) then takes a line per number; the writer joins them. JSON
# strings never hold a raw newline, so this pattern only ever meets the layout's own.
_NUMBER = r"(?:-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|null)"
_NUMBER_ARRAY = re.compile(rf"\[\n\s*{_NUMBER}(?:,\n\s*{_NUMBER})*\n\s*\]")
_ITEM_BREAK = re.compile(r",\n\s*")


def report_json(data: Mapping[str, Any]) -> str:
    """A report's JSON text: objects indented, arrays of numbers on one line each."""
    text = json.dumps(_json_safe(data), indent=2, allow_nan=False)

    def one_line(match: re.Match[str]) -> str:
        inner = match.group(0)[1:-1].strip()
        return "[" + _ITEM_BREAK.sub(", ", inner) + "]"

    return _NUMBER_ARRAY.sub(one_line, text) + "\n"


def _json_safe(value: Any) -> Any:
    """Non-finite floats (infinite interval bounds, ...) become null: JSON has no inf/nan."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def read_report_data(path: str | Path) -> dict[str, Any]:
    """The JSON object in ``path``; :class:`ReportError` (one line) if unreadable or truncated."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ReportError(source, "no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ReportError(source, f"cannot be read: {exc}") from None
    if not text.strip():
        raise ReportError(source, "file is empty")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        # A report killed mid-write (or a partial artifact download) stops before its last "}".
        truncated = exc.pos >= len(text.rstrip()) or not text.rstrip().endswith(("}", "]"))
        hint = "truncated JSON" if truncated else "invalid JSON"
        raise ReportError(
            source, f"{hint} at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None
    if not isinstance(data, dict):
        raise ReportError(source, f"expected a JSON object, found {type(data).__name__}")
    return data


def load_report(path: str | Path) -> Report:
    """Read and parse a report file; :class:`ReportError` names the file and the problem."""
    return Report.from_dict(read_report_data(path), source=str(path))


def load_schema() -> dict[str, Any]:
    """The JSON Schema of the current report version (shipped inside the package)."""
    from importlib import resources

    text = resources.files("pytest_llmbench").joinpath(SCHEMA_RESOURCE).read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema
