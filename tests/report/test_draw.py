"""matplotlib's drawing of one plot: what a reader of the page relies on."""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET

import pytest

from pytest_llmbench.cli import main
from pytest_llmbench.errors import ConfigError
from pytest_llmbench.report.draw import GRID, draw, legend_grid, require
from pytest_llmbench.report.figures import Marker, Plot, Series, title_lines
from tests.report.svg_parts import data_lines, style, texts, tick_labels

SVG = "{http://www.w3.org/2000/svg}"


def _draw(plot: Plot) -> ET.Element:
    return ET.fromstring(draw(plot))  # well-formed, names escaped


def test_scatter_has_title_axis_labels_legend_and_its_colour() -> None:
    svg = _draw(
        Plot(
            "J/token vs tok/s",
            "output tok/s",
            "J / output token",
            [Series("pytorch <cpu>", [1.0, 2.0, 3.0], [0.5, 0.4, 0.9], colour="#1f77b4")],
        )
    )
    said = texts(svg)
    for text in ("J/token vs tok/s", "output tok/s", "J / output token", "pytorch <cpu>"):
        assert text in said
    markers = [u for u in svg.iter(f"{SVG}use") if style(u).get("fill") == "#1f77b4"]
    assert len(markers) == 3 + 1  # the three points and the legend's


def test_axes_have_round_ticks_with_a_gridline_each_not_only_their_ends() -> None:
    svg = _draw(Plot("p", "tok/s", "J/token", [Series("a", [1830.0, 2170.0], [0.013, 0.0191])]))
    ticks = tick_labels(svg)
    assert len(ticks) >= 6  # at least three on each axis
    assert "2000" in ticks or "2000.0" in ticks
    grid = [p for p in svg.iter(f"{SVG}path") if style(p).get("stroke") == GRID]
    assert len(grid) == len(ticks)  # one gridline per tick


def test_runs_are_ticked_on_whole_numbers_and_a_step_is_marked() -> None:
    plot = Plot(
        "trend",
        "run (oldest first)",
        "tok/s",
        [Series("t", [1.0, 2.0, 3.0], [10.0, 10.0, 12.0], line=True)],
        integer_x=True,
        markers=[Marker(2.5, "step: t +20.0%")],
    )
    svg = _draw(plot)
    assert {"1", "2", "3"} <= set(tick_labels(svg))
    assert not any(t.endswith(".5") for t in tick_labels(svg)[:5])
    assert "step: t +20.0%" in texts(svg)


def test_legends_sit_below_the_axes_and_never_over_the_data() -> None:
    series = [
        Series(f"benchmark {i}", [1.0, 2.0], [float(i), i + 1.0], line=True) for i in range(7)
    ]
    svg = _draw(Plot("many", "x (s)", "y (W)", series))
    y_of = {t.text: float(t.get("y") or 0) for t in svg.iter(f"{SVG}text")}
    # SVG's y grows downwards: every legend entry is below the x axis' label
    assert all(y_of[s.name] > y_of["x (s)"] for s in series)
    assert len(data_lines(svg)) == 7


def test_a_long_legend_takes_more_rows_and_height_not_room_from_the_plot() -> None:
    assert legend_grid(["a", "b"]) == (2, 1)
    assert legend_grid([f"{i}: NVIDIA H100" for i in range(8)]) == (3, 3)
    assert legend_grid([f"test_long_context_prefill[pytorch] {i}" for i in range(5)]) == (1, 5)

    def height_pt(n: int) -> float:
        series = [Series(f"benchmark {i}", [1.0, 2.0], [1.0, 2.0], line=True) for i in range(n)]
        return float(_draw(Plot("p", "x (s)", "y (W)", series)).get("height", "").rstrip("pt"))

    assert height_pt(9) > height_pt(3)  # three rows against one


