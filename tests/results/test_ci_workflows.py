"""The shipped GitHub Actions workflows: well-formed; the GPU one gates as docs/ci.md says."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from pytest_llmbench.gate import parse_fail_on

WORKFLOWS = Path(__file__).parents[2] / "ci" / "workflows"

# The part of GitHub's workflow syntax we rely on; enough to catch a misplaced key or a step
# with neither `uses` nor `run`.
STEP = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "id": {"type": "string"},
        "if": {"type": ["string", "boolean"]},
        "uses": {"type": "string", "pattern": r"^[\w.-]+/[\w./-]+@[\w.-]+$"},
        "run": {"type": "string", "minLength": 1},
        "with": {"type": "object"},
        "env": {"type": "object"},
        "shell": {"type": "string"},
        "continue-on-error": {"type": ["boolean", "string"]},
        "timeout-minutes": {"type": "integer"},
        "working-directory": {"type": "string"},
    },
    "additionalProperties": False,
    "oneOf": [{"required": ["uses"]}, {"required": ["run"]}],
}
WORKFLOW_SCHEMA = {
    "type": "object",
    "required": ["name", "on", "jobs"],
    "properties": {
        "name": {"type": "string"},
        "on": {"type": ["object", "string", "array"]},
        "permissions": {"type": ["object", "string"]},
        "env": {"type": "object"},
        "concurrency": {},
        "jobs": {
            "type": "object",
            "minProperties": 1,
            "additionalProperties": {
                "type": "object",
                "required": ["runs-on", "steps"],
                "properties": {
                    "name": {"type": "string"},
                    "runs-on": {
                        "oneOf": [
                            {"type": "string"},
                            {"type": "array", "items": {"type": "string"}},
                        ]
                    },
                    "steps": {"type": "array", "minItems": 1, "items": STEP},
                    "strategy": {"type": "object"},
                    "env": {"type": "object"},
                    "needs": {},
                    "if": {"type": "string"},
                    "timeout-minutes": {"type": "integer"},
                    "concurrency": {},
                    "permissions": {},
                },
                "additionalProperties": False,
            },
        },
    },
    "additionalProperties": False,
}


def load(name: str) -> dict[str, Any]:
    data = yaml.safe_load((WORKFLOWS / name).read_text())
    if True in data:  # YAML 1.1 reads the key `on` as the boolean true
        data["on"] = data.pop(True)
    return data


@pytest.mark.parametrize("name", ["gpu-benchmarks.yml", "cpu.yml"])
def test_workflow_structure(name: str) -> None:
    jsonschema.validate(load(name), WORKFLOW_SCHEMA)


def test_gpu_workflow_runs_each_backend_on_self_hosted_gpus_and_gates() -> None:
    wf = load("gpu-benchmarks.yml")
    job = wf["jobs"]["benchmark"]
    assert job["runs-on"] == ["self-hosted", "linux", "gpu"]
    backends = job["strategy"]["matrix"]["backend"]
    # verified engines by default; sglang/tensorrt only behind the named opt-in
    assert '\'["pytorch","vllm"]\'' in backends and "inputs.unverified_backends" in backends
    assert wf["on"]["workflow_dispatch"]["inputs"]["unverified_backends"]["default"] is False
    assert job["strategy"]["fail-fast"] is False
    runs = "\n".join(step.get("run", "") for step in job["steps"])
    assert "pytest benchmarks/test_throughput.py --llm-backend ${{ matrix.backend }}" in runs
    assert "--llm-preset gpu-gate" in runs and "--llm-energy nvml" in runs
    assert "--llm-min-energy-window 30" in runs  # >= 3 s windows on a 10 Hz counter
    assert "--shape llama-8b" in runs  # the gate workload's model (docs/ci.md)
    assert "--llm-compare" in runs and "--llm-fail-on" in runs
    # the history is main's last N good runs, not one
    assert '--branch main --status success --limit "$LLMBENCH_HISTORY_RUNS"' in runs
    assert int(wf["env"]["LLMBENCH_HISTORY_RUNS"]) >= 10
    parse_fail_on(wf["env"]["LLMBENCH_FAIL_ON"])  # the rules it ships are valid
    upload = next(
        s for s in job["steps"] if s.get("uses", "").startswith("actions/upload-artifact")
    )
    assert upload["if"] == "always()"  # a failing gate still leaves its report
    assert upload["with"]["name"] == "llmbench-${{ matrix.backend }}"


def test_cpu_workflow_tests_and_lints() -> None:
    wf = load("cpu.yml")
    assert wf["jobs"]["test"]["runs-on"] == "ubuntu-latest"
    runs = "\n".join(s.get("run", "") for job in wf["jobs"].values() for s in job["steps"])
    assert "pytest tests benchmarks" in runs and "ruff check" in runs and "mypy" in runs


@pytest.mark.skipif(shutil.which("actionlint") is None, reason="actionlint is not installed")
@pytest.mark.parametrize("name", ["gpu-benchmarks.yml", "cpu.yml"])
def test_actionlint(name: str) -> None:
    # self-hosted label "gpu" is custom: tell actionlint about it
    config = WORKFLOWS.parent / "actionlint.yaml"
    args = ["actionlint", "-config-file", str(config)] if config.exists() else ["actionlint"]
    done = subprocess.run([*args, str(WORKFLOWS / name)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
