"""The idle baseline: power each device draws doing nothing, so readings can give dynamic joules.

Measured once per session with the meter itself (same method, same devices) before any engine
loads, or taken from a JSON cache keyed by device UUID while it is younger than ``max_age_s``.
A GPU stays above idle for a while after work, so a baseline measured late reads high.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

from pytest_llmbench.energy.base import (
    DeviceInfo,
    DeviceMeter,
    EnergyMeter,
    EnergyReading,
    EnergyUnavailable,
    IdleBaseline,
)

DEFAULT_IDLE_S = 5.0
DEFAULT_MAX_AGE_S = 24 * 3600.0
_VERSION = 1


def measure_idle(
    meter: EnergyMeter,
    duration_s: float = DEFAULT_IDLE_S,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[IdleBaseline, EnergyReading] | EnergyUnavailable:
    """Idle watts per device over ``duration_s`` of doing nothing (the caller must be idle)."""
    window = meter.start()
    sleep(duration_s)
    reading = window.stop()
    if isinstance(reading, EnergyUnavailable):
        return reading
    if reading.window_s <= 0:
        return EnergyUnavailable("idle window had no duration", reading.method)
    per_device_w = {key: j / reading.window_s for key, j in reading.per_device_j.items()}
    short = ", short window" if reading.short_window else ""
    source = f"measured over {reading.window_s:.1f} s, {reading.updates} updates{short}"
    return IdleBaseline(per_device_w, source), reading


def load_idle(
    path: Path,
    devices: tuple[DeviceInfo, ...],
    *,
    max_age_s: float = DEFAULT_MAX_AGE_S,
    now: float | None = None,
) -> IdleBaseline | None:
    """The cached baseline of ``devices`` if every one of them is cached and young enough."""
    now = time.time() if now is None else now
    entries = _read_cache(path)
    per_device_w: dict[str, float] = {}
    oldest_s = 0.0
    for device in devices:
        entry = entries.get(device.uuid)
        if not isinstance(entry, dict):
            return None
        try:
            age_s = now - float(entry["measured_at"])
            idle_w = float(entry["idle_w"])
        except (KeyError, TypeError, ValueError):
            return None
        if not 0 <= age_s <= max_age_s:
            return None
        per_device_w[device.uuid] = idle_w
        oldest_s = max(oldest_s, age_s)
    return IdleBaseline(per_device_w, f"cache {path}, age {_age_text(oldest_s)}")


def save_idle(
    path: Path, baseline: IdleBaseline, reading: EnergyReading, *, now: float | None = None
) -> None:
    """Add ``baseline`` to the cache at ``path`` (atomically; other devices' entries stay)."""
    now = time.time() if now is None else now
    entries = _read_cache(path)
    for key, idle_w in baseline.per_device_w.items():
        entries[key] = {
            "idle_w": idle_w,
            "measured_at": now,
            "window_s": reading.window_s,
            "method": reading.method,
        }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"version": _VERSION, "devices": entries}, indent=2, sort_keys=True))
    os.replace(tmp, path)


def establish_idle(
    meter: DeviceMeter,
    *,
    duration_s: float = DEFAULT_IDLE_S,
    cache_path: Path | None = None,
    max_age_s: float = DEFAULT_MAX_AGE_S,
    sleep: Callable[[float], None] = time.sleep,
    now: float | None = None,
) -> IdleBaseline | EnergyUnavailable:
    """Give ``meter`` its baseline: from the cache when fresh, else measured (and cached)."""
    baseline = None
    if cache_path is not None:
        baseline = load_idle(cache_path, meter.devices, max_age_s=max_age_s, now=now)
    if baseline is None:
        measured = measure_idle(meter, duration_s, sleep=sleep)
        if isinstance(measured, EnergyUnavailable):
            return measured
        baseline, reading = measured
        if cache_path is not None:
            save_idle(cache_path, baseline, reading, now=now)
    meter.idle = baseline
    return baseline


def _read_cache(path: Path) -> dict[str, object]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}  # missing or corrupt: measure again and rewrite it
    if not isinstance(data, dict) or data.get("version") != _VERSION:
        return {}
    devices = data.get("devices")
    return dict(devices) if isinstance(devices, dict) else {}


def _age_text(age_s: float) -> str:
    if age_s < 120:
        return f"{age_s:.0f} s"
    if age_s < 7200:
        return f"{age_s / 60:.0f} min"
    return f"{age_s / 3600:.1f} h"
