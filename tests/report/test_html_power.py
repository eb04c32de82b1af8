"""The HTML page's power over each energy window: a plot per window with a trace, a line per
device, the numbers beside it; windows without one say why."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from dataclasses import replace

from pytest_llmbench.energy.base import DeviceInfo, EnergyReading
from pytest_llmbench.report.figures import backend_colour
from pytest_llmbench.report.html import render
from pytest_llmbench.results import BenchmarkResult, Report
from tests.report.svg_parts import SVG, data_lines, texts
from tests.results.factories import make_report, make_result

TITLE = "benchmarks/test_bench.py::test_a[vllm]: power, repetition {} (nvml-counter)"


def two_gpus(result: BenchmarkResult) -> BenchmarkResult:
    """``result`` measured on two GPUs, each with its own trace (as a tensor-parallel engine)."""
    reps = []
    for rep in result.repetitions:
        energy = rep.energy
        assert isinstance(energy, EnergyReading)
        trace = {
            "GPU-1": tuple((0.1 * i, 300.0 + i) for i in range(10)),
            "GPU-2": tuple((0.1 * i, 200.0 - i) for i in range(10)),
        }
        two = replace(
            energy,
            per_device_j={"GPU-1": 300.0, "GPU-2": 200.0},
            energy_j=500.0,
            devices=(DeviceInfo(0, "NVIDIA H100", "GPU-1"), DeviceInfo(1, "NVIDIA H100", "GPU-2")),
            power_trace=trace,
        )
        reps.append(replace(rep, energy=two))
    return replace(result, repetitions=tuple(reps))


def figure_titled(page: str, title: str) -> ET.Element:
    for match in re.finditer(r"<figure>.*?</figure>", page, re.DOTALL):
        figure = ET.fromstring(match.group(0))
        if any(svg.get("aria-label") == title for svg in figure.iter(f"{SVG}svg")):
            return figure
    raise AssertionError(f"no plot titled {title!r}")


def cells(figure: ET.Element) -> list[list[str]]:
    rows = list(figure.iter("tr"))
    return [[td.text or "" for td in row.iter("td")] for row in rows[1:]]


def test_each_window_with_a_trace_is_a_plot_with_a_line_per_device_and_its_numbers() -> None:
    page = render([make_report([two_gpus(make_result("test_a", "vllm"))])])
    for repetition in (1, 2, 3):
        figure = figure_titled(page, TITLE.format(repetition))
        (svg,) = figure.iter(f"{SVG}svg")
        lines = data_lines(svg)
        assert len(lines) == 2  # one per GPU: devices are never summed
        assert {line["stroke"] for line in lines} == {backend_colour("vllm")}
        assert len({line.get("stroke-dasharray") for line in lines}) == 2  # told apart
        said = texts(svg)
        assert "time since the window opened (s)" in said and "power (W)" in said
        assert "0: NVIDIA H100" in said and "1: NVIDIA H100" in said  # the legend
        header = [th.text for th in figure.iter("th")]
        assert header[:7] == [
            "repetition", "device", "points", "mean, energy / window (W)", "min (W)", "max (W)",
            "window (s)",
        ]  # fmt: skip
        first, second = cells(figure)
        assert first[:3] == [str(repetition), "0: NVIDIA H100 (GPU-1)", "10"]
        assert first[3:6] == ["300", "300", "309"]  # 300 J over the 1 s window; min; max
        assert second[3:6] == ["200", "191", "200"]
        assert first[6] == "1" and first[7] == "energy between counter updates / their interval"


def test_windows_whose_energy_is_unavailable_say_so_with_the_reason_once() -> None:
    page = render([make_report([make_result("test_a", "pytorch", (None, None, None))])])
    # Once per result (the frontier box of the backend says it too), not on every row.
    power = page.split(": power over each energy window</h4>")[1]
    assert power.count("NVML not found") == 1
    assert "Energy in every repetition (method none): unavailable: NVML not found" in power
    assert power.count("<td>unavailable</td>") == 3  # each window is still listed
    assert ": power, repetition" not in page  # no empty plot instead


def test_windows_of_a_report_from_before_traces_say_why_there_is_no_plot() -> None:
    data = json.loads(make_report([make_result("test_a", "vllm", (0.5,))]).to_json())
    del data["results"][0]["repetitions"][0]["energy"]["power_trace"]
    page = render([Report.from_dict(data)])
    assert "no power trace: not kept (a report from before power traces" in page
    assert "<td>500</td>" in page  # its average power (W) is still there
    assert ": power, repetition" not in page


def test_a_counter_window_with_fewer_than_two_updates_says_so() -> None:
    result = make_result("test_a", "vllm", (0.5, 0.5))
    empty = result.repetitions[0].energy
    assert isinstance(empty, EnergyReading)
    reps = (replace(result.repetitions[0], energy=replace(empty, power_trace={"GPU-1": ()})),)
    page = render([make_report([replace(result, repetitions=reps + result.repetitions[1:])])])
    assert "no power trace: fewer than two counter updates in the window" in page
    figure_titled(page, TITLE.format(2))  # the other window is plotted
    assert ": power, repetition 1" not in page
