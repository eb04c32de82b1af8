"""The built wheel, installed without the checkout, is the whole plugin.

Built as a user builds it (``python -m build``: the sdist, then the wheel from the sdist) from a
copy of the checkout, installed (not editable) into a fresh virtual environment that borrows
only the dependencies of this one, and run from a folder with nothing of the repository in it
but a copy of ``benchmarks/``. A file missing from ``pyproject.toml``'s package list or package
data fails here, not on a user's machine. The build runs without isolation, on this
environment's setuptools (the ``dev`` extra), so no network is needed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "pytest_llmbench"
PRESETS = ROOT / "configs" / "presets"  # installed as pytest_llmbench.presets
NOT_SOURCE = (".git", ".venv", "venv", "out", "build", "dist", ".llmbench", "*.egg-info")
CACHES = ("__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".hypothesis")


@dataclass(frozen=True)
class Installed:
    wheel: Path
    build_log: str
    python: Path  # the fresh environment's interpreter
    bin: Path
    env: dict[str, str]
    home: Path  # a folder with nothing of the checkout in it

    def run(self, *argv: str | Path, timeout_s: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(a) for a in argv],
            cwd=self.home,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout_s,  # a hang guard
        )


def _clean_env() -> dict[str, str]:
    """This environment without what points into the checkout (the tests run with PYTHONPATH
    set to it) or changes what a build prints."""
    drop = {"PYTHONPATH", "PYTHONDONTWRITEBYTECODE", "VIRTUAL_ENV", "PYTEST_ADDOPTS"}
    return {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("PYTEST_")}


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    pytest.importorskip("build", reason="needs build (the dev extra: pip install -e '.[dev]')")
    base = tmp_path_factory.mktemp("wheel")
    source = base / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*NOT_SOURCE, *CACHES))
    env = _clean_env()
    dist = base / "dist"
    built = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist), str(source)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    (wheel,) = dist.glob("*.whl")

    target = base / "venv"
    venv.EnvBuilder(with_pip=False).create(target)
    bin_dir = target / "bin"
    python = bin_dir / "python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    ).stdout.strip()
    # The dependencies (pytest, torch, ...) come from this environment, after the fresh one's own
    # site-packages: plain path entries, so this environment's editable install of the project
    # (a .pth hook) is not run there, and the wheel's copy is the one imported.
    borrowed = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    Path(purelib, "_borrowed_dependencies.pth").write_text("\n".join(sorted(borrowed)) + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", python, "install", "--quiet", "--no-deps"]
        + ["--no-index", str(wheel)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    home = base / "home"
    home.mkdir()
    shutil.copytree(
        ROOT / "benchmarks", home / "benchmarks", ignore=shutil.ignore_patterns(*CACHES)
    )
    env = {**env, "VIRTUAL_ENV": str(target), "PATH": f"{bin_dir}{os.pathsep}{env['PATH']}"}
    return Installed(wheel, built.stdout + built.stderr, python, bin_dir, env, home)


def test_the_build_prints_no_warning(installed: Installed) -> None:
    warnings = [line for line in installed.build_log.splitlines() if "warning" in line.lower()]
    assert warnings == [], "\n".join(warnings)


def test_the_wheel_holds_every_module_and_data_file(installed: Installed) -> None:
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    expected = {
        path.relative_to(ROOT).as_posix()
        for path in (ROOT / PACKAGE).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    expected |= {f"{PACKAGE}/presets/{p.name}" for p in PRESETS.iterdir() if p.is_file()}
    expected = {n for n in expected if not n.endswith(".pyc")}
    assert sorted(expected - names) == []
    assert f"{PACKAGE}/schema/report-v2.json" in names  # what load_schema() reads


def test_the_plugin_and_the_command_load_from_the_wheel(installed: Installed) -> None:
    where = installed.run(installed.python, "-c", f"import {PACKAGE}; print({PACKAGE}.__file__)")
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()).is_relative_to(installed.python.parent.parent)
    help_text = installed.run(installed.python, "-m", "pytest", "--help")
    assert help_text.returncode == 0, help_text.stderr
    assert "--llm-backend=NAME[,NAME]" in help_text.stdout
    command = installed.run(installed.bin / "llmbench", "--help")
    assert command.returncode == 0, command.stderr
    assert "merge" in command.stdout and "compare" in command.stdout


def test_the_schema_presets_and_reference_text_are_found_without_the_checkout(
    installed: Installed,
) -> None:
    probe = (
        "import json\n"
        "from pytest_llmbench.results import load_schema\n"
        "from pytest_llmbench.config import available_presets\n"
        "from pytest_llmbench.quality.perplexity import reference_text\n"
        "print(json.dumps([load_schema()['title'], available_presets(), len(reference_text())]))"
    )
    found = installed.run(installed.python, "-c", probe)
    assert found.returncode == 0, found.stderr
    title, presets, text_chars = json.loads(found.stdout)
    assert title and text_chars > 0
    assert presets == sorted(p.stem for p in PRESETS.glob("*.yaml"))


def test_the_benchmarks_run_from_a_copy_of_the_folder(installed: Installed) -> None:
    pytest.importorskip("torch", reason="the benchmarks run the embedded model on pytorch")
    report = installed.home / "out" / "report.json"
    # A fast part of the suite: the plugin's whole path (engine, fixture, report) once.
    ran = installed.run(
        installed.python, "-m", "pytest", "benchmarks", "-q", "-p", "no:cacheprovider",
        "-k", "compatibility or latency", "--llm-backend", "pytorch", "--llm-json", report,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    assert "passed" in ran.stdout
    from pytest_llmbench.results import load_report

    results = load_report(report).results
    assert results and {r.backend for r in results} == {"pytorch"}
