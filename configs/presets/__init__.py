"""Shipped presets; installed as the package ``pytest_llmbench.presets``."""
