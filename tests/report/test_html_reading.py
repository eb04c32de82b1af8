"""What a reader relies on in the HTML page: fixed backend colours, titled plots with units and
their numbers beside them, run-over-run trends, and the baseline comparison's verdicts."""

from __future__ import annotations

import dataclasses
import json
import xml.etree.ElementTree as ET

from pytest_llmbench.gate import compare, parse_fail_on
from pytest_llmbench.report.figures import BACKEND_COLOURS, backend_colour, title_lines
from pytest_llmbench.report.html import render
from pytest_llmbench.results import Report
from tests.report.svg_parts import SVG, data_colours, tick_labels
from tests.report.svg_parts import svgs as _svgs
from tests.report.svg_parts import texts as _texts
from tests.results.factories import make_report, make_result, noisy


def test_a_backend_has_the_same_colour_in_every_plot_of_every_report() -> None:
    one = make_report([make_result("a", "vllm"), make_result("b", "pytorch")])
    two = make_report([make_result("b", "pytorch")])  # pytorch alone: first, still its colour
    for reports in ([one], [two], [two, one]):
        for svg in _svgs(render(reports)):
            title = svg.get("aria-label") or ""
            backend = "vllm" if "[vllm]" in title or title.startswith("vllm") else "pytorch"
            colours = data_colours(svg)
            assert colours <= {backend_colour(backend)}, title
    assert backend_colour("pytorch") == BACKEND_COLOURS["pytorch"] != backend_colour("vllm")
    assert backend_colour("my-engine") == backend_colour("my-engine")  # stable for others too


def test_every_plot_has_a_title_axes_with_units_and_a_table_beside_it() -> None:
    page = render([make_report([make_result("a", "vllm")]), make_report([make_result("a")])])
    root = ET.fromstring(page.replace("<!doctype html>", ""))
    figures = list(root.iter("figure"))
    assert figures and len(figures) == len(_svgs(page))
    for figure in figures:
        (svg,) = list(figure.iter(f"{SVG}svg"))
        assert figure.find("table") is not None
        texts = _texts(svg)
        title = svg.get("aria-label") or ""
        assert svg.findtext(f"{SVG}title") == title  # the whole title, as a tooltip
        drawn = title_lines(title)
        at = texts.index(drawn[0])
        assert texts[at : at + len(drawn)] == drawn and "".join(drawn) == title  # never cut
        if not tick_labels(svg):
            continue  # nothing to plot: it says why instead of drawing axes
        axis_labels = [t for t in texts if "(" in t and ")" in t and t not in drawn]
        assert axis_labels, texts  # a unit in parentheses: ms, tok/s, J/output token, W


def test_several_reports_get_a_trend_per_backend_and_metric() -> None:
    reports = [
        make_report([make_result(throughput=(t,) * 3)], started_at=f"2025-01-0{i}T00:00:00+00:00")
        for i, t in enumerate((1000.0, 900.0, 1100.0), start=1)
    ]
    page = render(reports)
    titles = [s.get("aria-label") for s in _svgs(page)]
    assert "pytorch: output throughput (tok/s) run over run" in titles
    assert "pytorch: energy (J/output token) run over run" in titles
    assert "<td>1000</td><td>900</td><td>1100</td>" in page


def test_comparison_with_a_baseline_shows_change_band_and_verdict() -> None:
    history = [
        make_report(
            [make_result(energy_per_token=noisy(0.5, 0.01, 5, 10 + j))],
            started_at=f"2025-01-01T00:{j:02d}:00.000+00:00",
        )
        for j in range(8)
    ]
    current = make_report([make_result(energy_per_token=noisy(0.6, 0.01, 5, 2))])
    comparison = compare(history, current, parse_fail_on("energy_per_output_token:+5%"))
    data = json.loads(current.to_json())
    data["comparison"] = comparison.to_dict()
    report = Report.from_dict(data)
    assert report.comparison is not None and json.loads(report.to_json())["comparison"]
    page = render([report])
    assert "Comparison with" in page and "FAILED" in page
    (row,) = comparison.rows
    assert f"{row.change:+.2%}" in page and "±" in page
    assert '<tr class="worse">' in page and "<td>regression</td>" in page
    plain = render([dataclasses.replace(report, comparison=None)])
    assert "Comparison with" not in plain


