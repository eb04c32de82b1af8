from __future__ import annotations

import math
import xml.etree.ElementTree as ET

from hypothesis import given
from hypothesis import strategies as st

from pytest_llmbench.report.svg import Series, nice_step, nice_ticks, plot, tick_label, wrap

NS = "{http://www.w3.org/2000/svg}"


def test_scatter_has_title_axis_labels_and_one_circle_per_point() -> None:
    svg = plot(
        "J/token vs tok/s",
        "output tok/s",
        "J / output token",
        [Series("pytorch <cpu>", [1.0, 2.0, 3.0], [0.5, 0.4, 0.9])],
    )
    root = ET.fromstring(svg)  # well-formed, names escaped
    texts = [t.text for t in root.iter(f"{NS}text")]
    assert "J/token vs tok/s" in texts
    assert "output tok/s" in texts
    assert "J / output token" in texts
    assert "pytorch <cpu>" in texts
    assert len(list(root.iter(f"{NS}circle"))) == 3


def test_line_series_is_one_polyline_and_points_stay_inside_the_frame() -> None:
    root = ET.fromstring(
        plot("CDF", "TTFT (ms)", "fraction", [Series("t", [1, 2, 5], [0, 0.5, 1], line=True)])
    )
    (line,) = root.iter(f"{NS}polyline")
    for pair in line.attrib["points"].split():
        x, y = (float(v) for v in pair.split(","))
        assert 0 <= x <= float(root.attrib["width"])
        assert 0 <= y <= float(root.attrib["height"])


def test_a_single_point_and_no_points_still_draw() -> None:
    one = ET.fromstring(plot("one", "x (s)", "y (W)", [Series("a", [3.0], [3.0])]))
    assert len(list(one.iter(f"{NS}circle"))) == 1
    empty = ET.fromstring(plot("none", "x (s)", "y (W)", []))
    assert "no data" in [t.text for t in empty.iter(f"{NS}text")]


def _ticks(root: ET.Element) -> tuple[list[str], list[str]]:
    """The tick labels under the x axis and left of the y axis."""
    texts = list(root.iter(f"{NS}text"))
    xs = [t.text or "" for t in texts if t.get("text-anchor") == "middle" and t.get("x") != "240.0"]
    ys = [t.text or "" for t in texts if t.get("text-anchor") == "end" and t.get("x") == "60"]
    return xs, ys


def test_axes_have_round_ticks_with_gridlines_not_only_their_ends() -> None:
    root = ET.fromstring(
        plot("p", "tok/s", "J/token", [Series("a", [1830.0, 2170.0], [0.013, 0.0191])])
    )
    _, ys = _ticks(root)
    assert ys == ["0.012", "0.014", "0.016", "0.018", "0.02"]  # covers 0.013..0.0191
    labels = [t.text for t in root.iter(f"{NS}text")]
    for tick in ("1800", "1900", "2000", "2100", "2200"):
        assert tick in labels
    grid = [line for line in root.iter(f"{NS}line") if line.get("stroke") != "#000"]
    assert len(grid) == 5 + 5  # one gridline per tick on each axis


@given(
    st.floats(-1e9, 1e9, allow_nan=False),
    st.floats(1e-6, 1e9, allow_nan=False),
)
def test_nice_ticks_cover_the_range_in_round_even_steps(lo: float, span: float) -> None:
    hi = lo + span
    if not hi > lo or span < abs(lo) * 1e-9:  # a span below float resolution at lo
        return
    ticks = nice_ticks(lo, hi)
    step = nice_step(hi - lo)
    slack = step * 1e-6  # rounding noise: a point a millionth of a step outside is on the tick
    assert ticks[0] <= lo + slack and ticks[-1] >= hi - slack
    assert 3 <= len(ticks) <= 12
    mantissa = step / 10 ** math.floor(math.log10(step))
    assert any(math.isclose(mantissa, m, rel_tol=1e-6) for m in (1, 2, 5, 10))
    gaps = [b - a for a, b in zip(ticks, ticks[1:], strict=False)]
    assert all(math.isclose(g, step, rel_tol=1e-6, abs_tol=abs(hi) * 1e-9) for g in gaps)
    labels = [tick_label(t, step) for t in ticks]
    assert len(set(labels)) == len(labels)  # every tick reads differently


@given(st.text(alphabet="abc /:[],_-x", max_size=300), st.integers(8, 80))
def test_wrapping_keeps_every_character_and_the_width(text: str, width: int) -> None:
    lines = wrap(text, width)
    assert "".join(lines) == text
    assert all(len(line.rstrip()) <= width for line in lines)


def test_an_empty_plot_says_why_in_full() -> None:
    why = (
        "energy unavailable: auto: no meter readable: NVML: not used, the backend runs on the "
        "CPU; RAPL: no intel-rapl zones under /sys/class/powercap"
    )
    root = ET.fromstring(plot("pytorch: energy vs throughput", "x", "y", [], empty=why))
    said = [t.text or "" for t in root.iter(f"{NS}text")][1:]
    assert len(said) > 1 and all(len(line) <= 64 for line in said)  # wrapped ...
    assert "".join(said).replace(" ", "") == why.replace(" ", "")  # ... not cut
