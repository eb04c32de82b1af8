"""VllmBackend without an engine: capabilities, the missing-vLLM reason, a cheap import."""

from __future__ import annotations

from pytest_llmbench.backends.vllm.backend import VllmBackend


def test_capabilities_and_missing_vllm_reason(monkeypatch):
    caps = VllmBackend.capabilities
    assert all(
        (
            caps.streaming,
            caps.own_batching,
            caps.tensor_parallel,
            caps.logits,
            caps.own_process,
            caps.timed_arrivals,
        )
    )
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "vllm" else real(name, *a)
    )
    reason = VllmBackend.check_available()
    assert reason is not None
    assert (
        reason.startswith("vllm is not installed") and "pip install pytest-llmbench[vllm]" in reason
    )


def test_importing_the_backend_does_not_import_vllm():
    import subprocess
    import sys

    code = (
        "import sys, pytest_llmbench.backends.vllm.backend, pytest_llmbench.backends.host; "
        "print('vllm' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
