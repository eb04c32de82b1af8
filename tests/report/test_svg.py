from __future__ import annotations

import xml.etree.ElementTree as ET

from pytest_llmbench.report.svg import Series, plot

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
