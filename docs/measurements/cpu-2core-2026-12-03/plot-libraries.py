"""Draw the same HTML reports with four plotting libraries; print size and time of each page.

How docs/reports.md chose matplotlib. Each candidate replaces
``pytest_llmbench.report.html.draw`` (the one function that turns a Plot into markup); the
page around the plots, its tables and texts are the same for all. A library with a script
runtime has it inlined once per page, in <head>. Needs the candidates and Chromium:

    pip install matplotlib==3.11.2 plotly==7.1.0 altair==6.3.0 vl-convert-python bokeh==3.9.2
    python docs/measurements/cpu-2core-2026-12-03/plot-libraries.py [--only plotly,bokeh] \
        [--best-of 3] OUT_DIR REPORT.json[.gz]...

Every report named is one page of its own; ``+`` joins reports into one page of trends, as
``llmbench html`` does with several (``a.json+b.json``). Times: seconds of wall clock, best
of three (``--best-of``); "browser" is headless Chromium loading the page until its scripts are done
(``--dump-dom``), less the time it takes for an empty page.
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from pytest_llmbench.report import html
from pytest_llmbench.report.figures import PALETTE, Plot, title_lines
from pytest_llmbench.results import Report

_ids = itertools.count()
DASH = {"plotly": ("solid", "dash", "dot", "dashdot"), "bokeh": ("solid", "dashed", "dotted")}


def plotly_draw(plot: Plot) -> str:
    import plotly.graph_objects as go

    fig = go.Figure()
    for s in plot.series:
        fig.add_trace(
            go.Scatter(
                x=list(s.xs),
                y=list(s.ys),
                name=s.name,
                mode=("lines+markers" if len(s.xs) <= 12 else "lines") if s.line else "markers",
                line={"color": s.colour, "dash": DASH["plotly"][s.dashed % 4]},
            )
        )
    fig.update_layout(
        title={"text": "<br>".join(title_lines(plot.title))},
        xaxis_title=plot.x_label,
        yaxis_title=plot.y_label,
        width=480,
        height=340,
        legend={"orientation": "h", "y": -0.3},
    )
    if not plot.has_points:
        fig.add_annotation(text=plot.empty, showarrow=False)
    out: str = fig.to_html(include_plotlyjs=False, full_html=False, div_id=f"p{next(_ids)}")
    return out


def plotly_runtime() -> str:
    from plotly.offline import get_plotlyjs

    return f"<script>{get_plotlyjs()}</script>"


def altair_draw(plot: Plot) -> str:
    import altair as alt

    rows = [
        {"x": x, "y": y, "series": s.name}
        for s in plot.series
        for x, y in zip(s.xs, s.ys, strict=True)
    ]
    colours = [s.colour or PALETTE[j % len(PALETTE)] for j, s in enumerate(plot.series)]
    names = [s.name for s in plot.series]
    base = alt.Chart(alt.Data(values=rows), title=plot.title, width=400, height=240)
    chart = base.mark_line(point=True).encode(
        x=alt.X("x:Q", title=plot.x_label),
        y=alt.Y("y:Q", title=plot.y_label),
        color=alt.Color("series:N", scale=alt.Scale(domain=names, range=colours)),
        strokeDash="series:N",
        tooltip=["series:N", "x:Q", "y:Q"],
    )
    div = f"v{next(_ids)}"
    spec = chart.to_json(indent=None)
    return f'<div id="{div}"></div><script>vegaEmbed("#{div}", {spec})</script>'


def altair_runtime() -> str:
    import vl_convert

    return f"<script>{vl_convert.javascript_bundle()}</script>"


def bokeh_draw(plot: Plot) -> str:
    from bokeh.embed import components
    from bokeh.models import HoverTool
    from bokeh.plotting import figure

    fig = figure(title=plot.title, width=480, height=320, x_axis_label=plot.x_label,
                 y_axis_label=plot.y_label)  # fmt: skip
    for j, s in enumerate(plot.series):
        colour = s.colour or PALETTE[j % len(PALETTE)]
        if s.line:
            fig.line(list(s.xs), list(s.ys), color=colour, legend_label=s.name,
                     line_dash=DASH["bokeh"][s.dashed % 3])  # fmt: skip
        else:
            fig.scatter(list(s.xs), list(s.ys), color=colour, legend_label=s.name)
    fig.add_tools(HoverTool(tooltips=[("x", "$x"), ("y", "$y")]))
    script, div = components(fig)
    return f"{div}{script}"


def bokeh_runtime() -> str:
    from bokeh.resources import Resources

    # The core bundle only: bokeh.resources.INLINE adds the widgets, tables, GL and MathJax
    # bundles (3.9 MB in all), which these plots do not use.
    return Resources(mode="inline", components=["bokeh"]).render_js()


# What a page needs imported, and the runtime it inlines. plotly.graph_objects loads its trace
# classes on first use: the import makes one.
CANDIDATES: dict[str, tuple[str, Callable[[], str] | None]] = {
    "matplotlib": ("import matplotlib.figure, matplotlib.backends.backend_svg", None),
    "plotly": ("import plotly.graph_objects as go; go.Figure(go.Scatter())", plotly_runtime),
    "altair": ("import altair, vl_convert", altair_runtime),
    "bokeh": ("import bokeh.plotting, bokeh.embed, bokeh.models", bokeh_runtime),
}
DRAWERS = {"plotly": plotly_draw, "altair": altair_draw, "bokeh": bokeh_draw}


def load(path: str) -> Report:
    text = (
        gzip.decompress(Path(path).read_bytes()) if path.endswith(".gz") else Path(path).read_text()
    )
    return Report.from_dict(json.loads(text))


def import_s(statement: str, best_of: int) -> float:
    """Seconds a fresh interpreter takes to run the import ``statement``."""
    code = f"import time; t = time.perf_counter(); {statement}; print(time.perf_counter() - t)"
    return min(
        float(
            subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, check=True
            ).stdout
        )  # fmt: skip
        for _ in range(best_of)
    )


def browser_s(page: Path, best_of: int) -> float:
    """Seconds headless Chromium takes to load ``page`` and run its scripts."""
    best = float("inf")
    for _ in range(best_of):
        with tempfile.TemporaryDirectory() as profile:
            start = time.perf_counter()
            subprocess.run(
                ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", f"--user-data-dir={profile}", "--dump-dom",
                 page.as_uri()],
                capture_output=True, timeout=300, check=True,
            )  # fmt: skip
            best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default=",".join(CANDIDATES), help="comma-separated libraries")
    parser.add_argument("--best-of", type=int, default=3)
    parser.add_argument("out_dir")
    parser.add_argument("pages", nargs="+")
    args = parser.parse_args()
    best_of = args.best_of
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    empty = out / "empty.html"
    empty.write_text("<!doctype html><html><body></body></html>")
    blank = browser_s(empty, best_of)
    original = html.draw
    for name in args.only.split(","):
        statement, runtime = CANDIDATES[name]
        html.draw = DRAWERS.get(name, original)
        print(f"{name}: import {import_s(statement, best_of):.2f} s", flush=True)
        for spec in args.pages:
            reports = [load(p) for p in spec.split("+")]
            render_s = float("inf")
            for _ in range(best_of):
                start = time.perf_counter()
                page = html.render(reports)
                if runtime is not None:
                    page = page.replace("</head>", runtime() + "</head>", 1)
                render_s = min(render_s, time.perf_counter() - start)
            path = out / f"{name}-{Path(spec.split('+')[0]).name.split('.')[0]}.html"
            path.write_text(page)
            print(f"  {spec[-60:]}: {len(page.encode()):,} bytes, python {render_s:.2f} s, "
                  f"browser {browser_s(path, best_of) - blank:.2f} s", flush=True)  # fmt: skip
    html.draw = original


if __name__ == "__main__":
    main()
