from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pytest_llmbench.report.figures import BACKEND_COLOURS, Plot, Series, backend_colour, wrap


@given(st.text(alphabet="abc /:[],_-x", max_size=300), st.integers(8, 80))
def test_wrapping_keeps_every_character_and_the_width(text: str, width: int) -> None:
    lines = wrap(text, width)
    assert "".join(lines) == text
    assert all(len(line.rstrip()) <= width for line in lines)


def test_a_test_id_breaks_after_its_path_and_before_its_parameters() -> None:
    title = "benchmarks/test_throughput.py::test_offline_throughput[pytorch]: ITL CDF (histogram)"
    assert wrap(title, 60) == [
        "benchmarks/test_throughput.py::test_offline_throughput",
        "[pytorch]: ITL CDF (histogram)",
    ]


def test_each_builtin_backend_has_its_own_fixed_colour_and_others_a_stable_one() -> None:
    assert len(set(BACKEND_COLOURS.values())) == len(BACKEND_COLOURS)
    assert backend_colour("pytorch") == BACKEND_COLOURS["pytorch"] != backend_colour("vllm")
    assert backend_colour("my-engine") == backend_colour("my-engine")


def test_a_plot_has_points_only_when_a_series_has_one() -> None:
    assert not Plot("t", "x", "y", []).has_points
    assert not Plot("t", "x", "y", [Series("a", [], [])]).has_points
    assert Plot("t", "x", "y", [Series("a", [], []), Series("b", [1.0], [2.0])]).has_points
