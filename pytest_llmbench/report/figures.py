"""What a plot of the HTML report shows, apart from how it is drawn: its data, labels and colours.

The page (:mod:`pytest_llmbench.report.html`) builds these; a plotting library draws them
(:mod:`pytest_llmbench.report.draw`). Keeping the two apart keeps this module importable without
the library, and the colours and title wrapping testable as plain data.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf")
# One colour per backend in every plot of every report, so a reader learns them once.
BACKEND_COLOURS = {
    "pytorch": "#1f77b4",
    "vllm": "#d62728",
    "sglang": "#2ca02c",
    "tensorrt": "#9467bd",
    "openai": "#ff7f0e",
    "echo": "#8c564b",
    "llamacpp": "#17becf",
}
# What fits across a plot in its bold title font (about 6.5 pt a character, 360 pt wide, with
# room for a wider fallback font); longer titles wrap.
TITLE_CHARS = 50
TEXT_CHARS = 64  # a line of plain text across a plot (the reason for no data)


def backend_colour(backend: str) -> str:
    """The backend's fixed colour; other backends get one from their name (stable across runs)."""
    return BACKEND_COLOURS.get(backend) or PALETTE[zlib.crc32(backend.encode()) % len(PALETTE)]


@dataclass(frozen=True)
class Series:
    """Points of one backend, test or device; ``line`` joins them in order (CDFs, frontiers)."""

    name: str
    xs: Sequence[float]
    ys: Sequence[float]
    line: bool = False
    colour: str | None = None  # None: the palette's, by position
    dashed: int = 0  # index into a few dash patterns: tells apart lines of one colour


@dataclass(frozen=True)
class Marker:
    """A vertical line at ``x`` with a short label: where the gate found a step in a trend."""

    x: float
    label: str


@dataclass(frozen=True)
class Plot:
    """One plot: the title says which benchmark it is, the axis labels carry units, ``empty``
    says why there is nothing to draw when no series has a point."""

    title: str
    x_label: str
    y_label: str
    series: Sequence[Series]
    empty: str = "no data"
    integer_x: bool = False  # run numbers: ticks on whole numbers only
    markers: Sequence[Marker] = field(default_factory=tuple)

    @property
    def has_points(self) -> bool:
        return any(len(s.xs) for s in self.series)


def wrap(text: str, width: int) -> list[str]:
    """``text`` in lines of at most ``width`` characters, broken after a space or a path or id
    separator (``/``, ``:``, ``,``) or before a test's parameters (``[``) where possible, inside
    a word only where it is longer than a line. The lines joined give ``text`` back: nothing is
    cut. (textwrap breaks only at spaces and hyphens; a test id has neither.)"""
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
    """The title as drawn: whole, over as many lines as it needs (a test id with its file path,
    then the plot's subject), so a screenshot of one plot says which benchmark it is."""
    return wrap(title, TITLE_CHARS)
