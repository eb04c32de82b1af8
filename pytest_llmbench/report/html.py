"""The HTML report: one self-contained file (inline SVG and CSS, no scripts, nothing fetched).

Each backend gets its own section and plots; results of different backends are never pooled.
Every plot has a title, axes with units and the table of its numbers beside it; a backend has
the same colour in every plot of every report
(:func:`~pytest_llmbench.report.figures.backend_colour`). This module says what each plot shows
(:class:`~pytest_llmbench.report.figures.Plot`); :mod:`pytest_llmbench.report.draw` draws it.
Several reports add run-over-run trends; a report with a baseline comparison shows its verdicts.
Each energy window with a power trace (:mod:`pytest_llmbench.energy.trace`) gets a power-over-time
plot, a line per device; a window without one says why (energy unavailable, or no trace).
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import Any

from pytest_llmbench.report.draw import draw
from pytest_llmbench.report.figures import Marker, Plot, Series, backend_colour
from pytest_llmbench.report.json_report import atomic_write_text
from pytest_llmbench.report.pareto import FrontierPoint, pareto_frontier
from pytest_llmbench.report.runs import TREND_METRICS, trends
from pytest_llmbench.report.terminal import agreement_table, itl_unavailable, quality_lines
from pytest_llmbench.results import BenchmarkResult, EnergyReading, Report

_CSS = (
    "body{font-family:sans-serif;margin:1em}figure{display:flex;gap:1em;align-items:flex-start;"
    "margin:1em 0}figure>svg{flex:none}table{border-collapse:collapse;font-size:90%}"
    "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}"
    "th:first-child,td:first-child{text-align:left}"
    ".worse{background:#fdd}.better{background:#dfd}.swatch{display:inline-block;"
    "width:1em;height:1em;vertical-align:middle;margin-right:4px}.why{color:#555}"
)
_LATENCIES = (("ttft_s", "TTFT"), ("itl_s", "ITL"), ("e2e_latency_s", "E2E latency"))


def _num(value: float | None) -> str:
    return "unavailable" if value is None else f"{value:.4g}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _frontier_section(backend: str, results: Sequence[BenchmarkResult]) -> str:
    rows = []
    points = []
    for r in results:
        agg = r.aggregate()
        tok_s = r.throughput()["output_tok_s"]
        j_tok = agg.get("energy_per_output_token")
        rows.append([r.test_id, _num(tok_s), _num(j_tok)])
        if tok_s is not None and j_tok is not None:
            points.append(FrontierPoint(r.test_id, j_tok, tok_s))
    frontier = pareto_frontier(points)
    colour = backend_colour(backend)
    series = [
        Series(
            backend,
            [p.tok_per_s for p in points],
            [p.energy_j_per_token for p in points],
            colour=colour,
        ),
        Series(
            f"{backend} frontier",
            [p.tok_per_s for p in frontier],
            [p.energy_j_per_token for p in frontier],
            line=True,
            colour=colour,
        ),
    ]
    on_frontier = {p.label for p in frontier}
    for row in rows:
        row.append("yes" if row[0] in on_frontier else "no")
    svg = draw(
        Plot(
            f"{backend}: energy vs throughput",
            "output throughput (tok/s)",
            "energy (J/output token)",
            series if points else [],
            empty=_no_frontier_reason(results),
        )
    )
    table = _table(["test", "output tok/s", "J/output token", "on frontier"], rows)
    return f"<figure>{svg}{table}</figure>"


def _no_frontier_reason(results: Sequence[BenchmarkResult]) -> str:
    """Why no benchmark of a backend has a point of energy against throughput."""
    reasons = {r.energy_unavailable_reason for r in results}
    if results and None not in reasons:
        return "energy unavailable: " + "; ".join(sorted(str(x) for x in reasons))
    if not any(r.throughput()["output_tok_s"] for r in results):
        return "no output throughput: no benchmark produced output tokens"
    return "no benchmark has both an output throughput and a measured energy"


def _cdf(result: BenchmarkResult, field_name: str) -> tuple[list[float], list[float], str]:
    """Pooled CDF of one latency in ms: exact from the samples where the report kept them,
    else at the fixed histogram edges (see pytest_llmbench.latency)."""
    if all(rep.samples_kept for rep in result.repetitions):
        xs = sorted(v * 1000 for rep in result.repetitions for v in rep.latencies()[field_name])
        n = len(xs)
        return xs, [(i + 1) / n for i in range(n)], "every sample"
    edges_s, fractions = result.latency_summaries()[field_name].histogram.cdf()
    return [x * 1000 for x in edges_s], fractions, "histogram, 10 bins per decade"


def _client_note(result: BenchmarkResult) -> str:
    """A warning above a result whose load generator was the bottleneck (loadgen)."""
    why = result.client_bound
    if why is None:
        return ""
    return (
        f'<p class="worse">{escape(result.test_id)}: <strong>client-bound</strong> '
        f"({escape(why)}). "
        "These numbers describe the load generator, not the server; a gate calls its gated "
        "metrics unmeasured.</p>"
    )


def _search_section(result: BenchmarkResult) -> str:
    """A peak-goodput search: goodput and attainment against the load, the points' table."""
    found = result.search
    if not found:
        return ""
    points = sorted(found.get("points") or [], key=lambda p: p.get("load", 0))
    unit = "request rate (req/s)" if found.get("over") == "rate" else "concurrency (in flight)"
    colour = backend_colour(result.backend)
    svg = draw(Plot(
        f"{result.test_id}: goodput by load",
        unit,
        "goodput (good req/s)",
        [Series("goodput", [p["load"] for p in points], [p["goodput"] for p in points],
                line=True, colour=colour)] if points else [],
    ))  # fmt: skip
    rows = [
        [
            f"{p['load']:g}",
            f"{p['attainment']:.3f}",
            "meets" if p["meets"] else "fails",
            _num(p["goodput"]),
            _num(p.get("energy_per_good_request")),
            str(p["repetitions"]),
        ]
        for p in points
    ]
    table = _table(["load", "attainment", "SLO", "goodput req/s", "J / good request", "reps"], rows)
    return f"<p>{escape(str(found.get('outcome')))}</p><figure>{svg}{table}</figure>"


