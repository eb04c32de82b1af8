"""The gate's layout: one package, no import cycles, and no engine code reachable from it.

The gate judges reports; it must run on a CI runner that has no engine installed, and importing
it must not start one. These checks read the import graph (every import, lazy and TYPE_CHECKING
ones included) and, in a fresh interpreter, what importing and running the gate loads.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.backends.test_layout import PACKAGE_ROOT, _cycles, _graph, _module_name

GATE = "pytest_llmbench.gate"
ENGINE_LIBRARIES = {"torch", "vllm", "sglang", "transformers", "tensorrt_llm", "llama_cpp"}


def _gate_modules() -> list[Path]:
    return sorted((PACKAGE_ROOT / "gate").glob("*.py"))


def _third_party(path: Path) -> set[str]:
    """Top-level names of the non-pytest_llmbench modules ``path`` imports, at any depth."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            out.add(node.module.split(".")[0])
    return out - {"pytest_llmbench"}


def _reachable(graph: dict[str, set[str]], start: set[str]) -> set[str]:
    seen: set[str] = set()
    todo = list(start)
    while todo:
        for dep in graph[todo.pop()]:
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return seen


def test_the_package_has_no_import_cycles() -> None:
    assert _cycles(_graph()) == []


def test_the_gate_is_one_package() -> None:
    flat = {p.stem for p in PACKAGE_ROOT.glob("*.py")}
    moved = {"gate", "noise", "changepoint", "history", "baseline", "calibrate", "storage"}
    assert flat & moved == set()
    assert {p.stem for p in _gate_modules()} >= moved - {"gate"} | {"rules", "judge", "render"}


def test_the_gate_imports_no_engine_adapter_nor_engine_library() -> None:
    graph = _graph()
    gate = {m for m in graph if m == GATE or m.startswith(GATE + ".")}
    # Directly: nothing of pytest_llmbench.backends, at any depth of a gate module.
    for module in gate:
        assert not {d for d in graph[module] if d.startswith("pytest_llmbench.backends")}, module
    # Through anything the gate reaches: no engine's own package (the shared protocol types
    # that results.py names for type checking only are not engine code).
    reached = _reachable(graph, gate)
    engines = {m for m in reached if m.startswith("pytest_llmbench.backends.")}
    assert engines <= {"pytest_llmbench.backends.base"}, engines
    for module in sorted(gate | reached):
        path = PACKAGE_ROOT.parent / (module.replace(".", "/") + ".py")
        if not path.exists():
            path = PACKAGE_ROOT.parent / module.replace(".", "/") / "__init__.py"
        assert _module_name(path) == module
        assert _third_party(path) & ENGINE_LIBRARIES == set(), module


def test_importing_and_running_the_gate_loads_no_engine_and_no_scipy_until_needed() -> None:
    code = textwrap.dedent(
        """
        import sys
        import pytest_llmbench.gate
        import pytest_llmbench.gate.baseline, pytest_llmbench.gate.calibrate
        at_import = sorted(m for m in ("numpy", "scipy") if m in sys.modules)
        from pytest_llmbench.gate import compare, parse_fail_on
        from tests.results.factories import make_report, make_result
        history = [make_report([make_result(energy_per_token=[0.5 + i / 100] * 3)])
                   for i in range(7)]
        current = make_report([make_result(energy_per_token=[0.6, 0.61, 0.59])])
        compare(history, current, parse_fail_on("energy_per_output_token:+5%"))
        engines = sorted(m for m in sys.modules if m.split(".")[0] in ENGINE_LIBRARIES
                         or m.startswith("pytest_llmbench.backends"))
        print(at_import, engines)
        """
    ).replace("ENGINE_LIBRARIES", repr(sorted(ENGINE_LIBRARIES)))
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=PACKAGE_ROOT.parent,
    ).stdout.strip()
    assert out == "[] []"
