"""What machine a report was measured on: GPUs and driver, CPU, package versions, git commit.

Nothing here is ever fatal: a missing driver, package or git checkout leaves its field None.
Nothing heavy is imported: package versions come from ``importlib.metadata``, GPUs from NVML.
"""

from __future__ import annotations

import contextlib
import os
import platform
import re
import socket
import subprocess
from collections.abc import Iterable
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

# Distribution names whose versions matter for a benchmark (import names differ for some).
PACKAGES: tuple[str, ...] = (
    "pytest-llmbench",
    "torch",
    "transformers",
    "tokenizers",
    "vllm",
    "sglang",
    "tensorrt-llm",
    "flash-attn",
    "xformers",
    "triton",
    "nvidia-cuda-runtime-cu12",
    "nvidia-cudnn-cu12",
    "nvidia-nccl-cu12",
    "nvidia-ml-py",
    "pytest",
)


def package_versions(names: Iterable[str] = PACKAGES) -> dict[str, str]:
    """Installed versions of ``names``; packages that are not installed are left out."""
    out: dict[str, str] = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def gpu_info() -> dict[str, Any]:
    """GPUs as NVML sees them, with the driver and the CUDA version the driver supports.

    ``{"available": False, "reason": ...}`` where NVML cannot be used.
    """
    try:
        import pynvml
    except Exception as exc:  # not installed, or broken: both only mean "no GPU info"
        return {"available": False, "reason": f"pynvml cannot be imported: {exc}"}
    try:
        pynvml.nvmlInit()
    except Exception as exc:
        return {"available": False, "reason": f"NVML cannot be initialised: {exc}"}
    try:
        info: dict[str, Any] = {
            "available": True,
            "driver_version": None,
            "cuda_driver_version": None,
        }
        with contextlib.suppress(Exception):
            info["driver_version"] = _text(pynvml.nvmlSystemGetDriverVersion())
        try:
            v = int(pynvml.nvmlSystemGetCudaDriverVersion())
            info["cuda_driver_version"] = f"{v // 1000}.{(v % 1000) // 10}"
        except Exception:
            pass
        devices = []
        for index in range(int(pynvml.nvmlDeviceGetCount())):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            device: dict[str, Any] = {
                "index": index,
                "name": _text(pynvml.nvmlDeviceGetName(handle)),
            }
            for key, call in (
                ("uuid", lambda h: _text(pynvml.nvmlDeviceGetUUID(h))),
                (
                    "memory_total_mib",
                    lambda h: int(pynvml.nvmlDeviceGetMemoryInfo(h).total) // 2**20,
                ),
                ("power_limit_w", lambda h: pynvml.nvmlDeviceGetPowerManagementLimit(h) / 1000.0),
            ):
                try:
                    device[key] = call(handle)
                except Exception:
                    device[key] = None
            devices.append(device)
        info["devices"] = devices
        return info
    except Exception as exc:
        return {"available": False, "reason": f"NVML query failed: {exc}"}
    finally:
        with contextlib.suppress(Exception):
            pynvml.nvmlShutdown()


def cpu_model() -> str | None:
    """The CPU's marketing name (Linux /proc/cpuinfo, else ``platform.processor()``)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def git_info(cwd: str | os.PathLike[str] | None = None) -> dict[str, Any] | None:
    """Commit, branch and dirty flag of the checkout at ``cwd``; CI variables as a fallback."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=5, check=False
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        sha = os.environ.get("GITHUB_SHA")
        return (
            {"commit": sha, "branch": os.environ.get("GITHUB_REF_NAME"), "dirty": None}
            if sha
            else None
        )
    status = git("status", "--porcelain", "--untracked-files=no")
    return {
        "commit": commit,
        "branch": git("rev-parse", "--abbrev-ref", "HEAD"),
        "dirty": bool(status) if status is not None else None,
    }


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.-]+", "_", text).strip("_")


def machine_id(machine: dict[str, Any]) -> str:
    """A folder name for saved runs: results are only comparable on the same kind of machine.

    ``<system>-<arch>-<gpu name>x<count>``, or ``-cpu`` without GPUs, e.g.
    ``Linux-x86_64-NVIDIA_H100_80GB_HBM3x8``.
    """
    base = f"{machine.get('system') or 'unknown'}-{machine.get('arch') or 'unknown'}"
    names = gpu_names(machine)
    if not names:
        return _slug(f"{base}-cpu")
    parts = [f"{_slug(n)}x{names.count(n)}" for n in dict.fromkeys(names)]
    return _slug(base) + "-" + "+".join(parts)


def gpu_names(machine: dict[str, Any]) -> list[str]:
    """Sorted GPU names of a machine dict (empty without GPUs or NVML, or where a report's
    free-form machine section holds something else there)."""
    gpus = machine.get("gpus")
    devices = gpus.get("devices") if isinstance(gpus, dict) else None
    if not isinstance(devices, list):
        return []
    return sorted(str(d.get("name")) for d in devices if isinstance(d, dict))


def collect_machine_info(cwd: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The ``machine`` section of a report."""
    machine: dict[str, Any] = {
        "hostname": socket.gethostname(),
        "system": platform.system(),
        "release": platform.release(),
        "arch": platform.machine(),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "cpu": {"model": cpu_model(), "count": os.cpu_count()},
        "gpus": gpu_info(),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "packages": package_versions(),
        "git": git_info(cwd),
    }
    machine["machine_id"] = machine_id(machine)
    return machine


@lru_cache(maxsize=1)
def _cached(cwd: str) -> dict[str, Any]:
    return collect_machine_info(cwd)


def cached_machine_info() -> dict[str, Any]:
    """:func:`collect_machine_info` for the current directory, collected once per process."""
    import copy

    return copy.deepcopy(_cached(os.getcwd()))