def _latency_section(result: BenchmarkResult) -> str:
    parts = []
    summaries = result.latency_summaries()
    itl_why = next((why for why, _ in itl_unavailable([result])), None)
    for field_name, label in _LATENCIES:
        xs, ys, source = _cdf(result, field_name)
        why = "no samples"
        if field_name == "itl_s" and itl_why is not None:
            why = f"ITL unavailable: {itl_why}"
        svg = draw(
            Plot(
                f"{result.test_id}: {label} CDF ({source})",
                f"{label} (ms)",
                "fraction of samples",
                [Series(label, xs, ys, line=True, colour=backend_colour(result.backend))]
                if xs
                else [],
                empty=why,
            )
        )
        stats = summaries[field_name].to_dict()
        rows = [["count", str(stats["count"])]]
        rows += [
            [k, _num(None if stats[k] is None else stats[k] * 1000)]
            for k in ("mean", "min", "p50", "p90", "p99", "max")
        ]
        parts.append(f"<figure>{svg}{_table(['statistic', f'{label} (ms)'], rows)}</figure>")
    return "".join(parts)


def _no_trace_reason(energy: EnergyReading) -> str | None:
    """Why a window that measured energy has no power to plot; None when it has some."""
    if any(energy.power_trace.values()):
        return None
    if not energy.power_trace:
        return "not kept (a report from before power traces, or a meter that keeps none)"
    return _empty_trace_reason(energy.method)


def _empty_trace_reason(method: str) -> str:
    """Why a meter that keeps traces gave a device no point."""
    if method == "nvml-power":
        return "no power samples in the window"
    return "fewer than two counter updates in the window (the first one's energy began before it)"


# How each built-in meter makes a trace's points (pytest_llmbench.energy.trace).
_TRACE_POINTS_ARE = {
    "nvml-power": "mean of consecutive power samples",
    "nvml-counter": "energy between counter updates / their interval",
    "rapl": "energy between counter updates / their interval",
}


def _device_label(energy: EnergyReading, uuid: str) -> str:
    for device in energy.devices:
        if device.uuid == uuid:
            return f"{device.index}: {device.name}"
    return uuid


def _power_figure(result: BenchmarkResult, repetition: int, energy: EnergyReading) -> str:
    """One window's power over time, a line per device (never summed), the numbers beside."""
    how = _TRACE_POINTS_ARE.get(energy.method, "as the meter kept them")
    series, rows = [], []
    for d, (uuid, points) in enumerate(sorted(energy.power_trace.items())):
        label = _device_label(energy, uuid)
        watts = [w for _, w in points]
        device_j = energy.per_device_j.get(uuid)
        mean_w = (
            device_j / energy.window_s if device_j is not None and energy.window_s > 0 else None
        )
        rows.append(
            [
                str(repetition),
                f"{label} ({uuid})" if label != uuid else uuid,
                str(len(points)),
                "-" if mean_w is None else _num(mean_w),
                _num(min(watts)) if watts else "-",
                _num(max(watts)) if watts else "-",
                _num(energy.window_s),
                how if points else f"no trace: {_empty_trace_reason(energy.method)}",
            ]
        )
        if points:
            series.append(
                Series(
                    label,
                    [t for t, _ in points],
                    watts,
                    line=True,
                    colour=backend_colour(result.backend),
                    dashed=d,
                )
            )
    svg = draw(
        Plot(
            f"{result.test_id}: power, repetition {repetition} ({energy.method})",
            "time since the window opened (s)",
            "power (W)",
            series,
        )
    )
    header = [
        "repetition",
        "device",
        "points",
        "mean, energy / window (W)",
        "min (W)",
        "max (W)",
        "window (s)",
        "points are",
    ]
    return f"<figure>{svg}{_table(header, rows)}</figure>"


