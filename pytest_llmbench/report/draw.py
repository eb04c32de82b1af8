"""Draws a :class:`~pytest_llmbench.report.figures.Plot` as inline SVG with matplotlib.

Why matplotlib's SVG (docs/reports.md compares it with Plotly, Vega-Lite and Bokeh): the page
stays static, with no script runtime to inline (those add 1-4.8 MB to every report), its tick
locators and gridlines are the reference the others imitate, and a browser draws the result
without running anything. Values are read in the table beside each plot.

matplotlib is imported here, inside :func:`draw`, and only when a report is drawn: ``pytest``
without ``--llm-html`` never pays for it. :func:`require` says before a session starts when it is
missing.
"""

from __future__ import annotations

import importlib.util
import io
import re
import warnings
from html import escape
from typing import TYPE_CHECKING, Any

from pytest_llmbench.errors import ConfigError
from pytest_llmbench.report.figures import PALETTE, TEXT_CHARS, Plot, title_lines, wrap

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.typing import RcKeyType

PACKAGE = "matplotlib"
INSTALL_HINT = "pip install 'pytest-llmbench[html]'"
WIDTH_IN = 5.0  # 360 pt: 480 CSS px, two plots side by side on a laptop screen with their tables
HEIGHT_IN = 3.3
TITLE_LINE_IN = 0.2  # each extra title line makes the figure taller, never the plot smaller
FONT_PT = 9
LEGEND_ROW_IN = 0.19
LEGEND_CHAR_PT = 5.0  # DejaVu Sans at the legend's 8 pt, on average, with room for a fallback
LEGEND_HANDLE_PT = 36.0  # the line sample and the gaps around an entry
GRID = "#e4e4e4"
DASHES = ("-", "--", ":", "-.")
MARKERS = ("o", "s", "^", "D", "v")
_STYLE: dict[RcKeyType, Any] = {
    "svg.fonttype": "none",  # text stays text: searchable, selectable, and small
    "font.size": FONT_PT,
    "font.family": "sans-serif",
    # matplotlib's own font, then the browser's: a shorter list in every text's style than the
    # default eleven names.
    "font.sans-serif": ["DejaVu Sans", "Arial"],
    "legend.fontsize": FONT_PT - 1,
    "path.simplify": True,  # a CDF of 100k samples keeps only the points a reader can see
}


# No RDF block: the date would make pages differ, the rest says nothing to a reader.
_NO_METADATA = {"Date": None, "Creator": None, "Format": None, "Type": None}


def require(option: str = "") -> None:
    """Raise a one-line error naming what to install when matplotlib is missing (``option``, if
    given, is what needs it): said before any benchmark runs, not at the end of a session."""
    if importlib.util.find_spec(PACKAGE) is None:
        raise ConfigError(option, f"needs {PACKAGE}, which is not installed: {INSTALL_HINT}")


def draw(plot: Plot) -> str:
    """``plot`` as one ``<svg>`` element to inline in HTML: its whole title as the accessible
    name and tooltip, ticks and gridlines, the legend below the axes (never over the data)."""
    import matplotlib
    from matplotlib.backends.backend_svg import FigureCanvasSVG
    from matplotlib.figure import Figure

    lines = title_lines(plot.title)
    labels = [s.name for s in plot.series] + [m.label for m in plot.markers]
    columns, rows = legend_grid(labels) if plot.has_points else (1, 1)
    height = HEIGHT_IN + TITLE_LINE_IN * (len(lines) - 1) + LEGEND_ROW_IN * (rows - 1)
    # A layout notice from matplotlib must not reach the session's terminal, nor, under
    # `-W error`, cost the user the page: the drawing is checked by the test suite instead.
    # The salt seeds the ids of clip paths and markers: fixed per title, so the same report gives
    # the same page byte for byte, and two plots of one page never share an id.
    style = {**_STYLE, "svg.hashsalt": f"pytest-llmbench {plot.title}"}
    with matplotlib.rc_context(style), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fig = Figure(figsize=(WIDTH_IN, height), layout="constrained")
        # Centred on the figure, not the axes: a long line keeps clear of both edges.
        fig.suptitle("\n".join(lines), fontweight="bold", fontsize=FONT_PT + 1)
        if plot.has_points:
            _axes(fig, plot, columns)
        else:
            _said(fig, plot)
        out = io.StringIO()
        FigureCanvasSVG(fig).print_svg(out, metadata=_NO_METADATA)
    return _inline(out.getvalue(), plot.title)


