"""Keep only the per-repetition metrics of gated re-runs, as small test data for the gate.

    python ci/gpu/gate_data.py OUT.json --command "..." --machine "..." run000.json run001.json ...

Each report becomes one run: its start time, whether it ran beside a load (a file named
``loaded*.json``), its GPUs (names and UUIDs, which tell one machine from another), and per test
the values of every repetition of the gate's metrics, plus how many repetitions ran throttled.
tests/results/test_gate_real_data.py resamples them.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

METRICS = ("energy_per_output_token", "output_throughput")


def run_record(path: Path) -> dict[str, object]:
    data = json.loads(path.read_text())
    devices = (data["machine"].get("gpus") or {}).get("devices", [])
    results = {}
    for result in data["results"]:
        reps = result["repetitions"]
        results[result["test_id"]] = {
            **{m: [rep["metrics"].get(m) for rep in reps] for m in METRICS},
            "throttled": sum(1 for rep in reps if (rep.get("telemetry") or {}).get("throttled")),
        }
    return {
        "name": path.stem,
        "started_at": data["started_at"],
        "loaded": path.name.startswith("loaded"),
        "gpus": [d.get("name") for d in devices],
        "gpu_uuids": [d.get("uuid") for d in devices],
        "results": results,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("reports", nargs="+")
    parser.add_argument("--command", required=True)
    parser.add_argument("--machine", required=True)
    args = parser.parse_args()
    runs = [run_record(Path(p)) for p in args.reports]
    runs.sort(key=lambda r: str(r["started_at"]))
    out = {"command": args.command, "machine": args.machine, "metrics": METRICS, "runs": runs}
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
