from __future__ import annotations

import re
import shutil
import struct
import subprocess
import tempfile
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path

import pytest

from pytest_llmbench.report.figures import backend_colour
from pytest_llmbench.report.html import render, write_html
from tests.report.svg_parts import data_lines, texts
from tests.results.factories import make_report, make_result


def _two_backends():
    return make_report(
        [
            make_result("test_fast", "vllm", (0.5, 0.6, 0.5), (2000.0, 2100.0, 1900.0)),
            make_result("test_slow", "vllm", (0.9, 0.9, 0.9), (500.0, 500.0, 500.0)),
            make_result("test_a", "pytorch", (None, None, None)),
        ]
    )


def test_page_is_well_formed_self_contained_and_never_pools_backends(tmp_path: Path) -> None:
    path = tmp_path / "r.html"
    write_html(path, [_two_backends()])
    page = path.read_text()
    # nothing to fetch: no script, stylesheet, image or font from elsewhere (a namespace is a
    # name, not a fetch)
    unnamespaced = re.sub(r'xmlns(:\w+)?="[^"]*"', "", page)
    assert "http://" not in unnamespaced and "https://" not in unnamespaced
    assert "<script" not in page and "<link" not in page and "@import" not in page
    assert "<img" not in page and 'href="#' in page  # references stay inside the page
    root = ET.fromstring(page.replace("<!doctype html>", ""))
    titles = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert "vllm: energy vs throughput" in titles
    assert "pytorch: energy vs throughput" in titles
    # pytorch has no energy: its windows say why, and its frontier borrows no vllm points
    assert "unavailable: NVML not found" in page
    assert page.count(">yes<") == 1  # test_fast dominates test_slow within vllm


def _png_has_two_colours(png: bytes) -> bool:
    """Decode enough of a PNG to see whether it is more than one flat colour."""
    pos, idat, header = 8, b"", b""
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        kind = png[pos + 4 : pos + 8]
        data = png[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = data
        elif kind == b"IDAT":
            idat += data
        pos += 12 + length
    width = struct.unpack(">I", header[:4])[0]
    raw = zlib.decompress(idat)
    bpp = {2: 3, 6: 4}[header[9]]
    stride = 1 + width * bpp
    rows = [raw[i + 1 : i + stride] for i in range(0, len(raw), stride)]
    # filter bytes aside, a flat image's first row is constant and later rows are zero deltas
    return len({bytes(r) for r in rows}) > 2 or len(set(rows[0])) > bpp


def test_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("chromium not installed (ci/setup.sh installs it where apt-get is available)")
    path = tmp_path / "report.html"
    write_html(path, [_two_backends()])
    shot = tmp_path / "html-report.png"  # under tmp: out/ holds the user's reports
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--enable-logging=stderr",
        "--v=0",
    ]
    with tempfile.TemporaryDirectory() as profile:
        dom = subprocess.run(
            [chromium, *flags, f"--user-data-dir={profile}", "--dump-dom", path.as_uri()],
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        )
    assert "CONSOLE" not in dom.stderr, dom.stderr
    assert dom.stdout.count("<svg") >= 2
    # each energy window's power plot survives the browser's parsing, with its line
    power = "benchmarks/test_bench.py::test_fast[vllm]: power, repetition 1 (nvml-counter)"
    (drawn,) = re.findall(rf'<svg[^>]*aria-label="{re.escape(power)}".*?</svg>', dom.stdout, re.S)
    plotted = ET.fromstring(drawn)  # as the browser serialised it
    assert data_lines(plotted) and "power (W)" in texts(plotted)
    # pytorch's windows say why, once (not per window), and so does its energy-vs-throughput box
    assert dom.stdout.count("unavailable: NVML not found") == 2
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [
                chromium,
                *flags,
                f"--user-data-dir={profile}",
                f"--screenshot={shot}",
                "--window-size=1200,900",
                path.as_uri(),
            ],
            capture_output=True,
            timeout=300,
            check=True,
        )
    assert _png_has_two_colours(shot.read_bytes())


def _png_rgb(png: bytes) -> list[tuple[int, int, int]]:
    """Every pixel of an 8-bit RGB(A), non-interlaced PNG (what Chromium writes), as RGB."""
    pos, idat, header = 8, b"", b""
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        kind, data = png[pos + 4 : pos + 8], png[pos + 8 : pos + 8 + length]
        header = data if kind == b"IHDR" else header
        idat += data if kind == b"IDAT" else b""
        pos += 12 + length
    width = struct.unpack(">I", header[:4])[0]
    assert header[8] == 8 and header[12] == 0, "8-bit, non-interlaced only"
    bpp = {2: 3, 6: 4}[header[9]]
    raw, stride = zlib.decompress(idat), width * bpp
    prior, pixels = bytearray(stride), []
    for start in range(0, len(raw), stride + 1):
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prior[i], prior[i - bpp] if i >= bpp else 0
            if kind == 1:
                line[i] = (line[i] + a) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + b) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pred) & 0xFF
        pixels += [(line[i], line[i + 1], line[i + 2]) for i in range(0, stride, bpp)]
        prior = line
    return pixels


def _search_result():
    import dataclasses

    points = [
        {"load": load, "attainment": a, "meets": a >= 0.9, "goodput": g, "repetitions": 1}
        for load, a, g in ((1.0, 1.0, 1.0), (2.0, 0.95, 1.9), (4.0, 0.5, 2.0))
    ]
    search = {"over": "rate", "outcome": "peak goodput 1.9 req/s at 2 req/s", "points": points}
    return dataclasses.replace(make_result("test_peak", "openai"), search=search)


