"""Configuration: the ExperimentConfig schema, its validation and loading."""

from __future__ import annotations

from pytest_llmbench.config.load import available_presets, resolve_config
from pytest_llmbench.config.schema import ExperimentConfig

__all__ = ["ExperimentConfig", "available_presets", "resolve_config"]
