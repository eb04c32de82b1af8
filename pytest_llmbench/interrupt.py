"""SIGTERM ends a session the way Ctrl-C does.

CI runners cancel a job with SIGTERM (then SIGKILL after a grace period). Python's default for
SIGTERM is to die at once: no partial report, no ``atexit``, and engine processes or servers in
their own process group left running. Raised as KeyboardInterrupt instead, pytest reports the
session as interrupted, the JSON report is written (``complete: false``) and every engine and
server is stopped.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from types import FrameType
from typing import Any

_previous: list[Any] = []  # the handler ours replaced, while installed


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    # Once: a second SIGTERM must not interrupt the clean-up the first one started.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt(f"terminated by {signal.Signals(signum).name}")


def install() -> None:
    """Handle SIGTERM as KeyboardInterrupt, unless someone else already handles it."""
    if _previous or threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return  # a handler of the user's or of a runner: theirs to keep
    _previous.append(signal.signal(signal.SIGTERM, _on_sigterm))


def uninstall() -> None:
    """Put back the handler that was there before :func:`install`."""
    if _previous:
        with contextlib.suppress(ValueError):
            signal.signal(signal.SIGTERM, _previous.pop())
