"""The JSON report: its schema, round trips, derived sections and clear errors on bad files."""

from __future__ import annotations

import gzip
import json
import os
import stat
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from pytest_llmbench.energy.base import EnergyReading
from pytest_llmbench.errors import ReportError
from pytest_llmbench.metrics import METRICS
from pytest_llmbench.report.json_report import build_report, write_report
from pytest_llmbench.results import SCHEMA_VERSION, Report, load_report, read_report_data
from tests.results.factories import H100, make_report, make_result, write

MEASURED = Path(__file__).parents[2] / "docs" / "measurements" / "h100-2026-11-23"


def test_schema_is_a_valid_json_schema_of_this_version(schema: dict[str, Any]) -> None:
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["properties"]["schema_version"]["const"] == SCHEMA_VERSION


def test_docs_link_to_the_packaged_schema() -> None:
    docs = Path(__file__).parents[2] / "docs" / "ci.md"
    assert "pytest_llmbench/schema/report-v2.json" in docs.read_text()


def test_report_validates_with_energy_and_without(schema: dict[str, Any]) -> None:
    report = make_report(
        [
            make_result("a"),
            make_result("b", energy_per_token=(None, None)),
            make_result("c", "vllm"),
        ]
    )
    data = json.loads(report.to_json())
    jsonschema.validate(data, schema)
    assert data["backends"] == ["pytorch", "vllm"]
    assert data["results"][1]["energy"] == {"available": False, "reason": "NVML not found"}


def test_build_report_of_the_collector_validates(schema: dict[str, Any]) -> None:
    data = build_report(
        [make_result()], complete=False, started_at="2025-01-01T00:00:00Z", finished_at=None
    )
    jsonschema.validate(json.loads(json.dumps(data)), schema)
    assert data["machine"]["machine_id"]  # this machine, collected once


def test_schema_rejects_a_result_without_backend(schema: dict[str, Any]) -> None:
    data = json.loads(make_report([make_result()]).to_json())
    del data["results"][0]["backend"]
    with pytest.raises(jsonschema.ValidationError, match="backend"):
        jsonschema.validate(data, schema)


def test_round_trip_keeps_every_raw_value(tmp_path: Path) -> None:
    report = make_report([make_result("a", energy_per_token=(0.4, 0.5, 0.6))])
    loaded = load_report(write(tmp_path / "r.json", report))
    assert loaded == report
    assert loaded.to_dict() == report.to_dict()


def test_result_sections() -> None:
    result = make_result(energy_per_token=(0.4, 0.5, 0.6), throughput=(900.0, 1000.0, 1100.0))
    data = result.to_dict()
    stats = data["statistics"]["energy_per_output_token"]
    assert stats["n"] == 3 and stats["mean"] == pytest.approx(0.5)
    assert stats["ci_low"] < 0.5 < stats["ci_high"]
    assert data["throughput"]["output_tok_s"] == pytest.approx(
        3000 / sum(1000 / t for t in (900, 1000, 1100))
    )
    assert set(data["latency"]) == {"ttft_s", "itl_s", "e2e_latency_s"}
    assert data["latency"]["e2e_latency_s"]["p50"] == pytest.approx(1.45)
    energy = data["energy"]
    assert energy["available"] and energy["method"] == "nvml-counter"
    assert energy["energy_per_output_token"] == pytest.approx(0.5)
    assert energy["energy_per_request"] == pytest.approx(50.0)
    assert energy["devices"] == [{"index": 0, "name": "NVIDIA H100", "uuid": "GPU-1"}]
    assert set(data["aggregate"]) <= set(METRICS)


def test_every_metric_a_repetition_produces_is_in_the_catalogue() -> None:
    assert set(make_result().repetitions[0].metrics()) <= set(METRICS)