# One plot of each type, by title, and the colour its data is drawn in (None: a plot that has
# nothing to draw says why, in text only).
_PLOT_TYPES = {
    "energy vs throughput": ("vllm: energy vs throughput", "vllm"),
    "latency CDF": ("benchmarks/test_bench.py::test_fast[vllm]: TTFT CDF (every sample)", "vllm"),
    "power over a window": ("benchmarks/test_bench.py::test_fast[vllm]: power, repetition 1 "
                            "(nvml-counter)", "vllm"),
    "trend run over run": ("vllm: output throughput (tok/s) run over run", "vllm"),
    "goodput by load": ("benchmarks/test_bench.py::test_peak[openai]: goodput by load", "openai"),
    "no data, with the reason": ("pytorch: energy vs throughput", None),
}  # fmt: skip
_BOX_PX = (480, 420)  # each plot's place in the screenshot: wider and taller than any plot


def test_each_plot_type_is_drawn_by_headless_chromium(tmp_path: Path) -> None:
    """Every kind of plot the page has, taken from the page as written and rasterised by
    Chromium: its data appears in its backend's colour above the legend; a plot with nothing
    to draw shows its text and no data colour."""
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("chromium not installed (ci/setup.sh installs it where apt-get is available)")
    later = make_report(
        [make_result("test_fast", "vllm", (0.5, 0.5, 0.5), (2500.0, 2400.0, 2600.0))],
        started_at="2025-01-02T00:00:00+00:00",
    )
    first = _two_backends()
    first = make_report([*first.results, _search_result()], started_at="2025-01-01T00:00:00+00:00")
    page = render([first, later])
    width, height = _BOX_PX
    boxes = []
    for title, _ in _PLOT_TYPES.values():
        drawn = re.findall(rf'<svg[^>]*aria-label="{re.escape(title)}".*?</svg>', page, re.S)[0]
        boxes.append(
            f'<div style="width:{width}px;height:{height}px;overflow:hidden">{drawn}</div>'
        )
    path = tmp_path / "plots.html"
    path.write_text(f'<!doctype html><html><body style="margin:0">{"".join(boxes)}</body></html>')
    shot = tmp_path / "plots.png"
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--hide-scrollbars",
             f"--user-data-dir={profile}", f"--screenshot={shot}",
             f"--window-size={width},{height * len(boxes)}", path.as_uri()],
            capture_output=True, timeout=300, check=True,
        )  # fmt: skip
    pixels = _png_rgb(shot.read_bytes())
    assert len(pixels) == width * height * len(boxes)
    for n, (kind, (_, backend)) in enumerate(_PLOT_TYPES.items()):
        # the upper three quarters of the box: title and axes, above the legend's swatches
        box = pixels[n * width * height : (n * height + height * 3 // 4) * width]
        dark = sum(1 for px in box if max(px) < 100)
        assert dark > 200, f"{kind}: {dark} dark pixels: no title or text was drawn"
        colours = {b: _near(box, backend_colour(b)) for b in ("vllm", "openai", "pytorch")}
        if backend is None:
            assert not any(colours.values()), f"{kind}: data colour in a plot with no data"
        else:
            assert colours[backend] > 40, f"{kind}: {colours[backend]} pixels of {backend}'s colour"


def _near(pixels: list[tuple[int, int, int]], colour: str) -> int:
    want = tuple(int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return sum(1 for px in pixels if sum(abs(a - b) for a, b in zip(px, want, strict=True)) < 60)


def test_render_of_nothing_is_still_a_page() -> None:
    assert "<h1>pytest-llmbench report</h1>" in render([])


def test_trends_and_comparison_render_in_headless_chromium(tmp_path: Path) -> None:
    import dataclasses
    import json

    from pytest_llmbench.gate import compare, parse_fail_on
    from pytest_llmbench.results import Report

    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("chromium not installed (ci/setup.sh installs it where apt-get is available)")
    base = _two_backends()
    current = make_report([make_result("test_a", "pytorch", (0.7, 0.7, 0.7))])
    data = json.loads(current.to_json())
    history = [
        dataclasses.replace(base, started_at=f"2025-01-01T00:0{i}:00+00:00") for i in range(3)
    ]
    data["comparison"] = compare(history, current, parse_fail_on("output_throughput:-5%")).to_dict()
    path = tmp_path / "trend.html"
    write_html(path, [base, Report.from_dict(data)])
    with tempfile.TemporaryDirectory() as profile:
        dom = subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-background-networking", "--disable-component-update",
             f"--user-data-dir={profile}", "--dump-dom", path.as_uri()],
            capture_output=True, text=True, timeout=300, check=True,
        )  # fmt: skip
    html = dom.stdout
    assert "Run over run" in html and "Comparison with" in html
    assert "pytorch: output throughput (tok/s) run over run" in html
    trend_title = "vllm: output throughput (tok/s) run over run"
    (drawn,) = re.findall(rf'<svg[^>]*aria-label="{re.escape(trend_title)}".*?</svg>', html, re.S)
    trend = ET.fromstring(drawn)
    assert {line["stroke"] for line in data_lines(trend)} == {backend_colour("vllm")}
