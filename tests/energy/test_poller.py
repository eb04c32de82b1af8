"""The background poller: it stops, joins, and never swallows an error."""

from __future__ import annotations

import threading

import pytest

from pytest_llmbench.energy.base import NotReadable
from pytest_llmbench.energy.poller import Poller


def run_until_failed(tick_error: BaseException) -> Poller:
    failed = threading.Event()

    def tick() -> None:
        failed.set()
        raise tick_error

    poller = Poller(tick, 0.001, "llmbench-test")
    poller.start()
    assert failed.wait(5)
    return poller


def test_read_failure_becomes_the_reason() -> None:
    poller = run_until_failed(NotReadable("GPU is lost"))
    assert poller.finish() == "GPU is lost"


def test_a_bug_in_the_poller_is_raised_in_the_owner_thread() -> None:
    poller = run_until_failed(KeyError("oops"))
    with pytest.raises(KeyError, match="oops"):
        poller.finish()


def test_stop_joins_the_daemon_thread() -> None:
    ticks: list[int] = []
    poller = Poller(lambda: ticks.append(1), 0.001, "llmbench-test")
    poller.start()
    for _ in range(5000):
        if len(ticks) >= 3:
            break
        threading.Event().wait(0.001)
    assert poller.finish() is None
    count = len(ticks)
    threading.Event().wait(0.01)
    assert len(ticks) == count  # no tick after finish


def test_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="> 0 s"):
        Poller(lambda: None, 0, "llmbench-test")
