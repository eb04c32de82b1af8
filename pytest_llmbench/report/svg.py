"""Inline SVG plots written by hand: the HTML report stays one small file with nothing to fetch."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

WIDTH_PX = 480
HEIGHT_PX = 320
_MARGIN_PX = {"left": 64, "right": 16, "top": 32, "bottom": 48}
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf")
# One colour per backend in every plot of every report, so a reader learns them once.
BACKEND_COLOURS = {
    "pytorch": "#1f77b4",
    "vllm": "#d62728",
    "sglang": "#2ca02c",
    "tensorrt": "#9467bd",
    "openai": "#ff7f0e",
    "echo": "#8c564b",
}
_DASHES = ("", "6 3", "2 2", "8 3 2 3")
_TITLE_CHARS = 58  # what fits across the plot in bold; longer titles keep their informative end


def backend_colour(backend: str) -> str:
    """The backend's fixed colour; other backends get one from their name (stable across runs)."""
    import zlib

    known = BACKEND_COLOURS.get(backend)
    return known or PALETTE[zlib.crc32(backend.encode()) % len(PALETTE)]


@dataclass(frozen=True)
class Series:
    """Points of one backend (or one test); ``line`` joins them in order (CDFs, frontiers)."""

    name: str
    xs: Sequence[float]
    ys: Sequence[float]
    line: bool = False
    colour: str | None = None  # None: the palette's, by position
    dashed: int = 0  # index into a few dash patterns: tells apart lines of one colour


def _span(values: Sequence[float]) -> tuple[float, float]:
    lo, hi = min(values), max(values)
    if hi == lo:  # one point or a flat line still gets an axis
        pad = abs(lo) * 0.1 or 1.0
        return lo - pad, hi + pad
    return lo, hi


def _tick(value: float) -> str:
    return f"{value:.3g}"


def shown_title(title: str) -> str:
    """The title as drawn: a long one (a test id with its file path) is cut at the front, where
    the path is, so that the test's name and the plot's subject stay; the whole title is the
    plot's tooltip and accessible name."""
    if len(title) <= _TITLE_CHARS:
        return title
    return "\u2026" + title[-(_TITLE_CHARS - 1) :]


def plot(title: str, x_label: str, y_label: str, series: Sequence[Series]) -> str:
    """One plot as an ``<svg>`` element: title, labelled axes (units in the labels), legend.

    With no points it still draws its title and says so, rather than an empty frame.
    """
    m = _MARGIN_PX
    inner_w = WIDTH_PX - m["left"] - m["right"]
    inner_h = HEIGHT_PX - m["top"] - m["bottom"]
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH_PX}" height="{HEIGHT_PX}" '
        f'viewBox="0 0 {WIDTH_PX} {HEIGHT_PX}" role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f'<text x="{WIDTH_PX / 2}" y="20" text-anchor="middle" font-weight="bold">'
        f"{escape(shown_title(title))}</text>",
    ]
    all_x = [x for s in series for x in s.xs]
    all_y = [y for s in series for y in s.ys]
    if not all_x:
        parts.append(
            f'<text x="{WIDTH_PX / 2}" y="{HEIGHT_PX / 2}" text-anchor="middle">no data</text>'
            "</svg>"
        )
        return "".join(parts)
    x_lo, x_hi = _span(all_x)
    y_lo, y_hi = _span(all_y)

    def px(x: float) -> float:
        return m["left"] + (x - x_lo) / (x_hi - x_lo) * inner_w

    def py(y: float) -> float:
        return m["top"] + inner_h - (y - y_lo) / (y_hi - y_lo) * inner_h

    bottom = m["top"] + inner_h
    parts += [
        f'<line x1="{m["left"]}" y1="{bottom}" x2="{m["left"] + inner_w}" y2="{bottom}" '
        'stroke="#000"/>',
        f'<line x1="{m["left"]}" y1="{m["top"]}" x2="{m["left"]}" y2="{bottom}" stroke="#000"/>',
        f'<text x="{m["left"]}" y="{bottom + 16}" text-anchor="start">{_tick(x_lo)}</text>',
        f'<text x="{m["left"] + inner_w}" y="{bottom + 16}" text-anchor="end">{_tick(x_hi)}</text>',
        f'<text x="{m["left"] - 4}" y="{bottom}" text-anchor="end">{_tick(y_lo)}</text>',
        f'<text x="{m["left"] - 4}" y="{m["top"] + 10}" text-anchor="end">{_tick(y_hi)}</text>',
        f'<text x="{m["left"] + inner_w / 2}" y="{HEIGHT_PX - 8}" text-anchor="middle">'
        f"{escape(x_label)}</text>",
        f'<text transform="translate(14 {m["top"] + inner_h / 2}) rotate(-90)" '
        f'text-anchor="middle">{escape(y_label)}</text>',
    ]
    for i, s in enumerate(series):
        colour = s.colour or PALETTE[i % len(PALETTE)]
        dash = _DASHES[s.dashed % len(_DASHES)]
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        coords = [(px(x), py(y)) for x, y in zip(s.xs, s.ys, strict=True)]
        if s.line and len(coords) > 1:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
            parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}"{dash_attr}/>')
        else:
            parts += [
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{colour}"/>' for x, y in coords
            ]
        parts.append(
            f'<text x="{m["left"] + inner_w}" y="{m["top"] + 12 * (i + 1)}" text-anchor="end" '
            f'fill="{colour}">{escape(s.name)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
