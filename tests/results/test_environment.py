"""Machine info: never fatal, no heavy imports; NVML faked only at the hardware boundary."""

from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from pytest_llmbench import environment
from pytest_llmbench.environment import collect_machine_info, git_info, gpu_info, machine_id


def fake_nvml(
    init_error: Exception | None = None, names: tuple[str, ...] = ("NVIDIA H100 80GB HBM3",)
) -> types.ModuleType:
    nvml = types.ModuleType("pynvml")

    def init() -> None:
        if init_error:
            raise init_error

    def no_power(handle: int) -> float:
        raise RuntimeError("Not Supported")

    nvml.nvmlInit = init  # type: ignore[attr-defined]
    nvml.nvmlShutdown = lambda: None  # type: ignore[attr-defined]
    nvml.nvmlSystemGetDriverVersion = lambda: b"550.54.15"  # type: ignore[attr-defined]
    nvml.nvmlSystemGetCudaDriverVersion = lambda: 12040  # type: ignore[attr-defined]
    nvml.nvmlDeviceGetCount = lambda: len(names)  # type: ignore[attr-defined]
    nvml.nvmlDeviceGetHandleByIndex = lambda i: i  # type: ignore[attr-defined]
    nvml.nvmlDeviceGetName = lambda h: names[h]  # type: ignore[attr-defined]
    nvml.nvmlDeviceGetUUID = lambda h: f"GPU-{h}"  # type: ignore[attr-defined]
    nvml.nvmlDeviceGetMemoryInfo = lambda h: types.SimpleNamespace(total=80 * 2**30)  # type: ignore[attr-defined]
    nvml.nvmlDeviceGetPowerManagementLimit = no_power  # type: ignore[attr-defined]
    return nvml


def test_gpu_info_from_nvml(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml(names=("H100", "H100")))
    info = gpu_info()
    assert info["available"] and info["driver_version"] == "550.54.15"
    assert info["cuda_driver_version"] == "12.4"
    assert info["devices"][1] == {
        "index": 1,
        "name": "H100",
        "uuid": "GPU-1",
        "memory_total_mib": 81920,
        "power_limit_w": None,
    }


def test_gpu_info_is_never_fatal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml(RuntimeError("Driver Not Loaded")))
    assert gpu_info() == {
        "available": False,
        "reason": "NVML cannot be initialised: Driver Not Loaded",
    }
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import fails
    assert gpu_info()["reason"].startswith("pynvml cannot be imported")


def test_machine_id_names_the_gpus() -> None:
    gpus: dict[str, Any] = {"available": True, "devices": [{"name": "NVIDIA H100 80GB HBM3"}] * 8}
    assert machine_id({"system": "Linux", "arch": "x86_64", "gpus": gpus}) == (
        "Linux-x86_64-NVIDIA_H100_80GB_HBM3x8"
    )
    assert machine_id({"system": "Linux", "arch": "aarch64", "gpus": {"available": False}}) == (
        "Linux-aarch64-cpu"
    )


def test_git_info_in_a_checkout_and_from_ci_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_SHA", "f" * 40)
    assert git_info(tmp_path) == {"commit": "f" * 40, "branch": None, "dirty": None}

    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    git("init", "-q", "-b", "main")
    (tmp_path / "f").write_text("x")
    git("add", "f")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "m")
    info = git_info(tmp_path)
    assert info is not None and len(info["commit"]) == 40 and info["commit"] != "f" * 40
    assert info["branch"] == "main" and info["dirty"] is False
    (tmp_path / "f").write_text("changed")
    assert git_info(tmp_path)["dirty"] is True  # type: ignore[index]


def test_collect_machine_info_imports_nothing_heavy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml())
    before = set(sys.modules)
    machine = collect_machine_info()
    assert not {"torch", "transformers", "vllm"} & (set(sys.modules) - before)
    assert machine["machine_id"].endswith("NVIDIA_H100_80GB_HBM3x1")
    assert machine["packages"]["pytest"]
    assert "not-a-package" not in environment.package_versions(["not-a-package"])
