"""Which backends exist, and loading them lazily with install hints.

Built-in backends are named by import path so that nothing heavy is imported until a backend is
selected. Third parties add backends through the ``pytest_llmbench.backends`` entry-point group or
the ``pytest_llmbench_register_backends`` hook.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping
from importlib.metadata import entry_points

from pytest_llmbench.backends.base import Backend
from pytest_llmbench.errors import BackendUnavailable, ConfigError

ENTRY_POINT_GROUP = "pytest_llmbench.backends"

BUILTIN: dict[str, str] = {
    "pytorch": "pytest_llmbench.backends.pytorch:PytorchBackend",
    "vllm": "pytest_llmbench.backends.vllm:VllmBackend",
    "sglang": "pytest_llmbench.backends.sglang:SglangBackend",
    "tensorrt": "pytest_llmbench.backends.tensorrt:TensorrtBackend",
    "openai": "pytest_llmbench.backends.openai:OpenAIBackend",
    "llamacpp": "pytest_llmbench.backends.llamacpp:LlamacppBackend",
}

AUTO = "auto"


def install_hint(name: str, extra: str | None = None) -> str:
    return (
        f"Backend '{name}' requires extra dependencies. "
        f"Install with: pip install pytest-llmbench[{extra or name}]"
    )


class Registry:
    """Backend names -> classes, resolved on first use."""

    def __init__(self, targets: Mapping[str, str | type[Backend]] | None = None) -> None:
        self._targets: dict[str, str | type[Backend]] = dict(targets or BUILTIN)

    @classmethod
    def discover(cls, hook_results: Iterable[Mapping[str, type[Backend]] | None] = ()) -> Registry:
        """Built-ins plus entry points plus hook results; a duplicate name is an error."""
        registry = cls()
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            registry.add(ep.name, ep.value, origin=f"entry point {ep.value}")
        for mapping in hook_results:
            for name, backend_cls in (mapping or {}).items():
                registry.add(name, backend_cls, origin="pytest_llmbench_register_backends")
        return registry

    def add(self, name: str, target: str | type[Backend], origin: str = "") -> None:
        if name in self._targets or name == AUTO:
            raise ConfigError(
                "--llm-backend", f"backend name {name!r} from {origin} is already taken"
            )
        self._targets[name] = target

    @property
    def names(self) -> list[str]:
        return list(self._targets)

    def check_name(self, name: str) -> None:
        if name != AUTO and name not in self._targets:
            allowed = ", ".join([*self._targets, AUTO])
            raise ConfigError("--llm-backend", f"unknown backend {name!r}; available: {allowed}")

    def load(self, name: str) -> type[Backend]:
        """The backend class; BackendUnavailable with the install hint if its module cannot load."""
        self.check_name(name)
        target = self._targets[name]
        if not isinstance(target, str):
            return target
        module_name, _, attr = target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise BackendUnavailable(f"{install_hint(name)} ({exc})") from exc
        backend_cls: type[Backend] = getattr(module, attr)
        return backend_cls

    def unavailable_reason(self, name: str) -> str | None:
        """None when ``name`` can run here, else why not (install hint included)."""
        try:
            return self.load(name).check_available()
        except BackendUnavailable as exc:
            return str(exc)

    def resolve_auto(self, device: str) -> str:
        """``auto``: vllm when CUDA and vLLM are both present, else pytorch."""
        if device != "cpu" and _cuda_available() and self.unavailable_reason("vllm") is None:
            return "vllm"
        return "pytorch"


def _cuda_available() -> bool:
    """Ask NVML, not torch: initialising CUDA here would break engines that fork workers."""
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            return int(pynvml.nvmlDeviceGetCount()) > 0
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # no driver, no library, no permission: no usable GPU
        return False


def parse_backend_option(values: Iterable[str]) -> list[str]:
    """``["pytorch,vllm", "openai"]`` -> ``["pytorch", "vllm", "openai"]`` (order kept, no dups)."""
    names: list[str] = []
    for value in values:
        for part in value.split(","):
            part = part.strip()
            if part and part not in names:
                names.append(part)
    return names
