"""The backends' layout: one package per engine, shared parts on top, and no import cycles."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import pytest_llmbench
from pytest_llmbench.backends.registry import BUILTIN

PACKAGE_ROOT = Path(pytest_llmbench.__file__).parent
ENGINES = ("llamacpp", "openai", "pytorch", "sglang", "tensorrt", "vllm")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Every pytest_llmbench module ``path`` imports, at any depth (lazy and TYPE_CHECKING too)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            out.add(base)
            out.update(f"{base}.{a.name}" for a in node.names)  # `from pkg import module`
    return {m for m in out if m.startswith("pytest_llmbench")}


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PACKAGE_ROOT.rglob("*.py")}
    return {name: _imports(path) & modules.keys() - {name} for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    found: list[list[str]] = []
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if nxt.startswith(node + "."):
                continue  # a package importing its own submodules (its __init__) is no cycle
            if state.get(nxt) == 1:
                found.append(stack[stack.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found


def test_the_backends_import_no_module_that_imports_them_back() -> None:
    graph = _graph()
    backends = {k: v for k, v in graph.items() if k.startswith("pytest_llmbench.backends")}
    cycles = [c for c in _cycles(graph) if any(m in backends for m in c)]
    assert cycles == []


def test_the_cycle_finder_sees_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
    assert _cycles({"p": {"p.x"}, "p.x": {"p"}}) == []


def test_each_engine_is_a_package_with_its_adapter() -> None:
    backends = PACKAGE_ROOT / "backends"
    assert sorted(p.parent.name for p in backends.glob("*/backend.py")) == sorted(ENGINES)
    flat = sorted(p.name for p in backends.glob("*.py"))
    shared = ["__init__.py", "base.py", "engine_env.py", "host.py", "overhead.py", "parallel.py"]
    shared += ["registry.py", "streaming.py"]
    assert flat == shared


def test_engine_packages_import_only_shared_modules_of_other_engines() -> None:
    """An engine leans on what all engines share; only openai's managed servers borrow what
    starting an engine's server needs: its arguments (args.py), whether the engine's install can
    run at all (install.py, SGLang's pinned torch and kernel) and, for llama.cpp, the GGUF
    conversion (gguf_convert.py). Never another adapter."""
    graph = _graph()
    for engine in ENGINES:
        own = f"pytest_llmbench.backends.{engine}"
        for module, deps in graph.items():
            if module != own and not module.startswith(own + "."):
                continue
            for dep in deps:
                other = dep.split(".")[2] if dep.startswith("pytest_llmbench.backends.") else None
                if other in ENGINES and other != engine:
                    borrowed = dep.rsplit(".", 1)[-1] in ("args", "install", "gguf_convert")
                    assert engine == "openai" and borrowed, (module, dep)


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_registry_paths_and_public_names_resolve(name: str) -> None:
    module_name, _, attr = BUILTIN[name].partition(":")
    assert module_name == f"pytest_llmbench.backends.{name}"  # the public path, not backend.py
    cls = getattr(importlib.import_module(module_name), attr)
    assert cls.name == name


def test_every_package_on_disk_is_packaged() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    config = tomllib.loads((PACKAGE_ROOT.parent / "pyproject.toml").read_text())
    declared = set(config["tool"]["setuptools"]["packages"])
    on_disk = {_module_name(p) for p in PACKAGE_ROOT.rglob("__init__.py")}
    assert on_disk - declared == set()
