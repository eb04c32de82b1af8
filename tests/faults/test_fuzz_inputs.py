"""Hypothesis fuzzing of what users hand us: config files, --llm-set, --llm-fail-on, reports.

The property: valid input is accepted, anything else is one line naming what is wrong (exit 4
in pytest, exit 2 in ``llmbench``), never a traceback. The parsers are fuzzed directly (many
examples, fast); a sample of the same inputs goes through real pytest sessions and the CLI.
"""

from __future__ import annotations

import io
import json
import string
from collections.abc import Iterator
from contextlib import redirect_stderr
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_llmbench.cli import main as llmbench
from pytest_llmbench.config.load import parse_override, resolve_config
from pytest_llmbench.config.schema import ExperimentConfig
from pytest_llmbench.errors import ConfigErrors, LLMBenchError
from pytest_llmbench.gate import parse_fail_on
from pytest_llmbench.results import load_report
from tests.results.factories import make_report, make_result


def dotted_keys(data: dict[str, Any], prefix: str = "") -> Iterator[str]:
    for key, value in data.items():
        yield prefix + key
        if isinstance(value, dict):
            yield from dotted_keys(value, f"{prefix}{key}.")


KNOWN_KEYS = sorted(dotted_keys(ExperimentConfig().to_dict()))
METRIC_NAMES = ["energy_per_output_token", "output_throughput", "ttft_s_p99", "error_rate"]

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**12), max_value=10**12)
    | st.floats()
    | st.text(max_size=8)
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=8,
)


def nested(key: str, value: Any) -> dict[str, Any]:
    for part in reversed(key.split(".")):
        value = {part: value}
    return value  # type: ignore[no-any-return]


# A config file: known keys with any values, unknown keys, odd top-level shapes, or raw text.
config_texts = st.one_of(
    st.lists(st.tuples(st.sampled_from(KNOWN_KEYS), values), max_size=4).map(
        lambda pairs: yaml.safe_dump(
            {k: v for key, value in pairs for k, v in nested(key, value).items()}
        )
    ),
    st.dictionaries(st.text(max_size=10), values, max_size=3).map(yaml.safe_dump),
    values.map(yaml.safe_dump),
    st.text(alphabet=string.printable, max_size=60),
)
set_texts = st.one_of(
    st.tuples(st.sampled_from(KNOWN_KEYS), st.text(max_size=12)).map("=".join),
    st.tuples(st.sampled_from(KNOWN_KEYS), values).map(lambda kv: f"{kv[0]}={json.dumps(kv[1])}"),
    st.text(max_size=30),
)
fail_on_texts = st.one_of(
    st.lists(
        st.tuples(
            st.sampled_from([*METRIC_NAMES, "nope"]),
            st.sampled_from(["", "+", "-", "*"]),
            st.text(alphabet="0123456789.e-", max_size=6),
            st.sampled_from(["", "%", "x"]),
        ).map(lambda t: f"{t[0]}:{t[1]}{t[2]}{t[3]}"),
        max_size=3,
    ).map(",".join),
    st.text(max_size=30),
)


def one_line(error: Exception) -> str:
    text = str(error)
    assert text and "\n" not in text and "Traceback" not in text, repr(text)
    return text


def one_line_per_error(error: Exception) -> list[str]:
    """A config file's errors: one line, or a count line and then one line per error."""
    if not isinstance(error, ConfigErrors):
        return [one_line(error)]
    lines = str(error).splitlines()
    assert lines[0].endswith(f"{len(error.errors)} config errors:") and len(error.errors) > 1
    assert lines[1:] == [one_line(e) for e in error.errors]
    return lines


@given(config_texts)
@settings(max_examples=300, deadline=None)
def test_any_config_file_is_accepted_or_one_line(tmp_path_factory: Any, text: str) -> None:
    path = tmp_path_factory.mktemp("cfg") / "bad.yaml"
    path.write_text(text)
    try:
        resolve_config(config_file=path)
    except LLMBenchError as exc:
        assert all(line.startswith(f"{path}: ") for line in one_line_per_error(exc))


@given(set_texts)
@settings(max_examples=300, deadline=None)
def test_any_llm_set_is_accepted_or_one_line(text: str) -> None:
    try:
        resolve_config(overrides=[parse_override(text)])
    except LLMBenchError as exc:
        one_line_per_error(exc)


@given(fail_on_texts)
@settings(max_examples=300, deadline=None)
def test_any_llm_fail_on_is_accepted_or_one_line(text: str) -> None:
    try:
        parse_fail_on(text)
    except LLMBenchError as exc:
        assert one_line(exc).startswith("--llm-fail-on: ")


VALID_REPORT = make_report([make_result()]).to_dict()


