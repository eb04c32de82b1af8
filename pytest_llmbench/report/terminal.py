"""The terminal summary: one table per backend, side by side, never pooled."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tabulate import tabulate

from pytest_llmbench.results import BenchmarkResult, Report


def _fmt(value: float | None, scale: float = 1.0, digits: int = 1) -> str:
    return "-" if value is None else f"{value * scale:,.{digits}f}"


def _energy(result: BenchmarkResult, agg: dict[str, float | None]) -> str:
    reason = result.energy_unavailable_reason
    if reason is not None:
        return "unavailable"
    value = agg.get("energy_per_output_token")
    text = "-" if value is None else f"{value:.4g}"
    if result.short_energy_windows:
        text += " (short window)"
    return text


def _has_slo(result: BenchmarkResult) -> bool:
    return any(rep.good_requests is not None for rep in result.repetitions)


def backend_table(results: Sequence[BenchmarkResult]) -> str:
    goodput = any(_has_slo(r) for r in results)  # the column only where an SLO was set
    rows = []
    for r in results:
        agg = r.aggregate()
        rows.append(
            [
                r.test_id.split("::", 1)[-1],
                workload_label(r.workload),
                len(r.repetitions),
                _fmt(agg.get("output_throughput")),
                _fmt(agg.get("request_throughput"), digits=2),
                *([_fmt(agg.get("goodput"), digits=2)] if goodput else []),
                _fmt(agg.get("ttft_s_p50"), 1000),
                _fmt(agg.get("itl_s_p50"), 1000, digits=2),
                _fmt(agg.get("e2e_latency_s_p50"), 1000),
                _fmt(agg.get("e2e_latency_s_p99"), 1000),
                _fmt(agg.get("error_rate"), 100),
                _energy(r, agg),
            ]
        )
    headers = [
        "benchmark",
        "workload",
        "reps",
        "out tok/s",
        "req/s",
        *(["goodput req/s"] if goodput else []),
        "TTFT p50 ms",
        "ITL p50 ms",
        "E2E p50 ms",
        "E2E p99 ms",
        "err %",
        "J/out tok",
    ]
    return tabulate(rows, headers=headers, tablefmt="simple", disable_numparse=True)


# Whose version a backend reports: the package behind it (openai: the server's software and
# version, as backends/openai/identity.py recognises them).
VERSION_OF = {
    "pytorch": "transformers",
    "vllm": "vllm",
    "sglang": "sglang",
    "tensorrt": "tensorrt_llm",
    "openai": "server",
}


def backend_label(backend: str, version: str) -> str:
    """``pytorch (transformers 5.19.0)``: the version named by the package it belongs to."""
    return f"{backend} ({VERSION_OF.get(backend, 'version')} {version})"


def model_text(result: BenchmarkResult) -> str:
    """``org/name@v1 (commit 1a2b3c4d5e6f, /cache/.../snapshots/1a2b...)`` for a Hugging Face
    model: the id, the revision asked for, the commit measured and the files loaded; else the
    name alone."""
    source = result.model_source or {}
    commit = source.get("commit")
    if not commit:
        return result.model
    revision, path = source.get("revision"), source.get("path")
    return f"{result.model}@{revision} (commit {str(commit)[:12]}, {path})"


def render_summary(results: Sequence[BenchmarkResult]) -> list[str]:
    """Lines of the summary; each backend gets its own table and header."""
    lines: list[str] = []
    by_backend: dict[str, list[BenchmarkResult]] = {}
    for r in results:
        by_backend.setdefault(r.backend, []).append(r)
    for backend, group in by_backend.items():
        first = group[0]
        lines.append(
            f"backend {backend_label(backend, first.backend_version)} on {first.device}, "
            f"model {model_text(first)}"
        )
        lines.append(backend_table(group))
        reasons = {r.energy_unavailable_reason for r in group} - {None}
        for reason in sorted(r for r in reasons if r):
            lines.append(f"energy: unavailable ({reason})")
        lines += quality_lines(group)
        lines += [f"ITL: unavailable for {names} ({why})" for why, names in itl_unavailable(group)]
        lines += _speculative_lines(group)
        lines += _conversation_lines(group)
        lines += _search_lines(group)
        lines += _server_lines(group)
        lines += _drift_lines(group)
        lines.append("")
    return lines


def quality_lines(results: Sequence[BenchmarkResult]) -> list[str]:
    """Perplexity of the reference text, once per distinct value (one engine, one number)."""
    seen: dict[str, None] = {}
    for r in results:
        q = r.quality
        if not q:
            continue
        value = q.get("perplexity")
        if isinstance(value, (int, float)):
            text = (
                f"quality: perplexity {value:.4g} on {q.get('text')} "
                f"({q.get('perplexity_tokens')} tokens, {q.get('dtype')})"
            )
        else:
            text = f"quality: perplexity unavailable ({q.get('unavailable')})"
        seen.setdefault(text)
    return list(seen)


def itl_unavailable(results: Sequence[BenchmarkResult]) -> list[tuple[str, str]]:
    """(reason, benchmarks) for results that produced several tokens per request but no
    inter-token latency: the backend's reason where it gave one (``engine_details``)."""
    by_reason: dict[str, list[str]] = {}
    for r in results:
        if r.aggregate().get("itl_s_p50") is not None:
            continue
        requests = sum(rep.requests for rep in r.repetitions)
        tokens = sum(rep.output_tokens for rep in r.repetitions)
        if not requests or tokens <= requests:  # one token per request: no gap to time
            continue
        why = str(
            r.engine_details.get("itl_unavailable")
            or "no two output tokens of a request were seen at different times"
        )
        by_reason.setdefault(why, []).append(r.test_id.split("::", 1)[-1])
    return [(why, ", ".join(names)) for why, names in by_reason.items()]


