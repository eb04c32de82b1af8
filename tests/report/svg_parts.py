"""Reading the plots matplotlib draws into the page: their texts, data lines and colours.

A data line or point is what matplotlib clips to the axes (``clip-path``), in a colour other
than the gridlines' or a step marker's grey; legend handles are not clipped.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from pytest_llmbench.report.draw import GRID

SVG = "{http://www.w3.org/2000/svg}"
NOT_DATA = {GRID, "#555555", "#000000", "#ffffff", "none"}


def svgs(page: str) -> list[ET.Element]:
    root = ET.fromstring(page.replace("<!doctype html>", ""))
    return list(root.iter(f"{SVG}svg"))


def style(element: ET.Element) -> dict[str, str]:
    pairs = (item.split(":", 1) for item in (element.get("style") or "").split(";") if ":" in item)
    return {k.strip(): v.strip() for k, v in pairs}


def texts(svg: ET.Element) -> list[str]:
    return [t.text or "" for t in svg.iter(f"{SVG}text")]


def data_lines(svg: ET.Element) -> list[dict[str, str]]:
    """The style of each line of data (not gridlines, axes or legend handles)."""
    lines = []
    for path in svg.iter(f"{SVG}path"):
        s = style(path)
        if path.get("clip-path") and s.get("fill") == "none" and s.get("stroke") not in NOT_DATA:
            lines.append(s)
    return lines


def data_colours(svg: ET.Element) -> set[str]:
    """Colours of the data: lines, and the markers of points (clipped groups of ``<use>``)."""
    colours = {line["stroke"] for line in data_lines(svg)}
    for group in svg.iter(f"{SVG}g"):
        if group.get("clip-path"):
            colours |= {style(use).get("fill", "") for use in group.iter(f"{SVG}use")}
    return colours - NOT_DATA - {""}


def tick_labels(svg: ET.Element) -> list[str]:
    """The texts that are numbers: the axes' tick labels."""
    return [t for t in texts(svg) if re.fullmatch(r"[−-]?[\d.]+(e[−+-]?\d+)?", t)]