def test_perplexity_and_backend_agreement_are_on_the_page_as_in_the_terminal() -> None:
    quality = {
        "perplexity": 31.25,
        "perplexity_tokens": 412,
        "text": "reference.txt",
        "dtype": "float32",
        "unavailable": None,
    }
    pytorch = dataclasses.replace(make_result("a", "pytorch"), quality=quality)
    unavailable = {**quality, "perplexity": None, "unavailable": "no log-probabilities here"}
    vllm = dataclasses.replace(make_result("a", "vllm"), quality=unavailable)
    agreement = (
        {
            "backends": ["pytorch", "vllm"],
            "model": "/cache/tiny-model",
            "probe": "greedy-8x16",
            "dtypes": {"pytorch": "float32", "vllm": "float32"},
            "token_agreement": 0.875,
            "prompts": 8,
            "first_divergence": {"prompt": 3, "position": 5, "tokens": [17, 42]},
            "unavailable": None,
        },
        {
            "backends": ["pytorch", "llamacpp"],
            "model": "/cache/tiny-model",
            "probe": "greedy-8x16",
            "dtypes": {"pytorch": "float32", "llamacpp": "f32"},
            "token_agreement": None,
            "prompts": 0,
            "first_divergence": None,
            "unavailable": "llamacpp: engine failed",
        },
    )
    report = dataclasses.replace(make_report([pytorch, vllm]), agreement=agreement)
    page = render([report])
    assert "<li>perplexity 31.25 on reference.txt (412 tokens, float32)</li>" in page
    assert "<li>perplexity unavailable (no log-probabilities here)</li>" in page
    assert "Agreement between backends (greedy probe greedy-8x16; pairs, not pooled)" in page
    assert (
        "<tr><td>pytorch vs vllm</td><td>float32 / float32</td><td>0.875</td>"
        "<td>prompt 3, token 5: 17 vs 42</td></tr>" in page
    )
    assert "pytorch~llamacpp: unavailable (llamacpp: engine failed)" in page
    ET.fromstring(page.replace("<!doctype html>", ""))  # still well-formed


def test_an_itl_without_samples_says_why_in_its_plot() -> None:
    result = make_result("s", "openai", (None,))
    untimed = dataclasses.replace(result.repetitions[0], itl_s=())
    why = "each request's output arrived in one network read"
    result = dataclasses.replace(
        result, repetitions=(untimed,), engine_details={"itl_unavailable": why}
    )
    svgs = _svgs(render([make_report([result])]))
    (itl,) = [s for s in svgs if "ITL CDF" in s.get("aria-label", "")]
    said = " ".join(_texts(itl))
    assert f"ITL unavailable: {why}" in said and "no data" not in said


def test_a_step_in_the_runs_is_shown_under_its_trend_and_in_the_comparison_notes() -> None:
    levels = [1000.0] * 6 + [1080.0] * 5
    reports = [
        make_report(
            [make_result(throughput=noisy(t, 0.002, 3, i))],
            started_at=f"2025-01-01T00:{i:02d}:00+00:00",
        )
        for i, t in enumerate(levels)
    ]
    page = render(reports)
    assert "steps (as the gate finds them): test_a[pytorch]: +8." in page
    assert "% from run 7 on" in page
    (trend,) = [s for s in _svgs(page) if s.get("aria-label", "").startswith("pytorch: output")]
    (marker,) = [t for t in _texts(trend) if t.startswith("step: test_a[pytorch] +8.")]

    current = make_report([make_result(throughput=noisy(1080.0, 0.002, 3, 99))])
    comparison = compare(reports, current, parse_fail_on("output_throughput:-3%"))
    data = json.loads(current.to_json())
    data["comparison"] = comparison.to_dict()
    page = render([Report.from_dict(data)])
    assert "<li>history step in test_bench.py::test_a[pytorch] output_throughput: +8." in page


def test_a_band_wider_than_any_decrease_reads_beyond_minus_100_percent() -> None:
    history = [
        make_report([make_result(throughput=[t] * 3)], started_at=f"2025-01-01T00:{i:02d}:00+00:00")
        for i, t in enumerate((10.0, 200.0, 15.0, 300.0, 12.0))
    ]
    current = make_report([make_result(throughput=[100.0] * 3)])
    comparison = compare(history, current, parse_fail_on("output_throughput:-3%"))
    data = json.loads(current.to_json())
    data["comparison"] = comparison.to_dict()
    page = render([Report.from_dict(data)])
    assert "<td>beyond -100%</td>" in page
