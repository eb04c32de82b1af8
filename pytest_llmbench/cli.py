"""``llmbench``: compare, merge, save and show reports outside pytest, with the plugin's rules.

Exit status: 0 fine; 11 (``gate.EXIT_REGRESSION``) a gated metric regressed; 12
(``gate.EXIT_UNMEASURED``) a gated metric could not be measured; 1 a calibration run failed; 2 bad
usage or an unreadable input, with a one-line error and no traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TextIO

from pytest_llmbench.errors import LLMBenchError

EXIT_OK = 0
EXIT_USAGE = 2


def _parser() -> argparse.ArgumentParser:
    from pytest_llmbench.stats import DEFAULT_CONFIDENCE, DEFAULT_RATIO_METHOD, RATIO_METHODS

    parser = argparse.ArgumentParser(
        prog="llmbench", description="Compare, merge and show pytest-llmbench JSON reports."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    mixed_help = (
        "Allow results of different backends to be merged or compared (the output is labelled "
        "mixed_backends); refused by default because such aggregates are statistically invalid."
    )
    p = sub.add_parser(
        "compare",
        help="Compare CURRENT with a BASELINE history; exit 11 when a --fail-on rule regresses.",
        description="Compare a report with a baseline history (report files, folders of "
        "reports or globs; the newest --history runs), metric by metric, against the spread "
        "between runs. Exit 0: passed; 11: a gated metric regressed; 12: a gated metric could "
        "not be measured in CURRENT; 2: bad input.",
    )
    p.add_argument("baseline", nargs="+", metavar="BASELINE")
    p.add_argument("current", metavar="CURRENT.json")
    p.add_argument(
        "--history",
        type=int,
        default=None,
        metavar="N",
        help="Use at most the newest N runs of the history (default 20).",
    )
    p.add_argument(
        "--false-alarm-rate",
        type=float,
        default=None,
        metavar="P",
        help="Probability that unchanged code fails the gate (default 0.005).",
    )
    p.add_argument(
        "--fail-on",
        action="append",
        default=[],
        metavar="RULES",
        help="Gate rules, e.g. 'energy_per_output_token:+5%%,output_throughput:-3%%' (repeatable).",
    )
    p.add_argument(
        "--metric",
        action="append",
        default=None,
        metavar="NAME",
        help="Also show this metric, not gated (repeatable; default: a few headline metrics "
        "when there are no rules).",
    )
    p.add_argument("--method", choices=RATIO_METHODS, default=DEFAULT_RATIO_METHOD)
    p.add_argument("--confidence", type=float, default=DEFAULT_CONFIDENCE)
    p.add_argument("--json", metavar="OUT.json", help="Also write the comparison as JSON.")
    p.add_argument("--allow-mixed-backends", action="store_true", help=mixed_help)
    p.add_argument(
        "--allow-unmeasured",
        action="store_true",
        help="Let gated metrics that CURRENT did not measure pass instead of exiting 12.",
    )

    p = sub.add_parser(
        "calibrate",
        help="Run the benchmarks K times in fresh processes; print their noise profile.",
        usage="llmbench calibrate DIR [--runs K] [options] [-- PYTEST_ARGS...]",
        description="Run `pytest PYTEST_ARGS` --runs times, each in a fresh process with a "
        "fresh engine, into DIR (a history for --llm-compare DIR), then print each test's "
        "within-run and between-run variation and the smallest thresholds the gate can "
        "enforce at its false-alarm rate. With --runs 0, only profile what DIR holds.",
    )
    p.add_argument("dir", metavar="DIR")
    p.add_argument("--runs", type=int, default=10, metavar="K", help="Runs to add (default 10).")
    p.add_argument(
        "--metric",
        action="append",
        default=None,
        metavar="NAME",
        help="Metric to profile (repeatable; default energy_per_output_token, output_throughput).",
    )
    p.add_argument(
        "--gated",
        type=int,
        default=None,
        metavar="M",
        help="Gated comparisons per run that share the false-alarm budget (default: every row).",
    )
    p.add_argument("--false-alarm-rate", type=float, default=None, metavar="P")
    p.add_argument("--json", metavar="OUT.json", help="Also write the profile as JSON.")

    p = sub.add_parser(
        "merge",
        help="Merge reports into -o OUT.json (refuses mixed backends).",
        description="Merge the results of several reports into one. The output is named with "
        "-o; an existing file that is not one of the inputs is overwritten only with --force.",
    )
    p.add_argument("inputs", nargs="+", metavar="REPORT.json")
    p.add_argument("-o", "--output", metavar="OUT.json", help="where to write the merged report")
    p.add_argument(
        "--force", action="store_true", help="overwrite OUT.json when it is not one of the inputs"
    )
    p.add_argument("--allow-mixed-backends", action="store_true", help=mixed_help)

    p = sub.add_parser(
        "save",
        help="Keep REPORT as a saved run (as --llm-save does during a run).",
        description="Copy a report into the storage folder as the next numbered saved run of the "
        "machine it ran on, so that --llm-compare NAME (or the latest) finds it.",
    )
    p.add_argument("report", metavar="REPORT.json")
    p.add_argument("--name", help="the saved run's name (default: UTC time and git commit)")
    p.add_argument(
        "--storage", default=None, metavar="DIR", help="storage folder (default .llmbench)"
    )

    p = sub.add_parser(
        "show",
        help="Print reports: one table per backend; several reports side by side as runs.",
        description="One report: its results, one table per backend. Several reports (runs of "
        "the same benchmarks, oldest first): per backend, each benchmark's headline metrics "
        "with one column per run. Backends are never pooled.",
    )
    p.add_argument("reports", nargs="+", metavar="REPORT.json")

    p = sub.add_parser(
        "html",
        help="Write the self-contained HTML report of saved reports (several: run-over-run).",
        description="Write the HTML report --llm-html writes, from saved reports. Several "
        "reports (oldest first) add a run-over-run trend per backend and metric.",
    )
    p.add_argument("reports", nargs="+", metavar="REPORT.json")
    p.add_argument("-o", "--output", required=True, metavar="OUT.html", help="where to write")

    p = sub.add_parser(
        "docs",
        help=(
            "Write the generated docs (compatibility.md, configuration.md, schema/: the JSON "
            "Schemas of the report and of the config) into DIR."
        ),
    )
    p.add_argument("dir", metavar="DIR", nargs="?", default="docs")

    p = sub.add_parser("compat", help="Print the parameter compatibility matrix.")
    p.add_argument("--markdown", action="store_true", required=True, help="As Markdown.")
    return parser


def _compare(args: argparse.Namespace, out: TextIO) -> int:
    import json

    from pytest_llmbench.gate.comparing import compare_with_file
    from pytest_llmbench.gate.rules import parse_fail_on
    from pytest_llmbench.results import load_report

    if not 0.0 < args.confidence < 1.0:
        raise LLMBenchError(f"--confidence: {args.confidence} is not within (0, 1)")
    rules = parse_fail_on(args.fail_on, option="--fail-on")
    current = load_report(args.current)
    comparison = compare_with_file(
        current,
        args.baseline,
        rules,
        max_runs=_history_runs(args.history),
        metrics=args.metric,
        allow_mixed=args.allow_mixed_backends,
        method=args.method,
        confidence=args.confidence,
        false_alarm_rate=_false_alarm_rate(args.false_alarm_rate),
        allow_unmeasured=args.allow_unmeasured,
    )
    for line in comparison.lines():
        print(line, file=out)
    if args.json:
        from pytest_llmbench.report.json_report import atomic_write_text

        atomic_write_text(args.json, json.dumps(comparison.to_dict(), indent=2) + "\n")
    return comparison.exit_code


def _history_runs(value: int | None) -> int:
    from pytest_llmbench.gate.history import DEFAULT_HISTORY_RUNS

    if value is not None and value < 1:
        raise LLMBenchError(f"--history: {value} is not >= 1")
    return DEFAULT_HISTORY_RUNS if value is None else value


def _false_alarm_rate(value: float | None) -> float:
    from pytest_llmbench.gate.verdicts import DEFAULT_FALSE_ALARM_RATE

    if value is not None and not 0.0 < value < 1.0:
        raise LLMBenchError(f"--false-alarm-rate: {value} is not within (0, 1)")
    return DEFAULT_FALSE_ALARM_RATE if value is None else value


def _calibrate(args: argparse.Namespace, out: TextIO) -> int:
    import json
    from pathlib import Path

    from pytest_llmbench.gate.calibrate import (
        DEFAULT_METRICS,
        check_runs,
        noise_profile,
        render_profile,
        run_calibration,
        suggested_rules,
    )
    from pytest_llmbench.gate.history import expand, load_history
    from pytest_llmbench.metrics import METRICS, unknown_metric_message

    metrics = args.metric or list(DEFAULT_METRICS)
    for name in metrics:
        if name not in METRICS:
            raise LLMBenchError(f"--metric: {unknown_metric_message(name)}")
    rate = _false_alarm_rate(args.false_alarm_rate)
    pytest_args = list(args.pytest_args)
    folder = Path(args.dir)
    check_runs(folder, args.runs)
    failed = 0
    for path, status in run_calibration(pytest_args, folder, args.runs):
        failed += status != 0
        print(f"{path}: exit {status}", file=out)
    history = load_history(expand([str(folder)], option="DIR"), max_runs=10_000)
    rows = noise_profile(history, metrics, rate, args.gated)
    print(f"{folder}: {history.runs} runs", file=out)
    print(render_profile(rows), file=out)
    suggestions = suggested_rules(rows)
    rules = [s.rule for s in suggestions if s.rule is not None]
    if rules:
        text = ",".join(str(r) for r in rules)
        print(
            f"smallest rules the gate can enforce here at a {rate:g} false-alarm rate: {text}",
            file=out,
        )
    for s in suggestions:
        if s.rule is None:
            print(f"{s.metric}: {s.why}", file=out)
    if not suggestions:
        from pytest_llmbench.gate.noise import MIN_HISTORY_RUNS

        print(
            f"too few runs to suggest rules: a profile needs >= {MIN_HISTORY_RUNS + 1} runs",
            file=out,
        )
    if args.json:
        from pytest_llmbench.report.json_report import atomic_write_text

        data = {
            "runs": history.runs,
            "false_alarm_rate": rate,
            "rows": [r.to_dict() for r in rows],
            "suggested_fail_on": [str(r) for r in rules],
            "not_enforceable": {s.metric: s.why for s in suggestions if s.rule is None},
        }
        from pytest_llmbench.results import _json_safe

        atomic_write_text(args.json, json.dumps(_json_safe(data), indent=2, allow_nan=False))
    return 1 if failed else EXIT_OK


def _merge(args: argparse.Namespace, out: TextIO) -> int:
    import os

    from pytest_llmbench.merge import merge_reports
    from pytest_llmbench.report.json_report import atomic_write_text
    from pytest_llmbench.results import load_report

    if args.output is None:  # `merge a.json b.json` once meant "merge b.json into a.json"
        example = " ".join(args.inputs)
        raise LLMBenchError(
            f"name the merged report with -o, e.g. llmbench merge {example} -o merged.json"
        )
    target = os.path.realpath(args.output)
    if (
        os.path.exists(target)
        and target not in {os.path.realpath(p) for p in args.inputs}
        and not args.force
    ):
        raise LLMBenchError(
            f"-o: {args.output} exists and is not one of the inputs; add --force to overwrite it"
        )
    reports = [load_report(path) for path in args.inputs]
    merged = merge_reports(reports, allow_mixed=args.allow_mixed_backends)
    atomic_write_text(args.output, merged.to_json())
    label = " (mixed backends)" if merged.mixed_backends else ""
    print(
        f"merged {len(merged.results)} results from {len(reports)} reports{label} "
        f"into {args.output}",
        file=out,
    )
    return EXIT_OK


def _save(args: argparse.Namespace, out: TextIO) -> int:
    from pytest_llmbench.errors import StorageError
    from pytest_llmbench.gate.storage import DEFAULT_ROOT, Storage, autosave_name, safe_name
    from pytest_llmbench.results import load_report

    report = load_report(args.report)
    if args.name is not None:
        try:
            safe_name(args.name)
        except StorageError:
            raise LLMBenchError(
                f"--name: {args.name!r} has no usable characters (letters, digits, .-_)"
            ) from None
    # Stored under the machine the report ran on: --llm-compare on that machine looks there.
    machine_id = str(report.machine.get("machine_id") or "unknown")
    storage = Storage(args.storage or DEFAULT_ROOT, machine_id)
    saved = storage.save(report.to_json(), args.name or autosave_name(report.machine))
    state = "" if report.complete else " (an interrupted run's report)"
    print(f"saved {args.report} as {saved}{state}", file=out)
    return EXIT_OK


def _show(args: argparse.Namespace, out: TextIO) -> int:
    from pytest_llmbench.report.terminal import render_runs, render_summary
    from pytest_llmbench.results import load_report

    reports = [load_report(path) for path in args.reports]
    for n, (path, report) in enumerate(zip(args.reports, reports, strict=True), start=1):
        state = "complete" if report.complete else "INCOMPLETE (interrupted)"
        run = f"run {n}: " if len(reports) > 1 else ""
        print(
            f"{run}{path}: {len(report.results)} results, {state}, started {report.started_at}",
            file=out,
        )
    lines = render_summary(reports[0].results) if len(reports) == 1 else render_runs(reports)
    for line in lines:
        print(line, file=out)
    return EXIT_OK


def _html(args: argparse.Namespace, out: TextIO) -> int:
    from pytest_llmbench.report.draw import require
    from pytest_llmbench.report.html import write_html
    from pytest_llmbench.results import load_report

    require()  # before reading reports: a missing library is the first thing
    reports = [load_report(path) for path in args.reports]
    write_html(args.output, reports)
    print(f"wrote {args.output} from {len(reports)} report(s)", file=out)
    return EXIT_OK


def _compat(args: argparse.Namespace, out: TextIO) -> int:
    from pytest_llmbench.compat import render_markdown

    out.write(render_markdown())
    return EXIT_OK


def generated_docs() -> dict[str, str]:
    """Relative path under docs/ -> text: every document generated from a source of truth."""
    from importlib.resources import files

    from pytest_llmbench.compat import render_markdown as compat_markdown
    from pytest_llmbench.config.json_schema import CONFIG_SCHEMA_PATH, config_schema_text
    from pytest_llmbench.config.reference import render_markdown as config_markdown
    from pytest_llmbench.results import SCHEMA_RESOURCE

    return {
        "compatibility.md": compat_markdown(),
        "configuration.md": config_markdown(),
        SCHEMA_RESOURCE: files("pytest_llmbench").joinpath(SCHEMA_RESOURCE).read_text(),
        CONFIG_SCHEMA_PATH: config_schema_text(),
    }


def _docs(args: argparse.Namespace, out: TextIO) -> int:
    from pathlib import Path

    from pytest_llmbench.report.json_report import atomic_write_text

    for relative, text in generated_docs().items():
        path = Path(args.dir) / relative
        atomic_write_text(path, text)
        print(f"wrote {path}", file=out)
    return EXIT_OK


COMMANDS = {
    "compare": _compare,
    "calibrate": _calibrate,
    "merge": _merge,
    "save": _save,
    "show": _show,
    "html": _html,
    "compat": _compat,
    "docs": _docs,
}


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run ``llmbench``; returns the exit status (the console script exits with it)."""
    out = out or sys.stdout
    argv = list(sys.argv[1:] if argv is None else argv)
    # Everything after "--" goes to pytest untouched (llmbench calibrate ... -- PYTEST_ARGS).
    passthrough = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    try:
        parser = _parser()
        args, extras = parser.parse_known_args(argv)
        if extras and args.command == "calibrate":
            print(
                f"llmbench calibrate: error: unrecognized arguments: {' '.join(extras)}; "
                "pytest's arguments go after '--': llmbench calibrate DIR --runs K -- "
                "PYTEST_ARGS",
                file=sys.stderr,
            )
            return EXIT_USAGE
        if extras:
            parser.error(f"unrecognized arguments: {' '.join(extras)}")
        args.pytest_args = passthrough
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2), already printed
        return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
    try:
        return COMMANDS[args.command](args, out)
    except LLMBenchError as exc:
        print(f"llmbench {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:  # e.g. OUT.json not writable
        print(f"llmbench {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