def test_a_fifth_line_of_one_colour_is_told_apart_by_its_markers() -> None:
    series = [Series(f"{i}", [0.1 * k for k in range(40)], [float(k) for k in range(40)],
                     line=True, colour="#d62728", dashed=i) for i in range(5)]  # fmt: skip
    svg = _draw(Plot("p", "x (s)", "y (W)", series))
    marked = {style(u).get("fill") for u in svg.iter(f"{SVG}use")}
    assert "#d62728" in marked  # the fifth line (solid again) carries markers; the first not
    styles = [(line.get("stroke-dasharray"), line["stroke"]) for line in data_lines(svg)]
    assert len(styles) == 5 and len(set(styles)) == 4


def test_a_long_title_is_wrapped_whole_and_kept_as_the_tooltip() -> None:
    title = "benchmarks/test_throughput.py::test_offline_throughput[pytorch]: ITL CDF (histogram)"
    page = draw(Plot(title, "ITL (ms)", "fraction", [Series("ITL", [1.0, 2.0], [0.5, 1.0], True)]))
    svg = ET.fromstring(page)
    drawn = title_lines(title)
    assert len(drawn) >= 2 and "".join(drawn) == title
    said = texts(svg)
    at = said.index(drawn[0])
    # the file, the test, its backend and the plot's subject, in that order
    assert said[at : at + len(drawn)] == drawn
    assert svg.findtext(f"{SVG}title") == title and svg.get("aria-label") == title
    assert "\u2026" not in page


def test_an_empty_plot_says_why_in_full_instead_of_drawing_axes() -> None:
    why = (
        "energy unavailable: auto: no meter readable: NVML: not used, the backend runs on the "
        "CPU; RAPL: no intel-rapl zones under /sys/class/powercap"
    )
    svg = _draw(Plot("pytorch: energy vs throughput", "x", "y", [], empty=why))
    said = texts(svg)
    assert said[0] == "pytorch: energy vs throughput"
    assert len(said[1:]) > 1 and all(len(line) <= 64 for line in said[1:])  # wrapped ...
    assert "".join(said[1:]).replace(" ", "") == why.replace(" ", "")  # ... not cut
    assert not tick_labels(svg)


def test_the_same_plot_draws_the_same_bytes() -> None:
    plot = Plot("p", "x (s)", "y (W)", [Series("a", [1.0, 2.0], [3.0, 4.0], line=True)])
    assert draw(plot) == draw(plot)


def test_two_plots_of_one_page_share_no_element_id() -> None:
    # Clip paths and markers are referenced by id: a page that repeats one is invalid HTML.
    plots = [
        Plot(title, "x (s)", "y (W)", [Series("a", [1.0, 2.0], [3.0, 4.0], line=True)])
        for title in ("power [pytorch]", "power [vllm]")
    ]
    ids = [[e.get("id") for e in _draw(p).iter() if e.get("id")] for p in plots]
    assert ids[0] and ids[1]
    assert not set(ids[0]) & set(ids[1])


def test_a_missing_matplotlib_is_a_one_line_error_naming_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    require("--llm-html")  # installed here: nothing to say
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # what find_spec sees when it is absent
    with pytest.raises(ConfigError) as info:
        require("--llm-html")
    assert str(info.value) == (
        "--llm-html: needs matplotlib, which is not installed: pip install 'pytest-llmbench[html]'"
    )


def test_llmbench_html_without_matplotlib_exits_2_before_reading_reports(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    out = tmp_path / "r.html"
    assert main(["html", str(tmp_path / "missing.json"), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "needs matplotlib" in err and "pytest-llmbench[html]" in err
    assert "missing.json" not in err  # said before the reports are read
    assert not out.exists()


def test_the_page_and_the_plugin_import_without_matplotlib() -> None:
    """pytest's start-up never pays for matplotlib: only drawing a plot imports it."""
    import subprocess

    code = (
        "import sys; import pytest_llmbench.plugin, pytest_llmbench.report.html, "
        "pytest_llmbench.report.draw; print('matplotlib' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
