"""The NVML energy counter: deltas, sums over GPUs, device mapping, MIG, the minimum window."""

from __future__ import annotations

import threading
import time

import pytest

from pytest_llmbench.energy.base import EnergyReading, EnergyUnavailable, NotReadable
from pytest_llmbench.energy.counter import CounterMeter, CounterWindow
from pytest_llmbench.energy.gpus import Nvml, count_visible_gpus, open_nvml, resolve_gpus
from pytest_llmbench.energy.nvml import METHOD, NvmlEnergyChannel, nvml_counter_meter

from .fake_nvml import FakeClock, FakeGpu, FakeNvml, NVMLError_GpuIsLost, uuid


class Counter:
    """An NVML-like counter: a fixed number of millijoules added at each update."""

    def __init__(self, start_mj: int = 5_000_000) -> None:
        self.value_mj = start_mj

    def add(self, mj: int) -> None:
        self.value_mj += mj

    def __call__(self) -> int:
        return self.value_mj


def counter_meter(
    nvml: FakeNvml, cuda_devices: list[int], clock: FakeClock, min_updates: int = 20, **env: str
) -> CounterMeter:
    gpus = resolve_gpus(nvml, cuda_devices, environ=env)
    channels = [NvmlEnergyChannel(nvml, gpu) for gpu in gpus]
    return CounterMeter(
        METHOD,
        channels,
        min_updates=min_updates,
        interval_s=0.025,
        clock=clock,
        background=False,
    )


def window(meter: CounterMeter) -> CounterWindow:
    started = meter.start()
    assert isinstance(started, CounterWindow)
    return started


def test_energy_is_the_counter_delta_in_joules() -> None:
    counter, clock = Counter(), FakeClock()
    nvml = FakeNvml([FakeGpu(uuid(0), energy_mj=counter)])
    w = window(counter_meter(nvml, [0], clock, min_updates=3))
    for _ in range(4):  # four updates of 100 ms at 250 W: 25 J each
        clock.advance(0.1)
        counter.add(25_000)
        w.poll()
    clock.advance(0.05)
    w.poll()  # a poll that sees no change is no update
    reading = w.stop()
    assert isinstance(reading, EnergyReading)
    assert reading.energy_j == pytest.approx(100.0)
    assert reading.per_device_j == {uuid(0): pytest.approx(100.0)}
    assert reading.window_s == pytest.approx(0.45)
    assert reading.updates == 4
    assert reading.update_interval_s == pytest.approx(0.1)
    assert reading.short_window is False
    assert reading.method == "nvml-counter"


def test_short_window_is_flagged() -> None:
    counter, clock = Counter(), FakeClock()
    nvml = FakeNvml([FakeGpu(uuid(0), energy_mj=counter)])
    w = window(counter_meter(nvml, [0], clock, min_updates=20))
    for _ in range(19):
        clock.advance(0.1)
        counter.add(1)
        w.poll()
    assert w.updates() == 19
    reading = w.stop()
    assert isinstance(reading, EnergyReading)
    assert reading.short_window is True
    assert reading.updates == 19


def test_tensor_parallel_gpus_are_summed_per_uuid() -> None:
    counters = [Counter(1_000), Counter(2_000), Counter(3_000)]
    nvml = FakeNvml([FakeGpu(uuid(n), energy_mj=c) for n, c in enumerate(counters)])
    clock = FakeClock()
    # CUDA ordinals 0 and 1 are the physical GPUs 2 and 0; GPU 1 is busy with someone else's job
    w = window(counter_meter(nvml, [0, 1], clock, CUDA_VISIBLE_DEVICES="2,0"))
    clock.advance(1.0)
    counters[2].add(300_000)
    counters[0].add(200_000)
    counters[1].add(999_000)
    reading = w.stop()
    assert isinstance(reading, EnergyReading)
    assert reading.per_device_j == {uuid(2): pytest.approx(300.0), uuid(0): pytest.approx(200.0)}
    assert reading.energy_j == pytest.approx(500.0)
    assert [(d.index, d.uuid) for d in reading.devices] == [(0, uuid(2)), (1, uuid(0))]


