"""pytest-llmbench: benchmark LLM inference engines (throughput, latency, energy) from pytest.

Importing this package is cheap on purpose: engines and torch load only when a backend is used.
"""

from __future__ import annotations

__version__ = "0.1.0"
