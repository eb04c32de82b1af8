"""Engines failing mid-run: killed by a signal, out of memory, a GPU whose meter fails."""

from __future__ import annotations

import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.energy.fake_nvml import FakeGpu, FakeNvml, NVMLError_GpuIsLost, uuid

from .engines import FAULTY_BACKEND
from .helpers import engine_workers, result_ids, valid_report, wait_gone

QUICK = ("--llm-repeat", "1", "--llm-warmup", "0")


@pytest.fixture
def faults(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The inner project: the fault engines registered, $FAULT_DIR for the faults to inject."""
    pytester.makeconftest(FAULTY_BACKEND)
    fault_dir = pytester.path / "faults"
    fault_dir.mkdir()
    monkeypatch.setenv("FAULT_DIR", str(fault_dir))
    return fault_dir


def test_engine_killed_mid_run_fails_that_test_and_the_next_restarts_it(
    pytester: pytest.Pytester, faults: Path
) -> None:
    pytester.makepyfile(
        test_bench="""
        import os
        from pathlib import Path

        def inject(what):
            (Path(os.environ["FAULT_DIR"]) / "next").write_text(what)

        def test_before(llm_bench):
            llm_bench(num_prompts=2, input_tokens=4, output_tokens=3)

        def test_killed(llm_bench):
            inject("sigkill")
            llm_bench(num_prompts=2, input_tokens=4, output_tokens=3)

        def test_after(llm_bench):
            llm_bench(num_prompts=2, input_tokens=4, output_tokens=3)
        """
    )
    result = pytester.runpytest_inprocess(
        "--llm-backend", "faulty", *QUICK, "--llm-energy", "none", "--llm-json", "r.json"
    )
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        ["*test_killed*", "*faulty engine process was killed by SIGKILL (e.g. the OOM killer)*"]
    )
    report = valid_report(pytester.path / "r.json")
    assert result_ids(report) == ["test_before", "test_after"]  # every finished result kept
    pids = [r["engine_details"]["pid"] for r in report["results"]]
    assert pids[0] != pids[1]  # the engine was started again after the kill
    workers = engine_workers(faults)
    assert len(workers) == 2 and wait_gone(workers) == set()  # the killed engine's too


OOM = textwrap.dedent(
    """
    import torch
    from pytest_llmbench.backends.pytorch.backend import PytorchBackend

    _generate = PytorchBackend.generate

    def generate(self, requests):
        if any(r.max_output_tokens == 7 for r in requests):  # the workload that "does not fit"
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return _generate(self, requests)

    PytorchBackend.generate = generate
    """
)


def test_out_of_memory_in_pytorch_fails_that_test_and_the_session_goes_on(
    pytester: pytest.Pytester,
) -> None:
    pytest.importorskip("torch")
    pytester.makeconftest(OOM)
    pytester.makepyfile(
        test_bench="""
        def test_fits(llm_bench):
            llm_bench(num_prompts=2, input_tokens=4, output_tokens=3)

        def test_too_big(llm_bench):
            llm_bench(num_prompts=2, input_tokens=4, output_tokens=7)

        def test_fits_again(llm_bench):
            llm_bench(num_prompts=2, input_tokens=4, output_tokens=3)
        """
    )
    # torch in a subprocess: it cannot be imported again in this process (tests/conftest.py)
    result = pytester.runpytest_subprocess(
        "--llm-backend", "pytorch", *QUICK, "--llm-energy", "none", "--llm-json", "r.json"
    )
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*OutOfMemoryError: CUDA out of memory*"])
    report = valid_report(pytester.path / "r.json")
    assert result_ids(report) == ["test_fits", "test_fits_again"]
    assert report["complete"] is True


def test_nvml_failing_mid_window_gives_unavailable_with_the_reason(
    pytester: pytest.Pytester, faults: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started = time.perf_counter()

    def counter_mj() -> int:  # a counter that steps every 10 ms
        return 5_000_000 + int((time.perf_counter() - started) / 0.01) * 1_000

    def lost() -> int:
        raise NVMLError_GpuIsLost()

    gpu = FakeGpu(uuid(0), energy_mj=counter_mj, power_mw=lambda: 100_000)
    nvml = FakeNvml([gpu])
    nvml.lose_gpu = lambda: setattr(gpu, "energy_mj", lost)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    pytester.makepyfile(
        test_bench="""
        import os
        from pathlib import Path

        def test_measured(llm_bench):
            result = llm_bench(num_prompts=2, input_tokens=4, output_tokens=3)
            assert result.aggregate()["energy_j"] > 0

        def test_gpu_lost(llm_bench):
            (Path(os.environ["FAULT_DIR"]) / "next").write_text("gpu-lost")
            result = llm_bench(num_prompts=2, input_tokens=4, output_tokens=3)
            assert result.aggregate().get("energy_j") is None  # never a number
            assert "GPU is lost" in result.energy_unavailable_reason
        """
    )
    result = pytester.runpytest_inprocess(
        "--llm-backend", "cuda", *QUICK, "--llm-energy", "nvml", "--llm-energy-idle", "0",
        "--llm-min-energy-window", "2", "--llm-energy-interval", "0.005", "--llm-json", "r.json",
    )  # fmt: skip
    result.assert_outcomes(passed=2)
    assert "Traceback" not in result.stdout.str()
    measured, lost_gpu = valid_report(pytester.path / "r.json")["results"]
    assert measured["energy"]["available"] is True and measured["energy"]["energy_j"] > 0
    assert lost_gpu["energy"]["available"] is False
    assert "GPU is lost" in lost_gpu["energy"]["reason"]
    assert lost_gpu["aggregate"].get("energy_j") is None
    # The failed window ended at once, not after the runner's cap of 1000 passes (the poller
    # reads every 5 ms, a pass takes 50 ms: a busy machine may delay it by a few passes).
    assert lost_gpu["repetitions"][0]["iterations"] < 100
