"""BenchmarkResult: what one benchmark measured, and how it travels (dicts, JSON, test reports)."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from pytest_llmbench.backends.base import Completion
from pytest_llmbench.energy.base import EnergyReading, EnergyUnavailable

SCHEMA_VERSION = 1
USER_PROPERTY = "llmbench_result"  # key under which a result rides on the test report


def _percentile(values: Sequence[float], q: float) -> float | None:
    """Linear-interpolation percentile (numpy's default); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def latency_summary(values: Sequence[float]) -> dict[str, float | None]:
    return {
        "mean": statistics.fmean(values) if values else None,
        "p50": _percentile(values, 50),
        "p90": _percentile(values, 90),
        "p99": _percentile(values, 99),
    }


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

    @classmethod
    def from_completions(
        cls,
        completions: Sequence[Completion],
        window_s: float,
        iterations: int,
        energy: EnergyReading | EnergyUnavailable,
    ) -> Repetition:
        ok = [c for c in completions if c.error is None]
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
        )

    def metrics(self) -> dict[str, float | None]:
        """Scalar metrics of this repetition, the unit of the statistics and of gating."""
        w = self.window_s
        out: dict[str, float | None] = {
            "output_throughput": self.output_tokens / w if w > 0 else None,
            "input_throughput": self.input_tokens / w if w > 0 else None,
            "request_throughput": self.requests / w if w > 0 else None,
            "error_rate": self.errors / (self.requests + self.errors)
            if self.requests + self.errors
            else None,
        }
        for name, values in (("ttft_s", self.ttft_s), ("itl_s", self.itl_s), ("e2e_latency_s", self.e2e_latency_s)):
            for key, value in latency_summary(values).items():
                out[f"{name}_{key}"] = value
        if isinstance(self.energy, EnergyReading):
            e = self.energy
            out["energy_j"] = e.energy_j
            out["dynamic_energy_j"] = e.dynamic_energy_j
            out["energy_per_output_token"] = e.energy_j / self.output_tokens if self.output_tokens else None
            out["dynamic_energy_per_output_token"] = (
                e.dynamic_energy_j / self.output_tokens
                if self.output_tokens and e.dynamic_energy_j is not None
                else None
            )
            out["energy_per_request"] = e.energy_j / self.requests if self.requests else None
            out["average_power_w"] = e.average_power_w
        return out

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["energy"] = energy_to_dict(self.energy)
        data["metrics"] = self.metrics()
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Repetition:
        return cls(
            window_s=data["window_s"],
            iterations=data["iterations"],
            requests=data["requests"],
            errors=data["errors"],
            input_tokens=data["input_tokens"],
            output_tokens=data["output_tokens"],
            ttft_s=tuple(data["ttft_s"]),
            itl_s=tuple(data["itl_s"]),
            e2e_latency_s=tuple(data["e2e_latency_s"]),
            energy=energy_from_dict(data["energy"]),
        )


def energy_to_dict(energy: EnergyReading | EnergyUnavailable) -> dict[str, Any]:
    if isinstance(energy, EnergyUnavailable):
        return {"available": False, "reason": energy.reason, "method": energy.method}
    data = asdict(energy)
    data["available"] = True
    data["dynamic_energy_j"] = energy.dynamic_energy_j
    data["average_power_w"] = energy.average_power_w
    return data


def energy_from_dict(data: Mapping[str, Any]) -> EnergyReading | EnergyUnavailable:
    from pytest_llmbench.energy.base import DeviceInfo

    if not data.get("available"):
        return EnergyUnavailable(reason=data["reason"], method=data.get("method", "none"))
    known = {f for f in EnergyReading.__dataclass_fields__}
    kwargs = {k: v for k, v in data.items() if k in known}
    kwargs["devices"] = tuple(DeviceInfo(**d) for d in data["devices"])
    return EnergyReading(**kwargs)


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

    def aggregate(self) -> dict[str, float | None]:
        """Mean over repetitions of each metric (None where a repetition lacks it)."""
        per_rep = [r.metrics() for r in self.repetitions]
        out: dict[str, float | None] = {}
        for key in per_rep[0] if per_rep else {}:
            values = [m[key] for m in per_rep]
            present = [v for v in values if v is not None]
            out[key] = statistics.fmean(present) if len(present) == len(values) and present else None
        return out

    @property
    def energy_unavailable_reason(self) -> str | None:
        for rep in self.repetitions:
            if isinstance(rep.energy, EnergyUnavailable):
                return rep.energy.reason
        return None

    @property
    def short_energy_windows(self) -> int:
        return sum(1 for r in self.repetitions if isinstance(r.energy, EnergyReading) and r.energy.short_window)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["repetitions"] = [r.to_dict() for r in self.repetitions]
        data["aggregate"] = self.aggregate()
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BenchmarkResult:
        fields = {f for f in cls.__dataclass_fields__}
        kwargs = {k: v for k, v in data.items() if k in fields}
        kwargs["repetitions"] = tuple(Repetition.from_dict(r) for r in data["repetitions"])
        return cls(**kwargs)
