"""A daemon thread that calls one function at a fixed interval until stopped.

Meters poll in the background so that every counter update is seen even while the caller's thread
is busy in the workload; NVML and sysfs reads release the GIL, so polling costs the engine little.
"""

from __future__ import annotations

import threading
from collections.abc import Callable


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

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()
