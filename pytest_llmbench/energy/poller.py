"""Background polling: the daemon thread, and the meter shell counter and sampling meters share.

Meters poll in the background so that every counter update is seen even while the caller's thread
is busy in the workload; NVML and sysfs reads release the GIL, so polling costs the engine little.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Generic, Protocol, TypeVar

from pytest_llmbench.energy.base import (
    DeviceInfo,
    EnergyReading,
    EnergyUnavailable,
    EnergyWindow,
    IdleBaseline,
    NotReadable,
    UnavailableMeter,
    describe_meter,
)
from pytest_llmbench.energy.trace import TracePoints


class Poller:
    """Runs ``tick()`` every ``interval_s`` seconds in a daemon thread; ``stop()`` joins it.

    An exception raised by ``tick`` ends the thread and is kept in ``error`` for the owner to
    report: a background thread must not die silently.
    """

    def __init__(self, tick: Callable[[], None], interval_s: float, name: str) -> None:
        if interval_s <= 0:
            raise ValueError(f"poll interval must be > 0 s, got {interval_s}")
        self._tick = tick
        self.interval_s = interval_s
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self._tick()
            except BaseException as exc:  # kept for the owner, who reports it in the reading
                self.error = exc
                return

    def stop(self) -> None:
        """Stop and join; after this no ``tick`` runs, so the owner may read without locks."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def finish(self) -> str | None:
        """Stop; the reason when a read failed in the background (NotReadable), else None.

        Any other exception from ``tick`` is a bug and is raised here, in the owner's thread.
        """
        self.stop()
        if isinstance(self.error, NotReadable):
            return self.error.reason
        if self.error is not None:
            raise self.error
        return None


class Channel(Protocol):
    """One device a polled meter reads."""

    @property
    def device(self) -> DeviceInfo: ...


C = TypeVar("C", bound=Channel)


class PolledMeter(Generic[C]):
    """What counter and sampling meters share: channels read every ``interval_s`` by a poller,
    the idle baseline, and the library (NVML) they hold until ``close()``.

    ``background=False`` starts no poller: tests then call the window's ``poll()`` by hand.
    """

    polling = "polled"  # how describe() words the interval

    def __init__(
        self,
        method: str,
        channels: Sequence[C],
        *,
        interval_s: float,
        min_updates: int,
        clock: Callable[[], float] = time.perf_counter,
        background: bool = True,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        if not channels:
            raise ValueError(f"{method}: a meter needs at least one device")
        self.method = method
        self.channels = tuple(channels)
        self.interval_s = interval_s
        self.min_updates = min_updates
        self.idle: IdleBaseline | None = None
        self.clock = clock
        self.background = background
        self._on_close = on_close

    @property
    def devices(self) -> tuple[DeviceInfo, ...]:
        return tuple(channel.device for channel in self.channels)

    def _open(self) -> EnergyWindow:
        raise NotImplementedError

    def start(self) -> EnergyWindow:
        """A running window; an unavailable one (with the reason) when the first read fails."""
        try:
            return self._open()
        except NotReadable as exc:
            return UnavailableMeter(exc.reason, self.method).start()

    def poller(self, tick: Callable[[], None]) -> Poller | None:
        """A started poller calling ``tick``, or None without background polling."""
        if not self.background:
            return None
        poller = Poller(tick, self.interval_s, f"llmbench-{self.method}")
        poller.start()
        return poller

    def reading(
        self,
        per_device_j: dict[str, float],
        window_s: float,
        updates: int,
        *,
        sample_interval_s: float | None = None,
        update_interval_s: float | None = None,
        power_trace: dict[str, TracePoints] | None = None,
    ) -> EnergyReading:
        """The reading of a finished window: totals, idle baseline and the short-window flag."""
        return EnergyReading(
            method=self.method,
            window_s=window_s,
            energy_j=sum(per_device_j.values()),
            per_device_j=per_device_j,
            devices=self.devices,
            updates=updates,
            idle_power_w=self.idle.total_w(self.devices) if self.idle else None,
            short_window=updates < self.min_updates,
            sample_interval_s=sample_interval_s,
            update_interval_s=update_interval_s,
            power_trace=power_trace or {},
        )

    def describe(self) -> str:
        detail = f"{self.polling} every {self.interval_s * 1e3:.0f} ms"
        return describe_meter(self.method, self.devices, self.min_updates, self.idle, detail)

    def close(self) -> None:
        """Release the library behind the channels (NVML); call once, at session end."""
        if self._on_close is not None:
            self._on_close()
            self._on_close = None


class PolledWindow(Generic[C]):
    """A window's life: reads in the background, then one last read at ``stop()``.

    Subclasses take their first read, then call ``_start_polling()``; they give ``poll()`` (one
    read of every channel) and ``_reading()`` (the result once the poller has stopped).
    """

    def __init__(self, meter: PolledMeter[C]) -> None:
        self._meter = meter
        self._clock = meter.clock
        self._lock = threading.Lock()
        self._poller: Poller | None = None
        self._result: EnergyReading | EnergyUnavailable | None = None

    def _start_polling(self) -> None:
        self._poller = self._meter.poller(self.poll)

    def _read_failed(self) -> bool:
        """A background read failed: the window can only read as unavailable, however long.

        Its ``updates()`` then says "enough", so the runner ends it instead of repeating the
        workload up to its pass cap for updates that will never come.
        """
        return self._poller is not None and self._poller.error is not None

    def poll(self) -> None:
        raise NotImplementedError

    def _reading(self) -> EnergyReading:
        raise NotImplementedError

    def stop(self) -> EnergyReading | EnergyUnavailable:
        """End the window (idempotent: a second call returns the same reading)."""
        if self._result is None:
            self._result = self._finish()
        return self._result

    def _finish(self) -> EnergyReading | EnergyUnavailable:
        failed = self._poller.finish() if self._poller is not None else None
        if failed is not None:
            return EnergyUnavailable(failed, self._meter.method)
        try:
            self.poll()  # the last read marks the end
        except NotReadable as exc:
            return EnergyUnavailable(exc.reason, self._meter.method)
        return self._reading()