def _speculative_lines(results: Sequence[BenchmarkResult]) -> list[str]:
    out = []
    for r in results:
        spec = r.speculative
        if not spec:
            continue
        name = r.test_id.split("::", 1)[-1]
        rate = spec.get("acceptance_rate")
        if rate is None:
            out.append(f"speculative ({spec.get('method')}): {name}: nothing was drafted")
            continue
        out.append(
            f"speculative ({spec.get('method')}): {name}: acceptance {rate * 100:.1f}% "
            f"({spec.get('accepted_tokens')} of {spec.get('draft_tokens')} draft tokens), "
            f"mean accepted length {spec.get('mean_accepted_length'):.2f}, "
            f"{spec.get('draft_tokens_per_step'):.2f} draft tokens per step"
        )
    return out


def _server_lines(results: Sequence[BenchmarkResult]) -> list[str]:
    """The server's own account of each result's windows (its /metrics), beside ours."""
    out = []
    reasons: dict[str, None] = {}
    for r in results:
        sections = [rep.server for rep in r.repetitions if rep.server]
        if not sections:
            continue
        good = [s for s in sections if s.get("available")]
        if not good:
            reasons.setdefault(str(sections[0].get("reason")))
            continue
        parts = []
        for key, label in (
            ("queue_time_s", "queue"),
            ("prefill_time_s", "prefill"),
            ("decode_time_s", "decode"),
        ):
            stats = [s[key] for s in good if isinstance(s.get(key), dict) and s[key]["count"]]
            count = sum(x["count"] for x in stats)
            if count:
                mean = sum(x["count"] * (x["mean"] or 0.0) for x in stats) / count
                parts.append(f"{label} mean {mean * 1000:.2f} ms")
        peaks = [
            s["kv_cache_usage"]["peak"] for s in good if isinstance(s.get("kv_cache_usage"), dict)
        ]
        if peaks:
            parts.append(f"KV cache peak {max(peaks) * 100:.1f}%")
        preempted = [s["preemptions"] for s in good if isinstance(s.get("preemptions"), float)]
        if preempted:
            parts.append(f"preemptions {sum(preempted):g}")
        hits = [
            s["prefix_cache_hit_rate"] for s in good if s.get("prefix_cache_hit_rate") is not None
        ]
        if hits:
            parts.append(f"prefix cache hits {sum(hits) / len(hits) * 100:.1f}%")
        name = r.test_id.split("::", 1)[-1]
        out.append(f"server ({good[0].get('kind')} /metrics), {name}: " + (", ".join(parts) or "-"))
    out += [f"server metrics: unavailable ({reason})" for reason in reasons]
    return out


def _search_lines(results: Sequence[BenchmarkResult]) -> list[str]:
    """A peak-goodput search: its outcome, then every load tried in order."""
    out = []
    for r in results:
        found = r.search
        if not found:
            continue
        name = r.test_id.split("::", 1)[-1]
        out.append(f"peak goodput, {name}: {found.get('outcome')}")
        unit = "req/s" if found.get("over") == "rate" else "in flight"
        for point in found.get("points") or []:
            low, high = point.get("attainment_interval") or (None, None)
            verdict = "meets" if point.get("meets") else "fails"
            how = " (by the estimate)" if point.get("decided_by") == "estimate" else ""
            how += " (client-bound)" if point.get("client_bound") else ""
            out.append(
                f"  {point.get('load'):g} {unit}: attainment {point.get('attainment'):.3f} "
                f"[{low:.3f}, {high:.3f}] {verdict}{how}, goodput "
                f"{point.get('goodput'):.4g} req/s ({point.get('repetitions')} reps)"
            )
    return out


def _conversation_lines(results: Sequence[BenchmarkResult]) -> list[str]:
    """Per-turn latencies of free-running sessions (lockstep turns have a row each)."""
    out = []
    for r in results:
        section = r.conversation or {}
        if section.get("mode") != "sessions":
            continue
        name = r.test_id.split("::", 1)[-1]
        out.append(f"per turn, {name} (joules are not split by turn: sessions overlap)")
        for row in section.get("per_turn") or []:
            prompt = row.get("input_tokens_mean")
            out.append(
                f"  turn {row.get('turn')}: {row.get('requests')} requests, "
                f"{row.get('errors')} errors, prompt "
                f"{'-' if prompt is None else f'{prompt:.1f}'} tok, "
                f"TTFT p50 {_fmt(row.get('ttft_s_p50'), 1000)} ms, "
                f"E2E p50 {_fmt(row.get('e2e_latency_s_p50'), 1000)} ms"
            )
    return out


