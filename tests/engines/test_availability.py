"""Without the engine installed, every engine test skips with the install hint (issue #7)."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from importlib.machinery import ModuleSpec
from pathlib import Path

import pytest

from pytest_llmbench.backends.base import Backend
from pytest_llmbench.backends.registry import Registry
from pytest_llmbench.backends.sglang.backend import SglangBackend
from pytest_llmbench.backends.tensorrt.backend import TensorrtBackend

BENCHMARKS = Path(__file__).parent.parent.parent / "benchmarks"
ENGINES = [
    (
        "sglang",
        SglangBackend,
        "sglang",
        "sglang is not installed: pip install pytest-llmbench[sglang]",
    ),
    (
        "tensorrt",
        TensorrtBackend,
        "tensorrt_llm",
        "tensorrt_llm is not installed: pip install pytest-llmbench[tensorrt]",
    ),
]


def _fake_find_spec(monkeypatch: pytest.MonkeyPatch, module: str, present: bool) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, package: str | None = None) -> ModuleSpec | None:
        if name == module:
            return ModuleSpec(name, None) if present else None
        return real(name, package)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


@pytest.mark.parametrize(("name", "cls", "module", "message"), ENGINES)
def test_check_available_is_the_install_hint_when_absent(
    monkeypatch: pytest.MonkeyPatch, name: str, cls: type[Backend], module: str, message: str
) -> None:
    _fake_find_spec(monkeypatch, module, present=False)
    assert cls.check_available() == message
    assert Registry().unavailable_reason(name) == message
    _fake_find_spec(monkeypatch, module, present=True)
    assert cls.check_available() is None


@pytest.mark.parametrize(("name", "cls", "module", "message"), ENGINES)
def test_importing_the_adapter_never_imports_the_engine(
    name: str, cls: type[Backend], module: str, message: str
) -> None:
    assert module not in sys.modules
    assert Registry().load(name) is cls
    assert cls.capabilities.own_process and cls.capabilities.streaming
    assert cls.capabilities.timed_arrivals and cls.capabilities.tensor_parallel
    assert cls.capabilities.own_batching


@pytest.mark.parametrize(("name", "cls", "module", "message"), ENGINES)
def test_benchmarks_skip_engine_tests_with_the_install_hint(
    pytester: pytest.Pytester, name: str, cls: type[Backend], module: str, message: str
) -> None:
    """Without the engine: every test that needs it skips with the hint; translations pass."""
    if importlib.util.find_spec(module) is not None:
        pytest.skip(f"{module} is installed here; this checks a machine without it")
    # A package of its own: the outer session may already hold modules named like these files.
    suite = pytester.mkpydir("copied_benchmarks")
    for source in BENCHMARKS.glob("*.py"):
        shutil.copy(source, suite / source.name)

    result = pytester.runpytest("--llm-backend", name, "-rs", "-v", "-p", "no:cacheprovider")

    outcomes = result.parseoutcomes()
    assert set(outcomes) <= {"passed", "skipped", "warnings"}, result.stdout.str()
    passed = {
        line.split("::")[1].split("[")[0] for line in result.stdout.lines if " PASSED" in line
    }
    assert {
        "test_translation_of_session_config",
        "test_engine_arguments_build_from_the_session_config",
    } <= passed, result.stdout.str()
    skip_lines = [line for line in result.stdout.lines if line.startswith("SKIPPED [")]
    engine_skips = [line for line in skip_lines if line.endswith(message)]
    counted = sum(int(line[len("SKIPPED [") :].split("]")[0]) for line in engine_skips)
    assert counted >= 5, "\n".join(skip_lines)  # latency, serving, throughput, overhead, penalty
    others = [line for line in skip_lines if not line.endswith(message)]
    # Besides unsupported parameters, only the harness benchmark of the openai client skips on
    # another backend (benchmarks/test_client_harness.py), saying how to select it.
    assert all(
        "does not support" in line or "select it with --llm-backend openai" in line
        for line in others
    ), "\n".join(others)
