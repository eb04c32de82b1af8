"""Whether a run already uses the gpu-gate preset, so that a remedy does not recommend it."""

from __future__ import annotations

from typing import Any

GATE_PRESET = "gpu-gate"


def _gate_preset() -> dict[str, Any]:
    from pytest_llmbench.config.load import load_preset

    try:
        return load_preset(GATE_PRESET)
    except Exception:  # a broken install: the remedy then simply names the preset
        return {}


def uses_gate_preset(config: dict[str, Any]) -> bool:
    """Whether ``config`` (a result's resolved config) holds every setting of the gpu-gate
    preset, so that a remedy does not recommend it to a run that already uses it."""
    preset = _gate_preset()
    return bool(preset) and _holds(config, preset)


def _holds(config: Any, wanted: Any) -> bool:
    if isinstance(wanted, dict):
        return isinstance(config, dict) and all(_holds(config.get(k), v) for k, v in wanted.items())
    return bool(config == wanted)
