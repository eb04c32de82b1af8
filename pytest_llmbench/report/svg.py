"""Inline SVG plots written by hand: the HTML report stays one small file with nothing to fetch."""

from __future__ import annotations

import math
import re
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
_TITLE_CHARS = 58  # what fits across the plot in bold; longer titles wrap onto more lines
_TEXT_CHARS = 64  # a line of plain text across the plot
_LINE_PX = 18
_GRID = "#e4e4e4"


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


def nice_step(span: float, target: int = 5) -> float:
    """The step of 1, 2 or 5 times a power of ten that cuts ``span`` into about ``target``
    intervals (Heckbert's "nice numbers", as plotting libraries choose axis ticks)."""
    raw = span / target
    power = 10.0 ** math.floor(math.log10(raw))
    for factor in (1.0, 2.0, 5.0, 10.0):
        if raw <= factor * power * 1.0000001:
            return factor * power
    return 10.0 * power  # not reached: raw < 10 * power


def nice_ticks(lo: float, hi: float, target: int = 5) -> list[float]:
    """Evenly spaced round tick values covering [lo, hi]: the first at or below ``lo``, the last
    at or above ``hi`` (the axis is stretched to them, so every tick has a gridline)."""
    if not hi > lo:
        raise ValueError(f"empty range [{lo}, {hi}]")
    step = nice_step(hi - lo, target)
    first = math.floor(lo / step + 1e-9)
    last = math.ceil(hi / step - 1e-9)
    # Multiples of the step, computed from integers so that 0.1 * 3 prints as 0.3.
    return [_round(i * step, step) for i in range(first, last + 1)]


def _round(value: float, step: float) -> float:
    digits = max(0, -math.floor(math.log10(step))) + 1
    rounded = round(value, digits)
    return 0.0 if rounded == 0 else rounded  # no "-0"


def tick_label(value: float, step: float) -> str:
    """``value`` with as many decimals as the step needs (0.25 -> "0.25", 2000 -> "2000");
    in scientific notation, with the digits the step needs, where that would be long."""
    if value == 0:
        return "0"
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    if decimals <= 6 and abs(value) < 1e7:
        text = f"{value:.{decimals}f}"
        return text.rstrip("0").rstrip(".") if "." in text else text
    digits = max(2, math.floor(math.log10(abs(value))) - math.floor(math.log10(step)) + 1)
    return f"{value:.{digits}g}"


def wrap(text: str, width: int) -> list[str]:
    """``text`` in lines of at most ``width`` characters, broken after a space or a path or id
    separator (``/``, ``:``, ``,``) or before a test's parameters (``[``) where possible, inside
    a word only where it is longer than a line. The lines joined give ``text`` back: nothing is
    cut."""
    pieces = [p for p in re.split(r"(?<=[ /:,])|(?=\[)", text) if p]
    lines: list[str] = []
    current = ""
    for piece in pieces:
        while len(piece) > width:  # a word longer than a line: split it where it must be
            room = width - len(current)
            if room <= 0:
                lines.append(current)
                current, room = "", width
            current += piece[:room]
            piece = piece[room:]
        if len(current) + len(piece.rstrip()) > width and current:
            lines.append(current)
            current = ""
        current += piece
    if current or not lines:
        lines.append(current)
    return lines


def title_lines(title: str) -> list[str]:
    """The title as drawn: whole, wrapped over as many lines as it needs (a test id with its
    file path, then the plot's subject), so a screenshot of one plot says which benchmark it
    is. The whole title is also the plot's tooltip and accessible name."""
    return wrap(title, _TITLE_CHARS)


def plot(
    title: str, x_label: str, y_label: str, series: Sequence[Series], empty: str = "no data"
) -> str:
    """One plot as an ``<svg>`` element: title, labelled axes (units in the labels) with round
    ticks and gridlines, legend. ``empty`` is what it says when no series has a point (say why
    there is nothing to plot), rather than an empty frame. The size is fixed; a long title
    takes room from the plotting area, never from the title."""
    lines = title_lines(title)
    m = dict(_MARGIN_PX)
    m["top"] += _LINE_PX * (len(lines) - 1)
    inner_w = WIDTH_PX - m["left"] - m["right"]
    inner_h = HEIGHT_PX - m["top"] - m["bottom"]
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH_PX}" height="{HEIGHT_PX}" '
        f'viewBox="0 0 {WIDTH_PX} {HEIGHT_PX}" role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        *(
            f'<text x="{WIDTH_PX / 2}" y="{20 + _LINE_PX * i}" text-anchor="middle" '
            f'font-weight="bold" xml:space="preserve">{escape(line)}</text>'
            for i, line in enumerate(lines)
        ),
    ]
    all_x = [x for s in series for x in s.xs]
    all_y = [y for s in series for y in s.ys]
    if not all_x:
        said = wrap(empty, _TEXT_CHARS)
        top = m["top"] + inner_h / 2 - _LINE_PX * (len(said) - 1) / 2
        parts += [
            f'<text x="{WIDTH_PX / 2}" y="{top + _LINE_PX * i:.1f}" text-anchor="middle">'
            f"{escape(line.strip())}</text>"
            for i, line in enumerate(said)
        ]
        parts.append("</svg>")
        return "".join(parts)
    x_lo, x_hi = _span(all_x)
    y_lo, y_hi = _span(all_y)
    x_ticks = nice_ticks(x_lo, x_hi)
    y_ticks = nice_ticks(y_lo, y_hi)
    x_lo, x_hi, y_lo, y_hi = x_ticks[0], x_ticks[-1], y_ticks[0], y_ticks[-1]
    x_step, y_step = x_ticks[1] - x_ticks[0], y_ticks[1] - y_ticks[0]

    def px(x: float) -> float:
        return m["left"] + (x - x_lo) / (x_hi - x_lo) * inner_w

    def py(y: float) -> float:
        return m["top"] + inner_h - (y - y_lo) / (y_hi - y_lo) * inner_h

    bottom = m["top"] + inner_h
    right = m["left"] + inner_w
    for x in x_ticks:
        parts += [
            f'<line x1="{px(x):.1f}" y1="{m["top"]}" x2="{px(x):.1f}" y2="{bottom}" '
            f'stroke="{_GRID}"/>',
            f'<text x="{px(x):.1f}" y="{bottom + 16}" text-anchor="middle">'
            f"{tick_label(x, x_step)}</text>",
        ]
    for y in y_ticks:
        parts += [
            f'<line x1="{m["left"]}" y1="{py(y):.1f}" x2="{right}" y2="{py(y):.1f}" '
            f'stroke="{_GRID}"/>',
            f'<text x="{m["left"] - 4}" y="{py(y) + 4:.1f}" text-anchor="end">'
            f"{tick_label(y, y_step)}</text>",
        ]
    parts += [
        f'<line x1="{m["left"]}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="#000"/>',
        f'<line x1="{m["left"]}" y1="{m["top"]}" x2="{m["left"]}" y2="{bottom}" stroke="#000"/>',
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
            f'<text x="{right}" y="{m["top"] + 12 * (i + 1)}" text-anchor="end" '
            f'fill="{colour}">{escape(s.name)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
