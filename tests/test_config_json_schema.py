"""docs/schema/config.json: the config's JSON Schema agrees with the validator.

Every shipped preset and example is valid under both; each kind of mistake the schema can see
(an unknown or misspelt key, a wrong type, a value outside its bounds or its allowed values) is
rejected by both, at the same dotted key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from pytest_llmbench.config.fields import build, field_docs
from pytest_llmbench.config.json_schema import config_schema
from pytest_llmbench.config.schema import ExperimentConfig
from pytest_llmbench.errors import ConfigError, ConfigErrors

jsonschema = pytest.importorskip("jsonschema")
ROOT = Path(__file__).parents[1]
SHIPPED = sorted((ROOT / "configs").rglob("*.yaml"))


def validator() -> Any:
    schema = config_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def schema_errors(data: dict[str, Any]) -> set[str]:
    """The dotted keys the schema rejects (an unknown key is named by its own path)."""
    out = set()
    for error in validator().iter_errors(data):
        path = ".".join(str(p) for p in error.absolute_path)
        if error.validator == "additionalProperties":
            extra = set(error.instance) - set(error.schema["properties"])
            out.update(f"{path}.{key}" if path else key for key in extra)
        else:
            out.add(path)
    return out


def validator_errors(data: dict[str, Any]) -> set[str]:
    try:
        build(ExperimentConfig, data)
    except ConfigErrors as exc:
        return {e.field for e in exc.errors}
    except ConfigError as exc:
        return {exc.field}
    return set()


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_every_shipped_config_is_valid_under_the_schema(path: Path) -> None:
    data = yaml.safe_load(path.read_text()) or {}
    assert schema_errors(data) == set()
    data.pop("preset", None)
    assert validator_errors(data) == set()


BAD = [
    {"decoder": {"temprature": 0.5}},  # misspelt key
    {"max_output_tokens": "many"},  # wrong type
    {"max_output_tokens": 0},  # below its minimum
    {"decoder": {"top_p": 0}},  # not above its exclusive minimum
    {"decoder": {"top_p": 1.5}},  # above its maximum
    {"fp_precision": "float8"},  # not an allowed value
    {"decoder": {"do_sample": "yes"}},  # not a boolean
    {"workload": {"num_prompts_sweep": "8"}},  # not a list
    {"decoder": {"top_k": -3}, "unknown_section": {}},  # two mistakes, both named
]


@pytest.mark.parametrize("data", BAD, ids=[str(d) for d in BAD])
def test_schema_and_validator_reject_the_same_mistakes_at_the_same_key(
    data: dict[str, Any],
) -> None:
    rejected = schema_errors(data)
    assert rejected
    assert rejected == validator_errors(data)


def test_every_documented_key_is_in_the_schema_with_its_description() -> None:
    schema = config_schema()
    for name, _, doc, _ in field_docs(ExperimentConfig):
        node = schema
        for part in name.split("."):
            node = node["properties"][part]
        assert node["description"] == doc, name


def test_llmbench_docs_writes_the_schema(tmp_path: Path) -> None:
    from pytest_llmbench.cli import main

    assert main(["docs", str(tmp_path)]) == 0
    written = (tmp_path / "schema" / "config.json").read_text()
    assert written == (ROOT / "docs" / "schema" / "config.json").read_text()
