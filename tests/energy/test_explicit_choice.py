"""An explicit ``--llm-energy`` meter that cannot read is one usage error before any test runs."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from pytest_llmbench.energy import rapl

from ..conftest import ECHO_BACKEND_CONFTEST
from .fake_nvml import FakeGpu, FakeNvml, NVMLError_LibraryNotFound, uuid
from .test_rapl import zone


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(ECHO_BACKEND_CONFTEST)
    pytester.makepyfile(
        test_bench="""
        def test_a(llm_bench):
            llm_bench(num_prompts=1, input_tokens=4, output_tokens=2)

        def test_b(llm_bench):
            llm_bench(num_prompts=1, input_tokens=4, output_tokens=2)

        def test_plain():
            pass
        """
    )
    return pytester


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_inprocess(
        "--llm-backend", "echo", "--llm-energy-idle", "0", "--llm-warmup", "0", *args
    )


def assert_one_usage_error(result: pytest.RunResult, line: str) -> None:
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [x for x in result.stderr.lines if x.startswith("ERROR:")]
    assert len(errors) == 1, result.stderr.lines
    assert errors[0].startswith(f"ERROR: {line}"), errors[0]
    assert "test_bench.py" not in result.stdout.str()  # nothing was collected or run
    assert "During handling" not in result.stdout.str() + result.stderr.str()


def test_rapl_without_zones_is_one_usage_error(
    project: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "powercap"
    empty.mkdir()
    monkeypatch.setattr(rapl, "POWERCAP", empty)
    assert_one_usage_error(
        run(project, "--llm-energy", "rapl"),
        f"--llm-energy: rapl: no intel-rapl zones under {empty}",
    )


def test_rapl_with_an_unreadable_counter_is_one_usage_error(
    project: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = zone(tmp_path, "intel-rapl:0", "package-0", 1_000)
    (path / "energy_uj").unlink()
    (path / "energy_uj").mkdir()  # any read fails, even as root (permissions would not)
    monkeypatch.setattr(rapl, "POWERCAP", tmp_path)
    result = run(project, "--llm-energy", "rapl")
    assert_one_usage_error(result, f"--llm-energy: rapl: cannot read {path / 'energy_uj'}")


def test_readable_rapl_passes_configure(
    project: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    zone(tmp_path, "intel-rapl:0", "package-0", 1_000)
    monkeypatch.setattr(rapl, "POWERCAP", tmp_path)
    run(project, "--llm-energy", "rapl", "-k", "plain").assert_outcomes(passed=1, deselected=2)


@pytest.mark.parametrize("choice", ["nvml", "nvml-power"])
def test_unreadable_nvml_is_one_usage_error(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, choice: str
) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml(init_error=NVMLError_LibraryNotFound()))
    result = run(project, "--llm-energy", choice)
    assert_one_usage_error(result, f"--llm-energy: {choice}: NVML is not readable (nvmlInit failed")


def test_nvml_on_a_cpu_only_config_is_one_usage_error(project: pytest.Pytester) -> None:
    result = run(project, "--llm-energy", "nvml", "--llm-device", "cpu")
    assert_one_usage_error(result, "--llm-energy: nvml: the config runs every backend on the CPU")


def test_readable_nvml_passes_configure_and_releases_nvml(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    nvml = FakeNvml([FakeGpu(uuid(0), energy_mj=lambda: 1_000, power_mw=lambda: 70_000)])
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    run(project, "--llm-energy", "nvml", "-k", "plain").assert_outcomes(passed=1, deselected=2)
    assert nvml.initialised == 0


def test_auto_never_fails_configure(
    project: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rapl, "POWERCAP", tmp_path / "none")
    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml(init_error=NVMLError_LibraryNotFound()))
    result = run(project, "--llm-energy", "auto", "--llm-json", "r.json")
    result.assert_outcomes(passed=3)
    assert "unavailable" in result.stdout.str()


def test_a_gpu_meter_for_a_backend_on_the_cpu_fails_its_tests_once_each(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    nvml = FakeNvml([FakeGpu(uuid(0), energy_mj=lambda: 1_000, power_mw=lambda: 70_000)])
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    result = run(project, "--llm-energy", "nvml")  # readable here, but echo runs on the CPU
    result.assert_outcomes(passed=1, errors=2)
    out = result.stdout.str()
    assert out.count("\n--llm-energy: nvml: the backend runs on the CPU\n") == 2
    assert "During handling" not in out
    assert nvml.initialised == 0
