"""The object behind the ``energy`` fixture: measure the energy of any code in a test.

    def test_prefill(energy):
        with energy.measure() as m:
            run_prefill()
        if m.available:                       # False where no meter reads: m.reason says why
            assert m.joules < 500             # m.joules raises EnergyUnavailableError there

``energy.require()`` at the top skips the test instead, with the reason, where nothing reads.

A block shorter than the meter's minimum window is flagged (``m.short_window``), not stretched:
``energy.repeat(fn)`` runs ``fn`` as often as the window needs, as the runner does.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from pytest_llmbench.energy.base import (
    EnergyMeter,
    EnergyReading,
    EnergyUnavailable,
    UnavailableMeter,
)
from pytest_llmbench.errors import LLMBenchError


class EnergyUnavailableError(LLMBenchError):
    """Energy was asked for where no meter could read it; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"energy unavailable: {reason}")


@dataclass
class Measurement:
    """The result of one ``measure()`` block or ``repeat()`` call; filled when it ends."""

    _reading: EnergyReading | EnergyUnavailable | None = None
    iterations: int = 1  # calls of the measured function inside the window (repeat())

    @property
    def reading(self) -> EnergyReading | EnergyUnavailable:
        if self._reading is None:
            raise RuntimeError("the measurement is still running: read it after the with block")
        return self._reading

    @property
    def available(self) -> bool:
        """True when the window has a reading; False where no meter could read."""
        return isinstance(self.reading, EnergyReading)

    @property
    def reason(self) -> str | None:
        """Why there is no reading (e.g. ``--llm-energy none``); None when there is one."""
        reading = self.reading
        return reading.reason if isinstance(reading, EnergyUnavailable) else None

    def _energy(self) -> EnergyReading:
        reading = self.reading
        if isinstance(reading, EnergyUnavailable):
            raise EnergyUnavailableError(reading.reason)
        return reading

    @property
    def joules(self) -> float:
        """Total energy of the window over all measured devices (idle included); raises
        EnergyUnavailableError, with the reason, where there is no reading (check ``available``)."""
        return self._energy().energy_j

    @property
    def dynamic_joules(self) -> float | None:
        """Energy above the idle baseline; None when the meter has no baseline."""
        return self._energy().dynamic_energy_j

    @property
    def joules_per_iteration(self) -> float:
        return self.joules / self.iterations

    @property
    def window_s(self) -> float:
        return self._energy().window_s

    @property
    def short_window(self) -> bool:
        """Fewer counter updates than the meter's minimum: the joules carry a large error."""
        return self._energy().short_window


class EnergyProbe:
    """Measures blocks of test code with one meter (chosen by ``--llm-energy``)."""

    def __init__(self, meter: EnergyMeter, note: str = "") -> None:
        self.meter = meter
        self.note = note  # why this meter was chosen, for messages

    @property
    def available(self) -> bool:
        """False when the meter is known to read nothing (an UnavailableMeter)."""
        return not isinstance(self.meter, UnavailableMeter)

    @property
    def reason(self) -> str | None:
        """Why energy is unavailable; None when a meter is there."""
        return self.meter.reason if isinstance(self.meter, UnavailableMeter) else None

    def require(self) -> None:
        """Skip the calling test, with the reason, when no meter is readable."""
        if not self.available:
            import pytest

            pytest.skip(f"energy unavailable: {self.reason}")

    @contextmanager
    def measure(self) -> Iterator[Measurement]:
        """One energy window around the ``with`` block; closed even if the block raises."""
        measurement = Measurement()
        window = self.meter.start()
        try:
            yield measurement
        finally:
            measurement._reading = window.stop()

    def repeat(
        self, fn: Callable[[], object], *, max_iterations: int = 1000, max_s: float = 600.0
    ) -> Measurement:
        """Call ``fn`` inside one window until it has the meter's minimum updates.

        Stops early at ``max_iterations`` calls or ``max_s`` seconds (the reading is then
        flagged short). ``m.joules_per_iteration`` is the energy of one call.
        """
        measurement = Measurement(iterations=0)
        window = self.meter.start()
        started_s = time.perf_counter()
        try:
            while True:
                fn()
                measurement.iterations += 1
                if (
                    window.updates() >= self.meter.min_updates
                    or measurement.iterations >= max_iterations
                    or time.perf_counter() - started_s >= max_s
                ):
                    break
        finally:
            measurement._reading = window.stop()
        return measurement