def _power_section(result: BenchmarkResult) -> str:
    """Power over each energy window: a plot per window with a trace; the other windows in one
    table saying why not (energy unavailable, or no trace)."""
    parts = [f"<h4>{escape(result.test_id)}: power over each energy window</h4>"]
    unplotted = []
    unavailable: dict[tuple[str, str], list[int]] = {}  # (method, reason) -> repetitions
    for i, rep in enumerate(result.repetitions, start=1):
        energy = rep.energy
        if not isinstance(energy, EnergyReading):
            unavailable.setdefault((energy.method, energy.reason), []).append(i)
            unplotted.append([str(i), energy.method, _num(rep.window_s), "-", "unavailable"])
            continue
        why = _no_trace_reason(energy)
        if why is None:
            parts.append(_power_figure(result, i, energy))
        else:
            unplotted.append(
                [
                    str(i),
                    energy.method,
                    _num(energy.window_s),
                    _num(energy.average_power_w),
                    f"no power trace: {why}",
                ]
            )
    # The reason a meter could not read is the same in every window: said once, not per row.
    for (method, reason), reps in unavailable.items():
        which = "every repetition" if len(reps) == len(result.repetitions) else _repetitions(reps)
        parts.append(
            f'<p class="why">Energy in {which} (method {escape(method)}): '
            f"{escape(f'unavailable: {reason}')}</p>"
        )
    if unplotted:
        header = ["repetition", "method", "window (s)", "average power (W)", "power over time"]
        parts.append(_table(header, unplotted))
    return "".join(parts)


def _repetitions(numbers: Sequence[int]) -> str:
    return ("repetition " if len(numbers) == 1 else "repetitions ") + ", ".join(map(str, numbers))


def _trend_section(reports: Sequence[Report]) -> str:
    """Per backend and headline metric: each benchmark's value run after run (oldest first)."""
    parts = ["<h2>Run over run</h2>"]
    runs = list(range(1, len(reports) + 1))
    for backend, rows in trends(reports).items():
        parts.append(f"<h3>{_swatch(backend)}Backend {escape(backend)}</h3>")
        for metric, label, _ in TREND_METRICS:
            mine = [r for r in rows if r.metric == metric]
            series = []
            for i, row in enumerate(mine):
                points = [(n, v) for n, v in zip(runs, row.values, strict=True) if v is not None]
                series.append(
                    Series(
                        row.test_id.split("::", 1)[-1],
                        [float(n) for n, _ in points],
                        [v for _, v in points],
                        line=True,
                        colour=backend_colour(backend),
                        dashed=i,
                    )
                )
            markers = [
                Marker(i + 0.5, f"step: {r.test_id.split('::', 1)[-1]} {change * 100:+.1f}%")
                for r in mine
                for i, change in r.steps
            ]
            svg = draw(
                Plot(
                    f"{backend}: {label} run over run",
                    "run (oldest first)",
                    label,
                    series if any(s.xs for s in series) else [],
                    empty=_no_trend_reason(reports, backend, metric, label),
                    integer_x=True,
                    markers=markers,
                )
            )
            table = _table(
                ["benchmark", *(f"run {n}" for n in runs)],
                [[r.test_id.split("::", 1)[-1], *(_num(v) for v in r.values)] for r in mine],
            )
            steps = [
                f"{escape(r.test_id.split('::', 1)[-1])}: {change * 100:+.1f}% from run {i + 1} on"
                for r in mine
                for i, change in r.steps
            ]
            note = f"<p>steps (as the gate finds them): {'; '.join(steps)}</p>" if steps else ""
            parts.append(f"<figure>{svg}{table}{note}</figure>")
    return "".join(parts)


def _no_trend_reason(reports: Sequence[Report], backend: str, metric: str, label: str) -> str:
    """Why no run has a point of ``metric``: for energy, the meters' reasons."""
    reasons = {
        r.energy_unavailable_reason
        for report in reports
        for r in report.results
        if r.backend == backend and r.energy_unavailable_reason
    }
    if metric.startswith("energy") and reasons:
        return f"no run has {label}: energy unavailable: {'; '.join(sorted(map(str, reasons)))}"
    return f"no run has {label}"


