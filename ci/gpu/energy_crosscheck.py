"""NVML energy counter vs NVML power sampling over the same windows, on the pytorch backend.

Both meters run at once around the same work, so their joules must agree; the pytorch backend
runs the 1.1B reference shape (128 prompt tokens, 128 forced output tokens) at each batch size for
at least ``--window`` seconds per window. Run on a CUDA machine from the checkout root, after
``pip install -e ".[dev]"``:

    python ci/gpu/energy_crosscheck.py --model DIR --out out/energy.json
"""

from __future__ import annotations

import argparse
import json
import time

from pytest_llmbench import compat
from pytest_llmbench.backends.base import BackendSpec
from pytest_llmbench.backends.pytorch.backend import PytorchBackend
from pytest_llmbench.config.load import parse_override, resolve_config
from pytest_llmbench.energy.base import EnergyReading
from pytest_llmbench.energy.idle import establish_idle
from pytest_llmbench.energy.select import select_meter
from pytest_llmbench.workload.prompts import Workload, build_requests
from pytest_llmbench.workload.tokenizer import load_tokenizer


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True)
    parser.add_argument("--preset", default="pytorch-compatible")
    parser.add_argument("--batches", default="1,64")
    parser.add_argument("--window", type=float, default=10.0, help="seconds per window (minimum)")
    parser.add_argument("--windows", type=int, default=2)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    counter, counter_note = select_meter("nvml", [0])
    power, power_note = select_meter("nvml-power", [0], sample_interval_s=0.01)
    idle = establish_idle(counter, duration_s=10.0)  # before the model is loaded
    power.idle = counter.idle  # type: ignore[attr-defined]  # same GPU, same baseline
    rows: list[dict[str, object]] = []
    tokenizer = load_tokenizer(args.model)
    for batch in (int(b) for b in args.batches.split(",")):
        overrides = [f"batching.batch_size={batch}", "max_output_tokens=128"]
        config = resolve_config(
            preset=args.preset, overrides=[parse_override(o) for o in overrides]
        )
        spec = BackendSpec(args.model, config, compat.translate(config, "pytorch"), "cuda")
        backend = PytorchBackend(spec)
        backend.start()
        workload = Workload("crosscheck", batch, 128, 128)
        requests = build_requests(workload, tokenizer, tokenizer.vocab_ids())
        backend.generate(requests)  # warm-up (compilation for static caches)
        for _ in range(args.windows):
            w_counter, w_power = counter.start(), power.start()
            t0, passes = time.perf_counter(), 0
            while time.perf_counter() - t0 < args.window:
                completions = backend.generate(requests)
                passes += 1
            r_power, r_counter = w_power.stop(), w_counter.stop()
            assert isinstance(r_counter, EnergyReading) and isinstance(r_power, EnergyReading)
            tokens = passes * sum(c.output_tokens for c in completions)
            rows.append(
                {
                    "preset": args.preset,
                    "batch": batch,
                    "passes": passes,
                    "output_tokens": tokens,
                    "window_s": round(r_counter.window_s, 3),
                    "output_tok_s": round(tokens / r_counter.window_s, 1),
                    "counter_j": round(r_counter.energy_j, 1),
                    "counter_updates": r_counter.updates,
                    "sampling_j": round(r_power.energy_j, 1),
                    "power_samples": r_power.updates,
                    "sampling_vs_counter_pct": round(
                        100 * (r_power.energy_j / r_counter.energy_j - 1), 2
                    ),
                    "idle_w": r_counter.idle_power_w,
                    "avg_w": round(r_counter.average_power_w, 1),
                    "j_per_token_total": round(r_counter.energy_j / tokens, 5),
                    "j_per_token_dynamic": None
                    if r_counter.dynamic_energy_j is None
                    else round(r_counter.dynamic_energy_j / tokens, 5),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
        backend.close()
    with open(args.out, "w") as f:
        json.dump(
            {"counter": counter_note, "power": power_note, "idle": str(idle), "rows": rows},
            f,
            indent=2,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