def legend_grid(labels: list[str]) -> tuple[int, int]:
    """Columns and rows of the legend: as many columns (at most 3) as its longest label lets fit
    across the figure, so that no entry runs past the edge; the figure grows by a row's height
    for each row after the first, so that a long legend never squeezes the plot."""
    longest = max((len(label) for label in labels), default=0)
    entry_pt = LEGEND_HANDLE_PT + LEGEND_CHAR_PT * longest
    columns = max(1, min(3, len(labels), int(WIDTH_IN * 72 * 0.95 // entry_pt)))
    return columns, max(1, -(-len(labels) // columns))


def _axes(fig: Figure, plot: Plot, columns: int) -> Axes:
    from matplotlib.ticker import MaxNLocator

    ax = fig.add_subplot()
    ax.set_xlabel(plot.x_label)
    ax.set_ylabel(plot.y_label)
    ax.grid(True, color=GRID, linewidth=0.8)
    ax.set_axisbelow(True)
    if plot.integer_x:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    for i, s in enumerate(plot.series):
        colour = s.colour or PALETTE[i % len(PALETTE)]
        style = DASHES[s.dashed % len(DASHES)]
        # A handful of points (runs, loads) are marked, a CDF is not, unless dashes alone no
        # longer tell its line from another of the same colour (a fifth device, benchmark).
        shape = MARKERS[s.dashed // len(DASHES) % len(MARKERS)]
        few = len(s.xs) <= 12
        if s.line:
            ax.plot(s.xs, s.ys, style, color=colour, label=s.name, linewidth=1.5,
                    marker=shape if few or s.dashed >= len(DASHES) else None,
                    markevery=None if few else max(1, len(s.xs) // 10),
                    markersize=3 if shape == "o" else 4)  # fmt: skip
        else:
            ax.plot(s.xs, s.ys, "o", color=colour, label=s.name, markersize=5)
    for marker in plot.markers:
        ax.axvline(marker.x, color="#555555", linestyle=":", linewidth=1, label=marker.label)
    handles, _ = ax.get_legend_handles_labels()
    if handles:
        fig.legend(loc="outside lower center", ncols=columns, frameon=False)
    return ax


def _said(fig: Figure, plot: Plot) -> None:
    """No points: the reason, wrapped, instead of an empty frame."""
    reason = "\n".join(line.strip() for line in wrap(plot.empty, TEXT_CHARS))
    fig.text(0.5, 0.5, reason, ha="center", va="center", wrap=False)


def _inline(svg: str, title: str) -> str:
    """matplotlib's file, made an element of the page: no XML prolog or DOCTYPE, and the whole
    title as the accessible name and tooltip (the drawn one may be wrapped)."""
    start = svg.index("<svg")
    head_end = svg.index(">", start) + 1
    name = escape(title)
    opening = svg[start:head_end].replace("<svg", f'<svg role="img" aria-label="{name}"', 1)
    body = _BETWEEN_TAGS.sub("><", svg[head_end:].strip())
    # Ids nothing refers to (figure_1, text_3, ...) would repeat in every plot of the page.
    used = set(_REFERENCE.findall(body))
    body = _ID.sub(lambda m: m.group(0) if m.group(1) in used else "", body)
    return f"{opening}<title>{name}</title>{_NEWLINES.sub(' ', body)}"


# matplotlib indents its SVG and breaks path data over lines; a page of 30 plots is a third
# smaller without. No text element holds a newline (each title line is its own element).
_BETWEEN_TAGS = re.compile(r">\s+<")
_NEWLINES = re.compile(r"\s*\n\s*")
_ID = re.compile(r' id="([^"]+)"')
_REFERENCE = re.compile(r'(?:url\(#|href="#)([^")]+)')