def test_write_report_is_atomic_and_json(tmp_path: Path) -> None:
    path = tmp_path / "out" / "report.json"
    write_report(path, make_report([make_result()]).to_dict())
    assert json.loads(path.read_text())["complete"] is True
    assert [p.name for p in path.parent.iterdir()] == ["report.json"]  # no temporary left


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
def test_reports_html_and_saved_runs_follow_the_umask(tmp_path: Path, mask: int) -> None:
    """Atomic writes go through a temporary file (created 0600); the result must not keep that."""
    from pytest_llmbench.gate.storage import Storage
    from pytest_llmbench.report.html import write_html

    report = make_report([make_result()])
    old = os.umask(mask)
    try:
        write_report(tmp_path / "r.json", report.to_dict())
        write_html(tmp_path / "r.html", [report])
        saved = Storage(tmp_path / "runs", "machine").save(report.to_json(), "run")
    finally:
        os.umask(old)
    for path in (tmp_path / "r.json", tmp_path / "r.html", saved):
        assert oct(stat.S_IMODE(path.stat().st_mode)) == oct(0o666 & ~mask), path


def test_rewriting_a_report_keeps_its_mode(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    path.write_text("{}")
    path.chmod(0o640)
    write_report(path, make_report([make_result()]).to_dict())
    assert stat.S_IMODE(path.stat().st_mode) == 0o640 and load_report(path).results


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "file is empty"),
        ('{"schema_version": 1, "results": [', "truncated JSON at line 1"),
        ("{not json}", "invalid JSON at line 1"),
        ("[1, 2]", "expected a JSON object, found list"),
    ],
)
def test_corrupt_files_give_one_line_errors_naming_the_file(
    tmp_path: Path, text: str, problem: str
) -> None:
    path = tmp_path / "base.json"
    path.write_text(text)
    with pytest.raises(ReportError) as info:
        read_report_data(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and problem in message
    assert "\n" not in message


def test_truncated_real_report(tmp_path: Path) -> None:
    text = make_report([make_result()]).to_json()
    path = tmp_path / "base.json"
    path.write_text(text[: len(text) // 2])
    with pytest.raises(ReportError, match=r"base\.json: truncated JSON"):
        load_report(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="nope.json: no such file"):
        load_report(tmp_path / "nope.json")


@pytest.mark.parametrize(
    ("mutate", "problem"),
    [
        (
            lambda d: d.update(schema_version=99),
            "schema_version 99 is not supported (expected 1 or 2)",
        ),
        (lambda d: d.pop("results"), "missing key 'results'"),
        (lambda d: d["results"][0].pop("repetitions"), "results[0]: missing key 'repetitions'"),
        (lambda d: d.update(complete="yes"), "'complete' should be a bool"),
    ],
)
def test_invalid_report_content(mutate: Any, problem: str) -> None:
    data = json.loads(make_report([make_result()]).to_json())
    mutate(data)
    with pytest.raises(ReportError) as info:
        Report.from_dict(data, source="b.json")
    assert str(info.value) == f"b.json: {problem}"


def test_report_machine_defaults_are_kept() -> None:
    assert make_report([]).machine == H100


def test_a_null_warmup_reads_as_no_warmup_record_and_renders() -> None:
    from pytest_llmbench.report.terminal import render_summary

    data = json.loads(make_report([make_result()]).to_json())
    data["results"][0]["warmup"] = None
    report = Report.from_dict(data, source="b.json")
    assert report.results[0].warmup == {}
    assert any("test" in line for line in render_summary(report.results))


def test_a_warmup_that_is_not_an_object_is_named() -> None:
    data = json.loads(make_report([make_result()]).to_json())
    data["results"][0]["warmup"] = [1, 2]
    with pytest.raises(ReportError, match="b.json: .*warmup: expected an object, found list"):
        Report.from_dict(data, source="b.json")


@pytest.mark.parametrize("telemetry", [[1], {"gpus": 3}])
def test_a_malformed_telemetry_record_is_named(telemetry: Any) -> None:
    data = json.loads(make_report([make_result()]).to_json())
    data["results"][0]["repetitions"][0]["telemetry"] = telemetry
    with pytest.raises(ReportError, match="b.json: .*telemetry: expected an object"):
        Report.from_dict(data, source="b.json")


# -- power traces ----------------------------------------------------------------------------------
def _first_energy(data: dict[str, Any]) -> dict[str, Any]:
    energy: dict[str, Any] = data["results"][0]["repetitions"][0]["energy"]
    return energy


def test_power_trace_round_trips_as_two_arrays_per_device(
    tmp_path: Path, schema: dict[str, Any]
) -> None:
    report = make_report([make_result()])
    data = json.loads(report.to_json())
    jsonschema.validate(data, schema)
    reading = report.results[0].repetitions[0].energy
    assert isinstance(reading, EnergyReading)
    (points,) = reading.power_trace.values()
    assert _first_energy(data)["power_trace"] == {
        "GPU-1": {"t_s": [t for t, _ in points], "power_w": [w for _, w in points]}
    }
    assert load_report(write(tmp_path / "r.json", report)) == report


def test_reports_written_before_power_traces_still_load(schema: dict[str, Any]) -> None:
    data = json.loads(make_report([make_result()]).to_json())
    for rep in data["results"][0]["repetitions"]:
        del rep["energy"]["power_trace"]
    jsonschema.validate(data, schema)  # the field is optional in version 2
    loaded = Report.from_dict(data, source="old.json")
    assert all(
        isinstance(r.energy, EnergyReading) and r.energy.power_trace == {}
        for r in loaded.results[0].repetitions
    )


def test_a_version_1_report_with_energy_loads_without_power_traces() -> None:
    path = MEASURED / "pytorch-pytorch-compatible-b1.json.gz"
    data = json.loads(gzip.decompress(path.read_bytes()))
    assert data["schema_version"] == 1
    report = Report.from_dict(data, source=path.name)
    readings = [r.energy for res in report.results for r in res.repetitions]
    assert readings and all(isinstance(e, EnergyReading) for e in readings)
    assert all(e.power_trace == {} for e in readings if isinstance(e, EnergyReading))


@pytest.mark.parametrize(
    ("trace", "problem"),
    [
        ([], "energy.power_trace: expected an object, found list"),
        ({"GPU-1": [[0.0, 1.0]]}, "energy.power_trace.GPU-1: expected an object with t_s"),
        ({"GPU-1": {"power_w": [1.0]}}, "energy.power_trace.GPU-1.t_s: expected an array"),
        ({"GPU-1": {"t_s": [0.0], "power_w": ["x"]}}, "power_trace.GPU-1.power_w[0]: expected a"),
        ({"GPU-1": {"t_s": [0.0, 1.0], "power_w": [1.0]}}, "GPU-1: 2 t_s but 1 power_w values"),
        (
            {"GPU-1": {"t_s": list(range(65)), "power_w": [1.0] * 65}},
            "energy.power_trace.GPU-1: 65 points, at most 64",
        ),
    ],
)
def test_a_malformed_power_trace_is_named(trace: Any, problem: str) -> None:
    data = json.loads(make_report([make_result()]).to_json())
    data["results"][0]["repetitions"][1]["energy"]["power_trace"] = trace
    with pytest.raises(ReportError) as info:
        Report.from_dict(data, source="b.json")
    message = str(info.value)
    assert message.startswith("b.json: results[0]: ") and problem in message
    assert "\n" not in message


def test_arrays_of_numbers_take_one_line_and_the_text_reads_back(tmp_path: Path) -> None:
    from hypothesis import given
    from hypothesis import strategies as st

    from pytest_llmbench.results import report_json

    report = make_report([make_result(energy_per_token=(0.5, 0.6, 0.7))])
    path = tmp_path / "r.json"
    write_report(path, report.to_dict())
    text = path.read_text()
    assert text == report.to_json() and json.loads(text) == json.loads(json.dumps(report.to_dict()))
    counts = [line for line in text.splitlines() if '"counts": [' in line]
    assert counts and all(line.rstrip(",").endswith("]") for line in counts)  # one line each

    values = st.recursive(
        st.none() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=3),
        max_leaves=20,
    )

    @given(st.dictionaries(st.text(), values, max_size=4))
    def reads_back(data: dict[str, Any]) -> None:
        assert json.loads(report_json(data)) == data

    reads_back()
