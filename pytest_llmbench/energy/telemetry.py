"""GPU state around each repetition: SM clock, temperature, power limit, throttling.

Between-run drift on a GPU often has a visible cause: a card that is hot, power-capped or
clocked down measures slower and hungrier. Each repetition records the state of its GPUs just
before and just after its energy window (never inside it: one NVML read costs milliseconds),
plus NVML's cumulative power and thermal violation times, whose growth over the window says
that the GPU was held back during it. A repetition is *throttled* when a throttling clock-event
reason was set at either end or a violation time grew.

Everything recorded is plain JSON (ints, floats, strings, lists, dicts), so it travels through
pytest-xdist and into reports as it is.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

from pytest_llmbench.energy.base import NotReadable
from pytest_llmbench.energy.gpus import Nvml, NvmlGpu, open_nvml, resolve_gpus

# nvmlClocksEventReason* bits (nvml.h); the throttling ones hold the clocks below what the
# work asks for. Idle, application-clock and display settings are states, not throttling.
CLOCK_EVENT_REASONS: dict[int, str] = {
    0x1: "gpu_idle",
    0x2: "applications_clocks_setting",
    0x4: "sw_power_cap",
    0x8: "hw_slowdown",
    0x10: "sync_boost",
    0x20: "sw_thermal_slowdown",
    0x40: "hw_thermal_slowdown",
    0x80: "hw_power_brake_slowdown",
    0x100: "display_clock_setting",
}
THROTTLING = frozenset(
    {
        "sw_power_cap",
        "hw_slowdown",
        "sw_thermal_slowdown",
        "hw_thermal_slowdown",
        "hw_power_brake_slowdown",
    }
)
_CLOCK_SM = 1  # NVML_CLOCK_SM
_TEMPERATURE_GPU = 0  # NVML_TEMPERATURE_GPU
_POLICIES = {"power": 0, "thermal": 1}  # NVML_PERF_POLICY_POWER, NVML_PERF_POLICY_THERMAL


def reason_names(mask: int) -> list[str]:
    """The names of the clock-event reason bits set in ``mask``, in bit order."""
    return [name for bit, name in CLOCK_EVENT_REASONS.items() if mask & bit]


class GpuTelemetry:
    """Reads the state of the GPUs a backend uses; every field that cannot be read is None."""

    def __init__(self, nvml: Nvml, gpus: Sequence[NvmlGpu]) -> None:
        self._nvml: Any = nvml  # the optional functions below are not in the Nvml protocol
        self._gpus = tuple(gpus)

    @classmethod
    def open(cls, cuda_devices: Sequence[int] | None, nvml: Nvml | None = None) -> GpuTelemetry:
        """Telemetry of CUDA ordinals ``cuda_devices``; NotReadable when NVML cannot see them."""
        module = open_nvml(nvml)
        return cls(module, resolve_gpus(module, cuda_devices))

    def _call(self, name: str, *args: Any) -> Any:
        fn = getattr(self._nvml, name, None)
        if fn is None:
            return None
        try:
            return fn(*args)
        except Exception:  # an unsupported query leaves its field empty, never fails a run
            return None

    def _reasons(self, handle: object) -> int | None:
        mask = self._call("nvmlDeviceGetCurrentClocksEventReasons", handle)
        if mask is None:
            mask = self._call("nvmlDeviceGetCurrentClocksThrottleReasons", handle)
        return None if mask is None else int(mask)

    def _violation_ns(self, handle: object, policy: int) -> int | None:
        status = self._call("nvmlDeviceGetViolationStatus", handle, policy)
        value = getattr(status, "violationTime", None)
        return None if value is None else int(value)

    def snapshot(self) -> list[dict[str, Any]]:
        """One dict per GPU: its state now."""
        out = []
        for gpu in self._gpus:
            h = gpu.handle
            clock = self._call("nvmlDeviceGetClockInfo", h, _CLOCK_SM)
            temp = self._call("nvmlDeviceGetTemperature", h, _TEMPERATURE_GPU)
            limit_mw = self._call("nvmlDeviceGetEnforcedPowerLimit", h)
            out.append(
                {
                    "index": gpu.info.index,
                    "sm_clock_mhz": None if clock is None else int(clock),
                    "temperature_c": None if temp is None else int(temp),
                    "power_limit_w": None if limit_mw is None else int(limit_mw) / 1000.0,
                    "reasons": self._reasons(h),
                    "violation_ns": {k: self._violation_ns(h, p) for k, p in _POLICIES.items()},
                }
            )
        return out

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._nvml.nvmlShutdown()


def window_telemetry(
    before: Sequence[dict[str, Any]], after: Sequence[dict[str, Any]]
) -> dict[str, Any]:
    """What a repetition records: each GPU's state at both ends of the window, and whether it
    ran throttled (a throttling reason at either end, or violation time that grew)."""
    gpus = []
    for b, a in zip(before, after, strict=True):
        names = sorted(
            set(reason_names(b["reasons"] or 0)) | set(reason_names(a["reasons"] or 0)),
            key=list(CLOCK_EVENT_REASONS.values()).index,
        )
        violation_s: dict[str, float | None] = {}
        for policy in _POLICIES:
            start, end = b["violation_ns"][policy], a["violation_ns"][policy]
            violation_s[policy] = None if start is None or end is None else (end - start) / 1e9
        throttled = bool(THROTTLING.intersection(names)) or any(
            v is not None and v > 0 for v in violation_s.values()
        )
        gpus.append(
            {
                "index": b["index"],
                "sm_clock_mhz": [b["sm_clock_mhz"], a["sm_clock_mhz"]],
                "temperature_c": [b["temperature_c"], a["temperature_c"]],
                "power_limit_w": a["power_limit_w"],
                "clock_event_reasons": names,
                "violation_s": violation_s,
                "throttled": throttled,
            }
        )
    return {"gpus": gpus, "throttled": any(g["throttled"] for g in gpus)}


def open_telemetry(cuda_devices: Sequence[int] | None) -> tuple[GpuTelemetry | None, str]:
    """Telemetry for a CUDA backend, or None with the reason (never an error)."""
    try:
        return GpuTelemetry.open(cuda_devices), ""
    except NotReadable as exc:
        return None, str(exc)
    except Exception as exc:  # telemetry is a diagnosis: it must never stop a benchmark
        return None, f"GPU telemetry failed: {exc}"
