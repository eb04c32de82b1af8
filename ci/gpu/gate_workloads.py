"""How steady each candidate gate workload is: repetition and run-to-run spread of its reports.

    python ci/gpu/gate_workloads.py DIR [DIR ...]          # a markdown table, one row per DIR
    python ci/gpu/gate_workloads.py --winner DIR [DIR ...]  # prints the steadiest DIR's name

Each DIR holds the JSON reports of one candidate (one file per pytest run, ``run*.json``; files
named ``loaded*`` are runs beside a GPU load and are left out). For each of the gate's two metrics
the table gives the mean, the pooled within-run coefficient of variation of one repetition, and
the coefficient of variation of run means between runs. The winner is the candidate whose worst
coefficient (either metric, within or between) is smallest: the gate's band grows with both.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path

METRICS = ("output_throughput", "energy_per_output_token")


def run_values(path: Path) -> dict[str, list[float]]:
    """Per metric, the values of every repetition of every result in one report."""
    data = json.loads(path.read_text())
    out: dict[str, list[float]] = {m: [] for m in METRICS}
    for result in data.get("results", []):
        for rep in result.get("repetitions", []):
            for m in METRICS:
                value = (rep.get("metrics") or {}).get(m)
                if isinstance(value, (int, float)) and math.isfinite(value):
                    out[m].append(float(value))
    return out


def spread(runs: list[list[float]]) -> tuple[float, float, float]:
    """(mean of run means, within-run CV of one repetition, between-run CV of run means)."""
    runs = [r for r in runs if r]
    if not runs:
        return math.nan, math.nan, math.nan
    means = [statistics.fmean(r) for r in runs]
    grand = statistics.fmean(means)
    squares = sum((v - m) ** 2 for r, m in zip(runs, means, strict=True) for v in r)
    dof = sum(len(r) - 1 for r in runs)
    within = math.sqrt(squares / dof) / grand if dof > 0 and grand else math.nan
    between = statistics.stdev(means) / grand if len(means) > 1 and grand else math.nan
    return grand, within, between


def candidate(folder: Path) -> dict[str, object]:
    files = sorted(p for p in folder.glob("*.json") if not p.name.startswith("loaded"))
    per_metric = {m: [run_values(p)[m] for p in files] for m in METRICS}
    row: dict[str, object] = {"name": folder.name, "runs": len(files)}
    worst = 0.0
    for m in METRICS:
        mean, within, between = spread(per_metric[m])
        row[m] = (mean, within, between)
        worst = max([worst, *(x for x in (within, between) if math.isfinite(x))])
    row["worst"] = worst if files else math.inf
    return row


def table(rows: list[dict[str, object]]) -> str:
    head = (
        "| candidate | runs | tok/s | rep CV | run CV | J/token | rep CV | run CV |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|"
    )
    lines = [head]
    for row in rows:
        t, e = row["output_throughput"], row["energy_per_output_token"]
        assert isinstance(t, tuple) and isinstance(e, tuple)
        lines.append(
            f"| {row['name']} | {row['runs']} | {t[0]:,.0f} | {_pct(t[1])} | {_pct(t[2])} "
            f"| {e[0]:.5f} | {_pct(e[1])} | {_pct(e[2])} |"
        )
    return "\n".join(lines)


def _pct(value: float) -> str:
    return "-" if not math.isfinite(value) else f"{value * 100:.2f}%"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--winner", action="store_true", help="print only the steadiest name")
    args = parser.parse_args()
    rows = [candidate(f) for f in args.folders if f.is_dir()]
    if args.winner:
        best = min(rows, key=lambda r: float(r["worst"]))  # type: ignore[arg-type]
        print(best["name"])
    else:
        print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
