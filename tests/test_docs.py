"""Generated documentation must match its source of truth."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from pytest_llmbench.cli import generated_docs, main

DOCS = Path(__file__).parent.parent / "docs"


@pytest.mark.parametrize("name", sorted(generated_docs()))
def test_generated_doc_is_current(name: str) -> None:
    text = (DOCS / name).read_text()
    assert text == generated_docs()[name], f"docs/{name} is stale: regenerate with `llmbench docs`"


def test_llmbench_docs_writes_them_all(tmp_path: Path) -> None:
    assert main(["docs", str(tmp_path / "out")], io.StringIO()) == 0
    for name, text in generated_docs().items():
        assert (tmp_path / "out" / name).read_text() == text
