"""Builders of real results and reports with chosen per-repetition numbers (no fakes)."""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pytest_llmbench.energy.base import DeviceInfo, EnergyReading, EnergyUnavailable
from pytest_llmbench.results import BenchmarkResult, Repetition, Report

OUTPUT_TOKENS = 1000
WORKLOAD = {"name": "default", "num_prompts": 10, "input_tokens": 32, "output_tokens": 100}
H100 = {
    "machine_id": "Linux-x86_64-NVIDIA_H100x1",
    "system": "Linux",
    "arch": "x86_64",
    "gpus": {"available": True, "devices": [{"index": 0, "name": "NVIDIA H100", "uuid": "GPU-1"}]},
}


def make_repetition(
    energy_per_token: float | None = 0.5, throughput: float = 1000.0, ttft_s: float = 0.05
) -> Repetition:
    window_s = OUTPUT_TOKENS / throughput
    energy: EnergyReading | EnergyUnavailable
    if energy_per_token is None:
        energy = EnergyUnavailable("NVML not found")
    else:
        power_w = energy_per_token * OUTPUT_TOKENS / window_s
        energy = EnergyReading(
            method="nvml-counter",
            window_s=window_s,
            energy_j=energy_per_token * OUTPUT_TOKENS,
            per_device_j={"GPU-1": energy_per_token * OUTPUT_TOKENS},
            devices=(DeviceInfo(0, "NVIDIA H100", "GPU-1"),),
            updates=100,
            idle_power_w=50.0,
            # as the counter meter keeps it: power around the window's average (energy / window)
            power_trace={
                "GPU-1": tuple((window_s * f, power_w * (0.9 + 0.2 * f)) for f in (0.25, 0.75))
            },
        )
    return Repetition(
        window_s=window_s,
        iterations=1,
        requests=10,
        errors=0,
        input_tokens=320,
        output_tokens=OUTPUT_TOKENS,
        ttft_s=tuple(ttft_s * (1 + i / 100) for i in range(10)),
        itl_s=tuple(0.01 for _ in range(20)),
        e2e_latency_s=tuple(1.0 + i / 10 for i in range(10)),
        energy=energy,
    )


def make_result(
    name: str = "test_a",
    backend: str = "pytorch",
    energy_per_token: Sequence[float | None] = (0.5, 0.5, 0.5),
    throughput: Sequence[float] | None = None,
    model: str = "/cache/tiny-model",
    workload: dict[str, Any] | None = None,
    config_hash: str = "abc123",
) -> BenchmarkResult:
    throughputs = throughput if throughput is not None else [1000.0] * len(energy_per_token)
    return BenchmarkResult(
        test_id=f"benchmarks/test_bench.py::{name}[{backend}]",
        backend=backend,
        backend_version="1.0",
        model=model,
        device="cuda",
        config_hash=config_hash,
        config={"runner": {"repetitions": len(energy_per_token)}},
        workload=dict(workload or WORKLOAD),
        traffic={"arrival_offsets_s": None, "max_concurrency": None},
        repetitions=tuple(
            make_repetition(e, t) for e, t in zip(energy_per_token, throughputs, strict=True)
        ),
        energy_method="nvml-counter",
        started_at="2025-01-01T00:00:00.000+00:00",
        finished_at="2025-01-01T00:01:00.000+00:00",
    )


def make_report(
    results: Sequence[BenchmarkResult],
    machine: dict[str, Any] | None = None,
    started_at: str = "2025-01-01T00:00:00.000+00:00",
    finished_at: str | None = "2025-01-01T01:00:00.000+00:00",
    complete: bool = True,
) -> Report:
    return Report(
        results=tuple(results),
        started_at=started_at,
        finished_at=finished_at,
        complete=complete,
        machine=dict(H100 if machine is None else machine),
    )


def noisy(mean: float, rel_sd: float, n: int, seed: int) -> list[float]:
    rng = random.Random(seed)
    return [rng.gauss(mean, mean * rel_sd) for _ in range(n)]


def write(path: Path, report: Report) -> Path:
    path.write_text(report.to_json())
    return path


def dump(data: dict[str, Any]) -> str:
    return json.dumps(data)
