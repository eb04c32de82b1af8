"""``llmbench``: compare, merge, save and show reports outside pytest, with the plugin's rules.

Exit status: 0 fine; 11 (``gate.EXIT_REGRESSION``) a gated metric regressed; 2 bad usage or an
unreadable input, with a one-line error and no traceback.
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
        help="Compare CURRENT with BASELINE; exit 11 when a --fail-on rule regresses.",
        description="Compare a report with a baseline, metric by metric, with intervals.",
    )
    p.add_argument("baseline", metavar="BASELINE.json")
    p.add_argument("current", metavar="CURRENT.json")
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

    p = sub.add_parser("merge", help="Merge reports into OUT (refuses mixed backends).")
    p.add_argument("out", metavar="OUT.json")
    p.add_argument("inputs", nargs="+", metavar="REPORT.json")
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

    p = sub.add_parser("show", help="Print a report: one table per backend, side by side.")
    p.add_argument("report", metavar="REPORT.json")

    p = sub.add_parser(
        "docs",
        help="Write the generated docs (compatibility.md, configuration.md, schema/) into DIR.",
    )
    p.add_argument("dir", metavar="DIR", nargs="?", default="docs")

    p = sub.add_parser("compat", help="Print the parameter compatibility matrix.")
    p.add_argument("--markdown", action="store_true", required=True, help="As Markdown.")
    return parser


def _compare(args: argparse.Namespace, out: TextIO) -> int:
    import json

    from pytest_llmbench.gate import compare_with_file, parse_fail_on
    from pytest_llmbench.results import load_report

    if not 0.0 < args.confidence < 1.0:
        raise LLMBenchError(f"--confidence: {args.confidence} is not within (0, 1)")
    rules = parse_fail_on(args.fail_on, option="--fail-on")
    current = load_report(args.current)
    comparison = compare_with_file(
        current,
        args.baseline,
        rules,
        metrics=args.metric,
        allow_mixed=args.allow_mixed_backends,
        method=args.method,
        confidence=args.confidence,
    )
    for line in comparison.lines():
        print(line, file=out)
    if args.json:
        from pytest_llmbench.report.json_report import atomic_write_text

        atomic_write_text(args.json, json.dumps(comparison.to_dict(), indent=2) + "\n")
    return comparison.exit_code


def _merge(args: argparse.Namespace, out: TextIO) -> int:
    from pytest_llmbench.merge import merge_reports
    from pytest_llmbench.report.json_report import atomic_write_text
    from pytest_llmbench.results import load_report

    reports = [load_report(path) for path in args.inputs]
    merged = merge_reports(reports, allow_mixed=args.allow_mixed_backends)
    atomic_write_text(args.out, merged.to_json())
    label = " (mixed backends)" if merged.mixed_backends else ""
    print(
        f"merged {len(merged.results)} results from {len(reports)} reports{label} into {args.out}",
        file=out,
    )
    return EXIT_OK


def _save(args: argparse.Namespace, out: TextIO) -> int:
    from pytest_llmbench.errors import StorageError
    from pytest_llmbench.results import load_report
    from pytest_llmbench.storage import DEFAULT_ROOT, Storage, autosave_name, safe_name

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
    from pytest_llmbench.report.terminal import render_summary
    from pytest_llmbench.results import load_report

    report = load_report(args.report)
    state = "complete" if report.complete else "INCOMPLETE (interrupted)"
    print(
        f"{args.report}: {len(report.results)} results, {state}, started {report.started_at}",
        file=out,
    )
    for line in render_summary(report.results):
        print(line, file=out)
    return EXIT_OK


def _compat(args: argparse.Namespace, out: TextIO) -> int:
    from pytest_llmbench.compat import render_markdown

    out.write(render_markdown())
    return EXIT_OK


def generated_docs() -> dict[str, str]:
    """Relative path under docs/ -> text: every document generated from a source of truth."""
    from importlib.resources import files

    from pytest_llmbench.compat import render_markdown as compat_markdown
    from pytest_llmbench.config.reference import render_markdown as config_markdown
    from pytest_llmbench.results import SCHEMA_RESOURCE

    return {
        "compatibility.md": compat_markdown(),
        "configuration.md": config_markdown(),
        SCHEMA_RESOURCE: files("pytest_llmbench").joinpath(SCHEMA_RESOURCE).read_text(),
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
    "merge": _merge,
    "save": _save,
    "show": _show,
    "compat": _compat,
    "docs": _docs,
}


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run ``llmbench``; returns the exit status (the console script exits with it)."""
    out = out or sys.stdout
    try:
        args = _parser().parse_args(argv)
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
