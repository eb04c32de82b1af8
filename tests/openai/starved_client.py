"""Run the openai backend's client against a server while another process takes its CPU.

    python starved_client.py URL CPU REQUESTS CONCURRENCY

Pins itself to ``CPU`` at the lowest priority (nice 19) beside a busy-looping process at normal
priority on the same CPU (for its first 30 s), runs ``REQUESTS`` requests at ``CONCURRENCY`` through
``OpenAIBackend.serve``, and prints the window's ``client`` section (pytest_llmbench.loadgen) as
JSON. With ``CPU`` -1 it runs unpinned and unstarved, for comparison.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
import time

from pytest_llmbench.backends.base import BackendSpec, GenerationRequest, Schedule
from pytest_llmbench.backends.openai.backend import OpenAIBackend
from pytest_llmbench.backends.openai.options import OpenAIOptions
from pytest_llmbench.compat import translate
from pytest_llmbench.config.schema import ExperimentConfig
from pytest_llmbench.energy.base import EnergyUnavailable
from pytest_llmbench.results import Repetition

HOG_S = 30.0  # then the client gets its CPU back: on a machine that is busy already, a client
# at nice 19 beside a busy loop gets under 1% of a CPU and would take many minutes to finish; the
# first 30 s of starvation are enough to make its requests late and its loop stall


def hog(cpu: int, seconds: float) -> None:
    os.sched_setaffinity(0, {cpu})
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def main() -> None:
    url, cpu, n, concurrency = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    config = ExperimentConfig()
    spec = BackendSpec(
        "unused-model", config, translate(config, "openai"), "cpu",
        {"openai": OpenAIOptions(server_url=url)},
    )  # fmt: skip
    backend = OpenAIBackend(spec)
    backend.start()
    requests = [GenerationRequest(f"r{i}", (5, 6, 7), 8, 8) for i in range(n)]
    backend.serve(requests[:1], Schedule())  # warm-up: imports and a connection, unstarved
    hogs = []
    if cpu >= 0:
        os.sched_setaffinity(0, {cpu})
        hogs = [multiprocessing.Process(target=hog, args=(cpu, HOG_S), daemon=True)]
        hogs[0].start()
        os.nice(19)  # the hog keeps normal priority: the client gets what it leaves
    try:
        started = time.perf_counter()
        completions = backend.serve(requests, Schedule(max_concurrency=concurrency))
        window_s = time.perf_counter() - started
    finally:
        for p in hogs:
            p.kill()
    rep = Repetition.from_completions(
        completions, window_s, 1, EnergyUnavailable("test"), client_loads=backend.client_load()
    )
    print(json.dumps({"errors": rep.errors, "client": rep.client}))


if __name__ == "__main__":
    main()
