"""Characterise the NVML energy counter of a GPU: what the minimum-window rule rests on.

Measures, on GPU 0, with a steady bf16 matmul load (no model, no compilation):

1. the cost of one counter read and one power read;
2. the counter's update cadence, idle and under load;
3. the error of short windows (3, 5, 10, 20, 50 counter updates) against the average power of a
   60 s window of the same steady load, reading the counter at arbitrary instants as a meter does;
4. the cost of our meters' pollers to the load (matmul TFLOP/s with and without them running);
5. idle power after the load stops (0-5 s, 25-30 s, 55-60 s later).

Run on a CUDA machine from the checkout root, after ``pip install -e ".[dev]"`` (writes JSON;
prints it too):

    python ci/gpu/energy_windows.py --out out/energy-windows.json
"""

from __future__ import annotations

import argparse
import bisect
import json
import random
import statistics
import threading
import time
from typing import Any

import pynvml
import torch

from pytest_llmbench.energy.select import select_meter


def read_cost_ms(fn: Any, n: int = 500) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n * 1e3


class CounterTrace(threading.Thread):
    """Reads the counter as fast as it can; keeps (time, mJ) at every change of value."""

    def __init__(self, handle: Any) -> None:
        super().__init__(daemon=True)
        self.handle = handle
        self.times: list[float] = []
        self.values: list[int] = []
        self.reads = 0
        self._halt = threading.Event()

    def run(self) -> None:
        last = None
        while not self._halt.is_set():
            value = pynvml.nvmlDeviceGetTotalEnergyConsumption(self.handle)
            now = time.perf_counter()
            self.reads += 1
            if value != last:
                self.times.append(now)
                self.values.append(value)
                last = value
            time.sleep(0.0005)

    def stop(self) -> None:
        self._halt.set()
        self.join()

    def at(self, t: float) -> int:
        """The counter a reader at time ``t`` would have seen (last change at or before t)."""
        i = bisect.bisect_right(self.times, t) - 1
        return self.values[max(i, 0)]

    def cadence_s(self) -> float:
        gaps = [b - a for a, b in zip(self.times[1:], self.times[2:], strict=False)]
        return statistics.median(gaps)


def matmul_load(seconds: float, size: int = 8192) -> float:
    """Steady bf16 matmuls for ``seconds``; the TFLOP/s achieved."""
    a = torch.randn(size, size, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(size, size, device="cuda", dtype=torch.bfloat16)
    torch.cuda.synchronize()
    t0, n = time.perf_counter(), 0
    while time.perf_counter() - t0 < seconds:
        for _ in range(20):
            a @ b
        torch.cuda.synchronize()
        n += 20
    return 2 * size**3 * n / (time.perf_counter() - t0) / 1e12


def window_errors(trace: CounterTrace, cadence_s: float, ref_w: float) -> dict[str, Any]:
    """Relative error of windows of N updates' length at random start times in the trace."""
    rng = random.Random(0)
    out: dict[str, Any] = {}
    t_first, t_last = trace.times[1], trace.times[-1]
    for updates in (3, 5, 10, 20, 50):
        length = updates * cadence_s
        errors = []
        for _ in range(2000):
            start = rng.uniform(t_first, t_last - length)
            measured_j = (trace.at(start + length) - trace.at(start)) / 1e3
            errors.append(abs(measured_j / (ref_w * length) - 1) * 100)
        errors.sort()
        out[str(updates)] = {
            "window_s": round(length, 3),
            "median_abs_err_pct": round(statistics.median(errors), 2),
            "p95_abs_err_pct": round(errors[int(0.95 * len(errors))], 2),
            "max_abs_err_pct": round(errors[-1], 2),
        }
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", required=True)
    parser.add_argument("--load-s", type=float, default=60.0)
    args = parser.parse_args()
    pynvml.nvmlInit()
    handle = pynvml.nvmlDeviceGetHandleByIndex(0)
    result: dict[str, Any] = {"gpu": pynvml.nvmlDeviceGetName(handle)}
    torch.ones(1, device="cuda")  # CUDA context before any timing

    result["counter_read_ms"] = round(
        read_cost_ms(lambda: pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)), 3
    )
    result["power_read_ms"] = round(read_cost_ms(lambda: pynvml.nvmlDeviceGetPowerUsage(handle)), 3)

    idle = CounterTrace(handle)
    idle.start()
    time.sleep(5.0)
    idle.stop()
    result["idle_cadence_s"] = round(idle.cadence_s(), 4)
    result["idle_w_before_load"] = round(
        (idle.values[-1] - idle.values[1]) / 1e3 / (idle.times[-1] - idle.times[1]), 1
    )

    matmul_load(5.0)  # warm the clocks before the reference window
    trace = CounterTrace(handle)
    trace.start()
    result["load_tflops"] = round(matmul_load(args.load_s), 1)
    trace.stop()
    cadence = trace.cadence_s()
    ref_w = (trace.values[-1] - trace.values[1]) / 1e3 / (trace.times[-1] - trace.times[1])
    result["load_cadence_s"] = round(cadence, 4)
    result["load_reference_w"] = round(ref_w, 1)
    result["load_reference_window_s"] = round(trace.times[-1] - trace.times[1], 2)
    result["counter_reads_per_s"] = round(trace.reads / args.load_s, 1)
    result["short_window_error"] = window_errors(trace, cadence, ref_w)

    runs: dict[str, list[float]] = {
        "none": [],
        "nvml-counter (25 ms poll)": [],
        "nvml-power (10 ms)": [],
    }
    for _ in range(2):
        runs["none"].append(matmul_load(8.0))
        for label, choice, kwargs in (
            ("nvml-counter (25 ms poll)", "nvml", {}),
            ("nvml-power (10 ms)", "nvml-power", {"sample_interval_s": 0.01}),
        ):
            meter, _ = select_meter(choice, [0], **kwargs)
            window = meter.start()
            runs[label].append(matmul_load(8.0))
            window.stop()
            meter.close()
    base = statistics.mean(runs["none"])
    result["poller_cost"] = {
        k: {
            "tflops": [round(x, 1) for x in v],
            "vs_none_pct": round((statistics.mean(v) / base - 1) * 100, 2),
        }
        for k, v in runs.items()
    }

    marks: dict[str, float] = {}
    t0 = time.perf_counter()
    samples: list[tuple[float, float]] = []
    while (now := time.perf_counter() - t0) < 60.0:
        samples.append((now, pynvml.nvmlDeviceGetPowerUsage(handle) / 1e3))
        time.sleep(0.1)
    for lo, hi in ((0, 5), (25, 30), (55, 60)):
        marks[f"{lo}-{hi}s"] = round(statistics.mean(w for t, w in samples if lo <= t < hi), 1)
    result["idle_w_after_load"] = marks

    text = json.dumps(result, indent=2)
    print(text)
    with open(args.out, "w") as f:
        f.write(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
