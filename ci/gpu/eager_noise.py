"""Where eager transformers decoding spends its time, run by run: host or GPU.

Eager (uncompiled) batch-1 decoding of the 1.1B shape on an H100 swings by tens of percent
between back-to-back runs, which hides a 2% harness difference. This script times repeated
``generate`` calls and records, per run, what could explain a slow one: the main thread's CPU
time (host-bound runs spend it all in Python and kernel launches), the machine's steal time
(another tenant on the host), involuntary context switches, and the GPU's SM clock.

    python ci/gpu/eager_noise.py MODEL_DIR [--runs 24] [--tokens 128] [--batch 1]
        [--attn eager] [--pin CPU] [--sync-free] > noise.json

``--pin`` keeps the process on one CPU; ``--sync-free`` passes a stopping criterion that never
reads the GPU, to see whether generate's per-step host sync is what couples the two.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time
from typing import Any

DEVICE = os.environ.get("NOISE_DEVICE", "cuda")


def _steal_jiffies() -> int:
    with open("/proc/stat") as f:
        fields = f.readline().split()  # cpu user nice system idle iowait irq softirq steal ...
    return int(fields[8]) if len(fields) > 8 else 0


def _sm_clock(handle: Any) -> int | None:
    if handle is None:
        return None
    import pynvml

    return int(pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_SM))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model")
    p.add_argument("--runs", type=int, default=24)
    p.add_argument("--tokens", type=int, default=128)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--attn", default="eager")
    p.add_argument("--pin", type=int, default=None)
    p.add_argument("--sync-free", action="store_true")
    args = p.parse_args(argv)
    if args.pin is not None:
        os.sched_setaffinity(0, {args.pin})

    import torch
    from transformers import AutoModelForCausalLM, StoppingCriteria, StoppingCriteriaList

    handle = None
    try:
        import pynvml

        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(0)
    except Exception as exc:  # noqa: BLE001 - the clock is a diagnostic, not the measurement
        print(f"no NVML: {exc}", file=sys.stderr)

    model = AutoModelForCausalLM.from_pretrained(
        args.model, dtype=torch.bfloat16, attn_implementation=args.attn
    ).to(DEVICE)
    model.eval()
    ids = torch.randint(10, 1000, (args.batch, 128), device=DEVICE, generator=None)
    extra: dict[str, Any] = {}
    if args.sync_free:

        class Never(StoppingCriteria):
            def __call__(self, input_ids: Any, scores: Any, **kw: Any) -> Any:
                return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)

        extra["stopping_criteria"] = StoppingCriteriaList([Never()])

    def once() -> int:
        with torch.inference_mode():
            out = model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=args.tokens,
                min_new_tokens=args.tokens,
                do_sample=False,
                **extra,
            )
        return int(out[:, ids.shape[1] :].cpu().numel())

    once()
    once()
    rows = []
    hz = os.sysconf("SC_CLK_TCK")
    for _ in range(args.runs):
        clock_before = _sm_clock(handle)
        steal0, ru0 = _steal_jiffies(), resource.getrusage(resource.RUSAGE_SELF)
        cpu0, thread0, t0 = time.process_time(), time.thread_time(), time.perf_counter()
        tokens = once()
        wall = time.perf_counter() - t0
        thread_s, cpu_s = time.thread_time() - thread0, time.process_time() - cpu0
        steal1, ru1 = _steal_jiffies(), resource.getrusage(resource.RUSAGE_SELF)
        rows.append(
            {
                "tok_s": tokens / wall,
                "wall_s": wall,
                "main_thread_cpu_s": thread_s,
                "process_cpu_s": cpu_s,
                "steal_s": (steal1 - steal0) / hz,
                "involuntary_switches": ru1.ru_nivcsw - ru0.ru_nivcsw,
                "voluntary_switches": ru1.ru_nvcsw - ru0.ru_nvcsw,
                "sm_clock_mhz_before": clock_before,
                "sm_clock_mhz_after": _sm_clock(handle),
            }
        )
    rates = [r["tok_s"] for r in rows]
    busy = [r["main_thread_cpu_s"] / r["wall_s"] for r in rows]
    summary = {
        "args": vars(args),
        "torch": torch.__version__,
        "cpus": os.cpu_count(),
        "affinity": sorted(os.sched_getaffinity(0)),
        "median_tok_s": statistics.median(rates),
        "cv": statistics.stdev(rates) / statistics.mean(rates),
        "min_max_tok_s": [min(rates), max(rates)],
        "median_main_thread_busy": statistics.median(busy),
        # does a slow run come with less main-thread CPU per second (the host was taken away)?
        "corr_tok_s_vs_thread_busy": statistics.correlation(rates, busy),
        "runs": rows,
    }
    json.dump(summary, sys.stdout, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