def render_agreement(entries: Sequence[dict[str, Any]]) -> list[str]:
    """The agreement section: one row per pair of backends. A comparison of two engines on the
    same weights and the same greedy probe, not an aggregate of them."""
    if not entries:
        return []
    headers, rows, notes, probe = agreement_table(entries)
    return [
        f"agreement between backends (comparison of pairs, greedy probe {probe}; not pooled)",
        tabulate(rows, headers=headers, tablefmt="simple", disable_numparse=True),
        *notes,
        "",
    ]


def agreement_table(
    entries: Sequence[dict[str, Any]],
) -> tuple[list[str], list[list[str]], list[str], str]:
    """(headers, one row per pair, notes saying why a pair has no number, the probe's name):
    what the terminal and the HTML page show of the report's ``agreement`` section."""
    from pytest_llmbench.quality.agreement import pair_name

    rows = []
    notes = []
    for e in entries:
        value = e.get("token_agreement")
        dtypes = e.get("dtypes") or {}
        div = e.get("first_divergence")
        if value is None:
            where = "-"
            notes.append(f"{pair_name(e)}: unavailable ({e.get('unavailable')})")
        elif div is None:
            where = "none"
        else:
            a, b = div["tokens"]
            where = f"prompt {div['prompt']}, token {div['position']}: {a} vs {b}"
        rows.append(
            [
                " vs ".join(e["backends"]),
                " / ".join(str(dtypes.get(b, "?")) for b in e["backends"]),
                "-" if value is None else f"{value:.3f}",
                where,
            ]
        )
    headers = ["backends compared", "dtypes", "token agreement", "first divergence"]
    return headers, rows, notes, str(entries[0].get("probe", "")) if entries else ""


def _drift_lines(results: Sequence[BenchmarkResult]) -> list[str]:
    """Warnings about what makes a run unlike the next or not a measurement of the engine:
    throttled GPUs, a client-bound load generator, unsettled warm-up."""
    out = []
    for r in results:
        name = r.test_id.split("::", 1)[-1]
        if r.throttled_repetitions:
            reasons = sorted(
                {
                    reason
                    for rep in r.repetitions
                    if rep.throttled and rep.telemetry
                    for gpu in rep.telemetry.get("gpus", [])
                    for reason in gpu.get("clock_event_reasons", [])
                    if reason not in ("gpu_idle", "applications_clocks_setting")
                }
            )
            why = f" ({', '.join(reasons)})" if reasons else ""
            out.append(
                f"throttled: {name}: {r.throttled_repetitions} of {len(r.repetitions)} "
                f"repetitions ran with the GPU held back{why}"
            )
        if r.client_bound is not None:
            out.append(
                f"client-bound: {name}: {r.client_bound}; the numbers describe the load "
                "generator, not the server (--llm-client-processes spreads it over more cores)"
            )
        warmup = r.warmup or {}
        if warmup.get("passes") and not warmup.get("settled", True):
            out.append(
                f"warm-up: {name}: throughput had not settled after {warmup.get('passes')} "
                "passes (runner.warmup_max)"
            )
    return out


def workload_label(workload: object) -> str:
    """``PROMPTSxINPUT->OUTPUT``, or ``N conv x T turns`` / ``N conv, turn t/T`` for
    conversations; ``?`` for a part a (hand-edited) report lacks."""
    w = workload if isinstance(workload, dict) else {}
    if "num_conversations" in w:  # multi-turn (workload/conversations.py)
        head = f"{w.get('num_conversations', '?')} conv"
        if "turn" in w:
            return f"{head}, turn {w['turn']}/{w.get('turns', '?')}"
        return f"{head} x {w.get('turns', '?')} turns"
    return (
        f"{w.get('num_prompts', '?')}x{w.get('input_tokens', '?')}->{w.get('output_tokens', '?')}"
    )


def render_runs(reports: Sequence[Report]) -> list[str]:
    """Several runs side by side: per backend, one row per benchmark and metric, one column per
    run (``-`` where a run lacks it); backends are never pooled."""
    from pytest_llmbench.report.runs import trends

    lines: list[str] = []
    for backend, rows in trends(reports).items():
        versions = sorted(
            {r.backend_version for rep in reports for r in rep.results if r.backend == backend}
        )
        lines.append(f"backend {backend} ({', '.join(versions)}), {len(reports)} runs")
        table = [
            [row.test_id.split("::", 1)[-1], row.label, *(_num(v) for v in row.values)]
            for row in rows
        ]
        headers = ["benchmark", "metric", *(f"run {n}" for n in range(1, len(reports) + 1))]
        lines.append(tabulate(table, headers=headers, tablefmt="simple", disable_numparse=True))
        lines.append("")
    return lines


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"
