"""Meter selection: auto's order and reasons, explicit choices, NVML session ownership."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_llmbench.energy.base import EnergyUnavailable, UnavailableMeter
from pytest_llmbench.energy.select import select_meter
from pytest_llmbench.errors import LLMBenchError

from .fake_nvml import FakeGpu, FakeNvml, NVMLError_LibraryNotFound, NVMLError_NoPermission, uuid
from .test_rapl import zone

H100 = "NVIDIA H100 80GB HBM3"


def counter_gpu(n: int) -> FakeGpu:
    return FakeGpu(uuid(n), energy_mj=lambda: 1_000, power_mw=lambda: 70_000)


def power_only_gpu(n: int) -> FakeGpu:
    return FakeGpu(uuid(n), name="Tesla P100-PCIE-16GB", power_mw=lambda: 30_000, mig_capable=False)


@pytest.fixture
def no_rapl(tmp_path: Path) -> Path:
    return tmp_path / "no-powercap"


@pytest.fixture
def rapl_root(tmp_path: Path) -> Path:
    zone(tmp_path, "intel-rapl:0", "package-0", 1_000)
    return tmp_path


def test_auto_prefers_the_energy_counter(no_rapl: Path) -> None:
    nvml = FakeNvml([counter_gpu(0), counter_gpu(1)])
    meter, note = select_meter("auto", [1], nvml=nvml, environ={}, rapl_root=no_rapl)
    assert meter.method == "nvml-counter" and meter.min_updates == 20
    assert note == f"auto chose nvml-counter on 1 GPU ({H100}, {uuid(1)})"
    assert nvml.initialised == 1
    meter.close()
    assert nvml.initialised == 0


def test_auto_falls_back_to_power_sampling_when_the_counter_is_not_supported(
    no_rapl: Path,
) -> None:
    nvml = FakeNvml([power_only_gpu(0)])
    meter, note = select_meter(
        "auto", [0], nvml=nvml, environ={}, rapl_root=no_rapl, sample_interval_s=0.1
    )
    assert meter.method == "nvml-power" and meter.min_updates == 20
    assert note.startswith("auto chose nvml-power on 1 GPU (Tesla P100-PCIE-16GB")
    assert "NVML counter: nvmlDeviceGetTotalEnergyConsumption failed" in note
    assert "Not Supported" in note
    meter.close()
    assert nvml.initialised == 0


def test_auto_with_nothing_readable_on_a_gpu_is_unavailable_with_every_reason(
    no_rapl: Path,
) -> None:
    nvml = FakeNvml([FakeGpu(uuid(0))])
    meter, note = select_meter("auto", [0], nvml=nvml, environ={}, rapl_root=no_rapl)
    assert isinstance(meter, UnavailableMeter)
    assert meter.reason == note
    assert note.startswith("auto: no meter readable: NVML counter: ")
    assert "NVML power: nvmlDeviceGetPowerUsage failed" in note
    assert note.endswith("RAPL: not used, the backend runs on GPUs")
    assert nvml.initialised == 0  # NVML released on the way out


def test_auto_on_a_cpu_backend_uses_rapl(rapl_root: Path) -> None:
    nvml = FakeNvml([counter_gpu(0)])
    meter, note = select_meter("auto", (), nvml=nvml, environ={}, rapl_root=rapl_root)
    assert meter.method == "rapl"
    assert note == "auto chose rapl on package-0 (NVML: not used, the backend runs on the CPU)"
    assert nvml.initialised == 0  # never opened


def test_auto_without_any_meter_says_why_for_each(no_rapl: Path) -> None:
    nvml = FakeNvml(init_error=NVMLError_LibraryNotFound())
    meter, note = select_meter("auto", None, nvml=nvml, environ={}, rapl_root=no_rapl)
    assert isinstance(meter, UnavailableMeter)
    assert note == (
        "auto: no meter readable: NVML: not used, NVML is not readable (nvmlInit failed: NVML "
        f"Shared Library Not Found); RAPL: no intel-rapl zones under {no_rapl} (no RAPL driver, "
        "a VM, or a container without /sys/class/powercap)"
    )
    stopped = meter.start().stop()
    assert isinstance(stopped, EnergyUnavailable) and stopped.reason == note


def test_auto_for_all_gpus_with_none_visible_uses_rapl(rapl_root: Path) -> None:
    nvml = FakeNvml([counter_gpu(0)])
    meter, note = select_meter(
        "auto", None, nvml=nvml, environ={"CUDA_VISIBLE_DEVICES": ""}, rapl_root=rapl_root
    )
    assert meter.method == "rapl"
    assert "CUDA sees no GPU (NVML lists 1, CUDA_VISIBLE_DEVICES='')" in note
    assert nvml.initialised == 0


def test_auto_on_a_mig_slice_is_unavailable_not_guessed(no_rapl: Path) -> None:
    nvml = FakeNvml([counter_gpu(0)])
    env = {"CUDA_VISIBLE_DEVICES": "MIG-4f1b"}
    meter, note = select_meter("auto", [0], nvml=nvml, environ=env, rapl_root=no_rapl)
    assert isinstance(meter, UnavailableMeter)
    assert "NVML: CUDA device 0 is MIG instance MIG-4f1b" in note
    assert nvml.initialised == 0


def test_explicit_choice_that_cannot_read_is_a_usage_error(no_rapl: Path) -> None:
    nvml = FakeNvml([power_only_gpu(0)])
    with pytest.raises(LLMBenchError, match=r"^--llm-energy nvml: NVML counter: .*Not Supported"):
        select_meter("nvml", [0], nvml=nvml, environ={}, rapl_root=no_rapl)
    assert nvml.initialised == 0
    with pytest.raises(LLMBenchError, match="^--llm-energy rapl: no intel-rapl zones"):
        select_meter("rapl", [0], nvml=nvml, environ={}, rapl_root=no_rapl)
    with pytest.raises(
        LLMBenchError, match="^--llm-energy nvml-power: the backend runs on the CPU"
    ):
        select_meter("nvml-power", (), nvml=nvml, environ={}, rapl_root=no_rapl)
    denied = FakeNvml(init_error=NVMLError_NoPermission())
    with pytest.raises(LLMBenchError, match="^--llm-energy nvml: NVML: nvmlInit failed: Insuff"):
        select_meter("nvml", [0], nvml=denied, environ={}, rapl_root=no_rapl)


def test_explicit_power_sampling_on_a_gpu_with_the_counter(no_rapl: Path) -> None:
    nvml = FakeNvml([counter_gpu(0)])
    meter, note = select_meter(
        "nvml-power", [0], nvml=nvml, environ={}, sample_interval_s=0.02, min_updates=7
    )
    assert meter.method == "nvml-power" and meter.min_updates == 7
    assert note == f"--llm-energy nvml-power: nvml-power on 1 GPU ({H100}, {uuid(0)})"
    meter.close()


def test_explicit_rapl(rapl_root: Path) -> None:
    meter, note = select_meter("rapl", [0], rapl_root=rapl_root)
    assert meter.method == "rapl"
    assert note == "--llm-energy rapl: rapl on package-0"


def test_none_is_off_with_the_reason() -> None:
    meter, note = select_meter("none", [0])
    assert isinstance(meter, UnavailableMeter)
    assert note == meter.reason == "energy measurement is off (--llm-energy none)"


@pytest.mark.parametrize(
    ("choice", "kwargs", "message"),
    [
        ("nvidia", {}, "'nvidia' is not one of auto, nvml, nvml-power, rapl, none"),
        ("auto", {"sample_interval_s": 0}, "sample interval must be > 0 s"),
        ("auto", {"min_updates": -1}, "min updates must be >= 0"),
    ],
)
def test_bad_settings_are_usage_errors(choice: str, kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(LLMBenchError, match=f"^--llm-energy.*{message}"):
        select_meter(choice, [0], **kwargs)  # type: ignore[arg-type]
