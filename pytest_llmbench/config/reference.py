"""The text of docs/configuration.md, generated from the schema (a test keeps it in sync)."""

from __future__ import annotations

from pytest_llmbench.config.fields import field_docs
from pytest_llmbench.config.schema import ExperimentConfig


def _default(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if value in ({}, []):
        return "{}" if isinstance(value, dict) else "[]"
    return f"{value}"


def render_markdown() -> str:
    lines = [
        "# Configuration reference",
        "",
        "Generated from `pytest_llmbench/config/schema.py` and `config/engines.py`; do not edit.",
        "",
        "A config is YAML (`--llm-config FILE`), applied in this order: defaults, then a preset",
        "(`--llm-preset NAME` or a `preset:` key in the file), then the file, then `--llm-set`",
        "overrides and the options `--llm-model`, `--llm-device`, `--llm-repeat`, `--llm-warmup`.",
        "Unknown keys and out-of-range values are usage errors naming the dotted key, one line",
        "each (`FILE: decoder.top_k: -3 is not >= 0`); a file with several errors gets them all",
        "at once, after a line that counts them. A misspelt key gets the key it probably meant",
        "(`decoder.temprature: unknown key; did you mean 'decoder.temperature'?`), and a YAML",
        "syntax error names the line and column to edit.",
        "",
        "| key | type | default | meaning |",
        "|---|---|---|---|",
    ]
    for name, type_text, doc, default in field_docs(ExperimentConfig):
        type_cell = type_text.replace("|", "\\|")
        lines.append(f"| `{name}` | {type_cell} | `{_default(default)}` | {doc} |")
    lines.append("")
    return "\n".join(lines)