def test_updates_count_the_device_that_updated_least() -> None:
    counters = [Counter(), Counter()]
    nvml = FakeNvml([FakeGpu(uuid(n), energy_mj=c) for n, c in enumerate(counters)])
    w = window(counter_meter(nvml, [0, 1], FakeClock()))
    for step in range(6):
        counters[0].add(10)
        if step % 2:
            counters[1].add(10)
        w.poll()
    assert w.updates() == 3
    w.stop()


def test_visible_devices_by_uuid() -> None:
    nvml = FakeNvml([FakeGpu(uuid(n), energy_mj=Counter()) for n in range(3)])
    gpus = resolve_gpus(nvml, [0, 1], environ={"CUDA_VISIBLE_DEVICES": f"{uuid(1)},{uuid(2)}"})
    assert [g.info.uuid for g in gpus] == [uuid(1), uuid(2)]
    assert gpus[0].info.name == "NVIDIA H100 80GB HBM3"  # bytes from NVML decoded


def test_cuda_uuids_from_torch_win_over_the_environment() -> None:
    nvml = FakeNvml([FakeGpu(uuid(n), energy_mj=Counter()) for n in range(3)])
    torch_style = [uuid(2).removeprefix("GPU-")]  # torch prints UUIDs without the prefix
    gpus = resolve_gpus(nvml, [0], environ={"CUDA_VISIBLE_DEVICES": "0"}, cuda_uuids=torch_style)
    assert [g.info.uuid for g in gpus] == [uuid(2)]


def test_none_means_every_visible_gpu() -> None:
    nvml = FakeNvml([FakeGpu(uuid(n), energy_mj=Counter()) for n in range(4)])
    gpus = resolve_gpus(nvml, None, environ={"CUDA_VISIBLE_DEVICES": "3,1"})
    assert [(g.info.index, g.info.uuid) for g in gpus] == [(0, uuid(3)), (1, uuid(1))]


@pytest.mark.parametrize(
    ("visible", "expected"),
    [(None, 4), ("", 0), ("3,1", 2), (f"{uuid(2)},0", 2), ("0,9,1", 1), ("MIG-abc", 1)],
)
def test_visible_gpus_are_counted_through_nvml_as_cuda_would(
    visible: str | None, expected: int
) -> None:
    nvml = FakeNvml([FakeGpu(uuid(n)) for n in range(4)])
    env = {} if visible is None else {"CUDA_VISIBLE_DEVICES": visible}
    assert count_visible_gpus(nvml, env) == expected
    assert nvml.initialised == 0  # NVML shut again


def test_no_readable_nvml_counts_no_gpu() -> None:
    from .fake_nvml import NVMLError_LibraryNotFound

    assert count_visible_gpus(FakeNvml(init_error=NVMLError_LibraryNotFound()), {}) is None


def test_gpu_with_mig_enabled_is_refused() -> None:
    nvml = FakeNvml([FakeGpu(uuid(0), energy_mj=Counter(), mig_enabled=True)])
    with pytest.raises(NotReadable, match="MIG mode enabled.*cannot measure"):
        resolve_gpus(nvml, [0], environ={})


def test_gpu_without_mig_support_is_accepted() -> None:
    nvml = FakeNvml([FakeGpu(uuid(0), energy_mj=Counter(), mig_capable=False)])
    assert len(resolve_gpus(nvml, [0], environ={})) == 1


def test_mig_uuid_from_torch_is_refused() -> None:
    nvml = FakeNvml([FakeGpu(uuid(0), energy_mj=Counter())])
    with pytest.raises(NotReadable, match="MIG instance"):
        resolve_gpus(nvml, [0], environ={}, cuda_uuids=["MIG-1234"])


def test_counter_not_supported_is_not_readable() -> None:
    nvml = FakeNvml([FakeGpu(uuid(0), name="Tesla P100-PCIE-16GB")])
    gpus = resolve_gpus(nvml, [0], environ={})
    with pytest.raises(NotReadable, match="nvmlDeviceGetTotalEnergyConsumption .* Not Supported"):
        nvml_counter_meter(nvml, gpus)


