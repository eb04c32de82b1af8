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


def test_the_engine_reports_every_gpu_of_its_world_for_the_energy_meter():
    """tensor_parallel_size x pipeline_parallel_size ranks take CUDA devices 0..world-1; the
    energy meter reads exactly those (an installed vLLM's argument names, without importing it)."""
    from pytest_llmbench import compat
    from pytest_llmbench.backends.base import BackendSpec
    from pytest_llmbench.backends.parallel import engine_demand
    from pytest_llmbench.backends.vllm.backend import InstalledVllm
    from pytest_llmbench.config.load import parse_override, resolve_config

    accepted = InstalledVllm(
        "0.0-standin",
        engine_args=frozenset({"tensor_parallel_size", "pipeline_parallel_size", "seed"}),
        sampling_args=frozenset(
            {"max_tokens", "min_tokens", "ignore_eos", "temperature", "seed", "top_p", "top_k"}
            | {"min_p", "repetition_penalty"}
        ),
        nested={},
    )
    cases = [
        (("sharding.strategy=tensor_parallel", "sharding.num_devices=2"), "cuda", (0, 1)),
        (
            ("vllm.tensor_parallel_size=2", "vllm.extra.pipeline_parallel_size=2"),
            "cuda",
            (0, 1, 2, 3),
        ),
        (("vllm.tensor_parallel_size=2",), "cpu", ()),  # vLLM on the CPU: no GPU to measure
    ]
    for overrides, device, devices in cases:
        config = resolve_config(overrides=[parse_override(o) for o in overrides])
        backend = VllmBackend(BackendSpec("/m", config, compat.translate(config, "vllm"), device))
        backend._installed = accepted
        backend._engine_kwargs, _ = backend.resolve_arguments()  # as start() does
        assert backend.info().cuda_devices == devices, overrides
        if device == "cuda":  # the early check counts the same GPUs
            demand = engine_demand(config, "vllm")
            assert demand is not None and demand.cuda_devices == devices