def paths(data: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every key path of a JSON value, depth first."""
    items = (
        data.items() if isinstance(data, dict) else enumerate(data)
        if isinstance(data, list) else ()
    )  # fmt: skip
    for key, value in items:
        yield (*prefix, key)
        yield from paths(value, (*prefix, key))


def mutations() -> st.SearchStrategy[str]:
    """A valid report with one part broken: a value replaced, a key dropped, or the text cut."""
    every_path = list(paths(VALID_REPORT))

    def replaced(path: tuple[Any, ...], value: Any, drop: bool) -> str:
        data = json.loads(json.dumps(VALID_REPORT))
        cursor = data
        for key in path[:-1]:
            cursor = cursor[key]
        if drop and isinstance(cursor, dict):
            del cursor[path[-1]]
        else:
            cursor[path[-1]] = value
        return json.dumps(data)

    text = json.dumps(VALID_REPORT)
    return st.one_of(
        st.builds(replaced, st.sampled_from(every_path), values, st.booleans()),
        st.integers(min_value=0, max_value=len(text) - 1).map(lambda n: text[:n]),
        st.text(max_size=40),
    )


@given(mutations())
@settings(max_examples=300, deadline=None)
def test_any_report_file_is_read_or_one_line(tmp_path_factory: Any, text: str) -> None:
    path = tmp_path_factory.mktemp("rep") / "report.json"
    path.write_text(text)
    try:
        load_report(path)
    except LLMBenchError as exc:
        assert one_line(exc).startswith(str(path))


def run_cli(*argv: str) -> tuple[int, str]:
    err = io.StringIO()
    with redirect_stderr(err):
        code = llmbench(list(argv), out=io.StringIO())
    return code, err.getvalue()


@given(mutations())
@settings(max_examples=100, deadline=None)
def test_llmbench_show_and_compare_exit_0_or_2_with_one_line(
    tmp_path_factory: Any, text: str
) -> None:
    folder = tmp_path_factory.mktemp("cli")
    good, bad = folder / "good.json", folder / "bad.json"
    good.write_text(json.dumps(VALID_REPORT))
    bad.write_text(text)
    for argv in (("show", str(bad)), ("compare", str(good), str(bad))):
        code, err = run_cli(*argv)
        assert code in (0, 2, 11), (argv, code, err)
        if code == 2:
            assert len(err.strip().splitlines()) == 1, err


def test_every_field_of_a_report_with_every_wrong_type_is_read_or_one_line(
    tmp_path: Path,
) -> None:
    """Exhaustive where the fuzzer samples: each value of a real report replaced in turn by each
    JSON type, through ``show`` and ``compare`` (the readers that walk free-form sections)."""
    good = tmp_path / "good.json"
    good.write_text(json.dumps(VALID_REPORT))
    bad = tmp_path / "bad.json"
    # optional sections must be in the report to be broken: e.g. each window's power trace
    assert any(path[-1] == "power_trace" for path in paths(VALID_REPORT))
    for path in paths(VALID_REPORT):
        for wrong in (None, True, 3, "x", [], {}, [1], {"k": 1}):
            data = json.loads(json.dumps(VALID_REPORT))
            cursor = data
            for key in path[:-1]:
                cursor = cursor[key]
            cursor[path[-1]] = wrong
            bad.write_text(json.dumps(data))
            for argv in (("show", str(bad)), ("compare", str(good), str(bad))):
                code, err = run_cli(*argv)
                assert code in (0, 2, 11, 12), (path, wrong, argv, code, err)
                if code == 2:
                    assert len(err.strip().splitlines()) == 1, (path, wrong, err)


# -- the same inputs through real pytest sessions (fewer: each is a session) -----------------------
SESSION = settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def assert_usage_error_or_ok(result: pytest.RunResult) -> None:
    text = result.stdout.str() + result.stderr.str()
    assert "Traceback" not in text and "INTERNALERROR" not in text, text
    assert result.ret in (pytest.ExitCode.USAGE_ERROR, pytest.ExitCode.NO_TESTS_COLLECTED), text
    if result.ret == pytest.ExitCode.USAGE_ERROR:
        errors = [line for line in result.stderr.lines if line.strip()]
        assert errors and errors[0].startswith("ERROR: "), errors
        if len(errors) > 1:  # several errors of one config file: the first line counts them
            assert errors[0].endswith(f" {len(errors) - 1} config errors:"), errors


@given(text=config_texts, option=st.sampled_from(["--llm-config", "--llm-compare"]))
@SESSION
def test_sessions_refuse_bad_config_and_baseline_files_in_one_line(
    pytester: pytest.Pytester, text: str, option: str
) -> None:
    path = Path(pytester.path) / "input.file"
    path.write_text(text)
    assert_usage_error_or_ok(pytester.runpytest_inprocess(option, str(path)))


@given(report=mutations())
@SESSION
def test_sessions_refuse_bad_baseline_reports_in_one_line(
    pytester: pytest.Pytester, report: str
) -> None:
    (Path(pytester.path) / "base.json").write_text(report)
    assert_usage_error_or_ok(pytester.runpytest_inprocess("--llm-compare", "base.json"))


@given(sets=st.lists(set_texts, min_size=1, max_size=2), fail_on=fail_on_texts)
@SESSION
def test_sessions_refuse_bad_set_and_fail_on_in_one_line(
    pytester: pytest.Pytester, sets: list[str], fail_on: str
) -> None:
    args = [f"--llm-set={s}" for s in sets] + [f"--llm-fail-on={fail_on}"]
    assert_usage_error_or_ok(pytester.runpytest_inprocess(*args))
