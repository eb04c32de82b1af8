"""Generated documentation must match its source of truth."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_llmbench import compat
from pytest_llmbench.config import reference

DOCS = Path(__file__).parent.parent / "docs"


@pytest.mark.parametrize(
    ("name", "render"),
    [("compatibility.md", compat.render_markdown), ("configuration.md", reference.render_markdown)],
)
def test_generated_doc_is_current(name: str, render: object) -> None:
    text = (DOCS / name).read_text()
    assert text == render(), (  # type: ignore[operator]
        f"docs/{name} is stale: regenerate with `llmbench docs` "
        "(or python -c 'from pytest_llmbench...render_markdown')"
    )
