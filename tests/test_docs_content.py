"""User-facing text speaks of this project alone: no files, tools or paths a user does not have."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# README, docs (measurement logs included) and the scripts and configs the docs tell users to run.
USER_FACING = ["README.md", "docs", "ci/gpu", "configs"]

FORBIDDEN = {
    "a development notes file": re.compile(r"\bGPU\.md\b"),
    "a path outside the repository": re.compile(r"\bshared/|/work/|/tmp/site\b"),
    "a staging script": re.compile(r"stage-vllm"),
    "the machine-lending tool": re.compile(r"`device` tool|\blent\b", re.IGNORECASE),
    "a PYTHONPATH hack instead of an install": re.compile(r"\bPYTHONPATH\b"),
}


def user_files() -> list[Path]:
    files: list[Path] = []
    for name in USER_FACING:
        path = ROOT / name
        found = [path] if path.is_file() else sorted(path.rglob("*"))
        files.extend(p for p in found if p.is_file())
    return files


def text_of(path: Path) -> str:
    data = path.read_bytes()
    if path.suffix == ".gz":
        data = gzip.decompress(data)
    return data.decode("utf-8", errors="replace")


def test_the_scan_covers_the_docs() -> None:
    names = {p.relative_to(ROOT).as_posix() for p in user_files()}
    assert {"README.md", "docs/performance.md", "docs/energy.md"} <= names


@pytest.mark.parametrize("what", sorted(FORBIDDEN))
def test_no_internal_references(what: str) -> None:
    pattern = FORBIDDEN[what]
    hits = [
        f"{path.relative_to(ROOT)}:{lineno}: {line.strip()}"
        for path in user_files()
        for lineno, line in enumerate(text_of(path).splitlines(), start=1)
        if pattern.search(line)
    ]
    assert not hits, f"{what} in user-facing text:\n" + "\n".join(hits)