def test_counter_going_backwards_is_unavailable() -> None:
    counter = Counter()
    nvml = FakeNvml([FakeGpu(uuid(0), energy_mj=counter)])
    w = window(counter_meter(nvml, [0], FakeClock()))
    counter.value_mj -= 1_000
    reading = w.stop()
    assert isinstance(reading, EnergyUnavailable)
    assert "went backwards" in reading.reason


def lost() -> int:
    raise NVMLError_GpuIsLost()


def test_gpu_lost_mid_window_is_unavailable_with_reason() -> None:
    gpu = FakeGpu(uuid(0), energy_mj=Counter())
    nvml = FakeNvml([gpu])
    meter = nvml_counter_meter(nvml, resolve_gpus(nvml, [0], environ={}), poll_interval_s=0.001)
    w = meter.start()
    gpu.energy_mj = lost
    reads = gpu.reads
    deadline = time.monotonic() + 5
    while gpu.reads == reads and time.monotonic() < deadline:  # until the poller fails once
        time.sleep(0.005)
    reading = w.stop()
    assert isinstance(reading, EnergyUnavailable)
    assert "GPU is lost" in reading.reason and uuid(0) in reading.reason


def test_background_poller_counts_real_updates_and_joins() -> None:
    """A counter that steps on every 10th read, polled by the background thread on a clock that
    moves 2 ms per read: each step is one update, 20 ms apart, whatever else the machine runs
    (a counter stepping in wall time would be missed whenever the poller waits for a core)."""
    clock = FakeClock()
    reads = 0

    def stepping_mj() -> int:
        nonlocal reads
        reads += 1
        clock.advance(0.002)
        return reads // 10 * 1_000

    nvml = FakeNvml([FakeGpu(uuid(0), energy_mj=stepping_mj)])
    channels = [NvmlEnergyChannel(nvml, g) for g in resolve_gpus(nvml, [0], environ={})]
    meter = CounterMeter(METHOD, channels, min_updates=5, interval_s=0.002, clock=clock)
    w = meter.start()
    deadline = time.monotonic() + 60
    while w.updates() < 5 and time.monotonic() < deadline:
        time.sleep(0.005)
    reading = w.stop()
    assert isinstance(reading, EnergyReading)
    assert reading.updates >= 5 and not reading.short_window
    assert reading.energy_j == reading.updates  # every change was seen: 1 J per step
    assert reading.update_interval_s == pytest.approx(0.02)
    assert not [t for t in threading.enumerate() if t.name.startswith("llmbench-")]  # joined


def test_describe_names_method_devices_and_minimum() -> None:
    nvml = FakeNvml([FakeGpu(uuid(0), energy_mj=Counter())])
    meter = nvml_counter_meter(nvml, resolve_gpus(nvml, [0], environ={}))
    text = meter.describe()
    assert "nvml-counter" in text and uuid(0) in text and "min 20 updates" in text
    assert "no idle" in text


def test_open_nvml_failure_gives_the_reason() -> None:
    from .fake_nvml import NVMLError_LibraryNotFound

    with pytest.raises(NotReadable, match="nvmlInit failed: NVML Shared Library Not Found"):
        open_nvml(FakeNvml(init_error=NVMLError_LibraryNotFound()))


def test_fake_nvml_names_exist_in_real_pynvml() -> None:
    """The fake must not invent API: every name the meters call exists in nvidia-ml-py."""
    pynvml = pytest.importorskip("pynvml")
    names = [n for n in Nvml.__dict__ if n.startswith(("nvml", "NVML"))]
    assert len(names) >= 10
    missing = [n for n in names if not hasattr(pynvml, n)]
    assert not missing


def test_importing_the_energy_package_does_not_import_pynvml() -> None:
    import subprocess
    import sys

    code = (
        "import sys, pytest_llmbench.energy.select, pytest_llmbench.energy.probe;"
        "sys.exit('pynvml' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
