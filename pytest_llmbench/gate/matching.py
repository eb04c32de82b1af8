"""What makes two results, or two pairs of backends, "the same benchmark" across runs."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from pytest_llmbench.results import BenchmarkResult


# -- matching --------------------------------------------------------------------------------------
def model_key(model: str) -> str:
    return Path(model.rstrip("/\\")).name or model


def workload_key(workload: dict[str, Any]) -> str:
    return json.dumps(workload, sort_keys=True, default=str)


def match_key(result: BenchmarkResult) -> tuple[str, str, str, str]:
    """What identifies "the same benchmark" across runs: test id, backend, model, workload."""
    return (result.test_id, result.backend, model_key(result.model), workload_key(result.workload))


def _strip_backend(test_id: str, backend: str) -> str:
    """The test id without the backend's parameter id (``test_x[vllm-8]`` -> ``test_x[8]``)."""
    m = re.search(r"\[([^\]]*)\]", test_id)
    if not m:
        return test_id
    parts = [p for p in m.group(1).split("-") if p != backend]
    inner = "-".join(parts)
    return test_id[: m.start()] + (f"[{inner}]" if inner else "") + test_id[m.end() :]


def loose_key(result: BenchmarkResult) -> tuple[str, str, str]:
    return (
        _strip_backend(result.test_id, result.backend),
        model_key(result.model),
        workload_key(result.workload),
    )


PAIR_TEST_ID = "agreement"  # the test id of gate rows about pairs of backends


def pair_key(entry: dict[str, Any]) -> tuple[tuple[str, ...], str, str]:
    """What identifies "the same pair" across runs: its backends, the model, the probe."""
    return (
        tuple(sorted(str(b) for b in entry.get("backends", []))),
        model_key(str(entry.get("model", ""))),
        str(entry.get("probe", "")),
    )