def _quality_section(results: Sequence[BenchmarkResult]) -> str:
    """A backend's perplexity on the shipped reference text, as the terminal says it: once per
    distinct value (one engine, one number), or why it is unavailable."""
    lines = quality_lines(results)
    if not lines:
        return ""
    items = "".join(f"<li>{escape(line.removeprefix('quality: '))}</li>" for line in lines)
    return f"<h4>Quality</h4><ul>{items}</ul>"


def _agreement_section(entries: Sequence[dict[str, Any]]) -> str:
    """Token agreement between pairs of backends of the run: a comparison of two engines on the
    same weights and greedy probe, one row per pair (never an aggregate)."""
    if not entries:
        return ""
    headers, rows, notes, probe = agreement_table(entries)
    why = "".join(f'<p class="why">{escape(note)}</p>' for note in notes)
    return (
        f"<h3>Agreement between backends (greedy probe {escape(str(probe))}; pairs, not "
        f"pooled)</h3>{_table(headers, rows)}{why}"
    )


def _comparison_section(comparison: dict[str, object]) -> str:
    """The gate's verdicts against the baseline: change, noise band and verdict per metric."""
    rows = comparison.get("rows")
    if not isinstance(rows, list):
        return ""
    header = ["test", "backend", "metric", "baseline", "current", "change", "band", "verdict"]
    body = []
    for row in rows:
        if not isinstance(row, dict):
            continue
        relative = row.get("relative")
        change = row.get("change")
        shown = f"{change:+.2%}" if relative and isinstance(change, float) else _num(_float(change))
        band = _float(row.get("band"))
        band_text = "-" if band is None else (f"±{band:.2%}" if relative else f"±{band:.4g}")
        if relative and band is not None and band >= 1.0 and _decrease_is_worse(row):
            band_text = "beyond -100%"  # as the terminal says: no decrease can leave it
        verdict = str(row.get("verdict", ""))
        cells = [
            str(row.get("test_id", "")).split("::", 1)[-1],
            str(row.get("backend", "")),
            str(row.get("metric", "")),
            _num(_float(row.get("baseline"))),
            _num(_float(row.get("current"))),
            shown,
            band_text,
            verdict,
        ]
        css = _VERDICT_CLASS.get(verdict, "")
        body.append(f"<tr{css}>" + "".join(f"<td>{escape(c)}</td>" for c in cells) + "</tr>")
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    baseline = escape(str(comparison.get("baseline", "baseline")))
    runs = comparison.get("history_runs")
    verdict = "FAILED" if comparison.get("failed") else "passed"
    notes = comparison.get("notes")
    listed = "".join(f"<li>{escape(str(n))}</li>" for n in notes) if isinstance(notes, list) else ""
    return (
        f"<h3>Comparison with {baseline} ({runs} runs): {verdict}</h3>"
        f"<table><tr>{head}</tr>{''.join(body)}</table>" + (f"<ul>{listed}</ul>" if listed else "")
    )


_VERDICT_CLASS = {
    "regression": ' class="worse"',
    "unmeasured": ' class="worse"',
    "worse": ' class="worse"',
    "improved": ' class="better"',
    "better": ' class="better"',
}


def _decrease_is_worse(row: dict[str, object]) -> bool:
    """Whether a decrease of this comparison row's metric is its regression."""
    from pytest_llmbench.metrics import METRICS

    rule = row.get("rule")
    if isinstance(rule, str) and ":" in rule:
        return rule.split(":", 1)[1].startswith("-")
    metric = METRICS.get(str(row.get("metric")))
    return metric is not None and metric.worse_sign < 0


def _float(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _swatch(backend: str) -> str:
    return f'<span class="swatch" style="background:{backend_colour(backend)}"></span>'


def render(reports: Sequence[Report]) -> str:
    """The whole page for ``reports`` (oldest first); several add run-over-run trends."""
    body = []
    if len(reports) > 1:
        body.append(_trend_section(reports))
    for n, report in enumerate(reports):
        body.append(f"<h2>Run {n + 1}: started {escape(report.started_at)}</h2>")
        if report.comparison is not None:
            body.append(_comparison_section(report.comparison))
        body.append(_agreement_section(report.agreement))
        for backend in report.backends:
            results = [r for r in report.results if r.backend == backend]
            body.append(f"<h3>{_swatch(backend)}Backend {escape(backend)}</h3>")
            body.append(_quality_section(results))
            body.append(_frontier_section(backend, results))
            for result in results:
                body.append(_client_note(result))
                body.append(_search_section(result))
                body.append(_latency_section(result))
                body.append(_power_section(result))
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"/>'
        f"<title>pytest-llmbench report</title><style>{_CSS}</style></head><body>"
        f"<h1>pytest-llmbench report</h1>{''.join(body)}</body></html>"
    )


def write_html(path: str | Path, reports: Sequence[Report]) -> None:
    """Write the page atomically: a reader sees the old file or the new one, never half."""
    atomic_write_text(path, render(reports))
