"""GPU telemetry around a window, read through a fake pynvml (the hardware boundary)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from pytest_llmbench.energy.telemetry import GpuTelemetry, reason_names, window_telemetry
from tests.energy.fake_nvml import FakeGpu, FakeNvml, NVMLError_NotSupported, uuid


@dataclass
class Violation:
    referenceTime: int  # noqa: N815 - pynvml's field names
    violationTime: int  # noqa: N815


@dataclass
class StatefulNvml(FakeNvml):
    """FakeNvml plus the state queries, with values a test sets."""

    clock_mhz: int = 1980
    temperature_c: int = 45
    limit_mw: int = 700_000
    reasons: int = 0x0
    power_violation_ns: int = 0
    queries: list[str] = field(default_factory=list)

    def nvmlDeviceGetClockInfo(self, handle: object, clock: int) -> int:
        assert clock == 1  # NVML_CLOCK_SM
        return self.clock_mhz

    def nvmlDeviceGetTemperature(self, handle: object, sensor: int) -> int:
        return self.temperature_c

    def nvmlDeviceGetEnforcedPowerLimit(self, handle: object) -> int:
        return self.limit_mw

    def nvmlDeviceGetCurrentClocksEventReasons(self, handle: object) -> int:
        return self.reasons

    def nvmlDeviceGetViolationStatus(self, handle: object, policy: int) -> Violation:
        if policy == 1:  # thermal: not supported on this fake GPU
            raise NVMLError_NotSupported()
        return Violation(0, self.power_violation_ns)


def test_a_calm_window_records_state_and_is_not_throttled() -> None:
    nvml = StatefulNvml(gpus=[FakeGpu(uuid(0))])
    telemetry = GpuTelemetry.open([0], nvml=nvml)
    before = telemetry.snapshot()
    nvml.temperature_c = 61
    state = window_telemetry(before, telemetry.snapshot())
    (gpu,) = state["gpus"]
    assert gpu["sm_clock_mhz"] == [1980, 1980] and gpu["temperature_c"] == [45, 61]
    assert gpu["power_limit_w"] == 700.0
    assert gpu["violation_s"] == {"power": 0.0, "thermal": None}  # unsupported: None, not 0
    assert not state["throttled"] and gpu["clock_event_reasons"] == []
    assert json.loads(json.dumps(state)) == state  # plain JSON, as xdist and reports need


def test_a_power_capped_window_is_throttled_by_reason_or_by_violation_time() -> None:
    nvml = StatefulNvml(gpus=[FakeGpu(uuid(0))])
    telemetry = GpuTelemetry.open([0], nvml=nvml)
    before = telemetry.snapshot()
    nvml.power_violation_ns = 250_000_000  # held at the power cap for 0.25 s in the window
    nvml.clock_mhz = 1410
    state = window_telemetry(before, telemetry.snapshot())
    assert state["throttled"] and state["gpus"][0]["violation_s"]["power"] == 0.25
    nvml.reasons = 0x4 | 0x1  # sw_power_cap (+ idle, which is a state, not throttling)
    state = window_telemetry(telemetry.snapshot(), telemetry.snapshot())
    assert state["throttled"]
    assert state["gpus"][0]["clock_event_reasons"] == ["gpu_idle", "sw_power_cap"]
    nvml.reasons = 0x1
    assert not window_telemetry(telemetry.snapshot(), telemetry.snapshot())["throttled"]


def test_queries_an_old_driver_lacks_leave_fields_empty() -> None:
    nvml = FakeNvml(gpus=[FakeGpu(uuid(0))])  # no clock, temperature or reason queries at all
    telemetry = GpuTelemetry.open([0], nvml=nvml)
    state = window_telemetry(telemetry.snapshot(), telemetry.snapshot())
    gpu = state["gpus"][0]
    assert gpu["sm_clock_mhz"] == [None, None] and gpu["power_limit_w"] is None
    assert not state["throttled"]


def test_reason_names_follow_nvml_bits() -> None:
    assert reason_names(0x8 | 0x40) == ["hw_slowdown", "hw_thermal_slowdown"]
    assert reason_names(0) == []
