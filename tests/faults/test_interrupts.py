"""Ctrl-C (SIGINT to the process group) and a CI runner's cancel (SIGTERM to pytest) mid-test.

Each backend kind is interrupted while it works: an engine in its own process (blocked in
``generate``), a managed OpenAI server (a request that never ends) and pytorch in pytest's own
process. What must hold: a valid partial report (``complete: false``, the finished result kept)
and no process that the session started still running, checked by pid.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from .engines import FAULTY_BACKEND, STAND_IN_SERVER
from .helpers import (
    descendants,
    engine_workers,
    result_ids,
    valid_report,
    wait_for,
    wait_gone,
)

BENCH = """
import os
from pathlib import Path

FAULT_DIR = Path(os.environ["FAULT_DIR"])

def test_first(llm_bench):
    llm_bench(num_prompts=1, input_tokens=4, output_tokens=2)

def test_interrupted(llm_bench):
    if llm_bench.backend == "faulty":
        (FAULT_DIR / "next").write_text("hang")  # the engine blocks in generate, then says so
    else:
        (FAULT_DIR / "hanging").write_text(str(os.getpid()))
    while True:  # openai: the server never answers; pytorch: generate until interrupted
        llm_bench(num_prompts=1, input_tokens=4, output_tokens=2)
"""

BACKEND_ARGS = {
    "faulty": ["--llm-backend", "faulty"],
    "openai": ["--llm-backend", "openai", "--llm-server-arg=--hang-after", "--llm-server-arg=1"],
    "pytorch": ["--llm-backend", "pytorch"],
}


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("backend", list(BACKEND_ARGS))
def test_interrupt_leaves_a_partial_report_and_no_process(
    pytester: pytest.Pytester, backend: str, sig: signal.Signals
) -> None:
    if backend == "pytorch":
        pytest.importorskip("torch")
    if backend == "openai":
        pytest.importorskip("aiohttp")
    pytester.makeconftest(FAULTY_BACKEND + STAND_IN_SERVER)
    pytester.makepyfile(test_bench=BENCH)
    fault_dir = pytester.path / "faults"
    fault_dir.mkdir()
    report = pytester.path / "out" / "report.json"
    env = {**os.environ, "FAULT_DIR": str(fault_dir), "PYTHONPATH": os.pathsep.join(sys.path)}
    argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q"]
    argv += [*BACKEND_ARGS[backend], "--llm-repeat", "1", "--llm-warmup", "0"]
    argv += ["--llm-energy", "none", "--llm-json", str(report)]
    # Started as from an interactive shell, where Ctrl-C is not ignored. A command started in
    # the background without job control (`nohup pytest ... &`, some CI runners) ignores SIGINT,
    # and an ignored signal stays ignored across exec: the inner pytest would never see it.
    ignored = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        proc = subprocess.Popen(
            argv,
            cwd=pytester.path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # its own process group, as a shell gives a foreground job
        )
    finally:
        signal.signal(signal.SIGINT, ignored)
    try:
        # hang guards, here and below: engines start and stop slowly on a busy machine
        wait_for(fault_dir / "hanging", timeout_s=300)
        time.sleep(0.5)  # well inside the call
        started = descendants(proc.pid)
        if sig == signal.SIGINT:
            os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C reaches the whole foreground group
        else:
            os.kill(proc.pid, signal.SIGTERM)  # a runner's cancel reaches pytest only
        try:
            output, _ = proc.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            # pytest's faulthandler prints every thread's stack on SIGABRT: where it hangs
            os.kill(proc.pid, signal.SIGABRT)
            output, _ = proc.communicate(timeout=60)
            raise AssertionError(f"no exit 300 s after {sig.name}:\n{output[-6000:]}") from None
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, output[-3000:]
    assert "INTERNALERROR" not in output
    if backend != "pytorch":
        assert started, "the engine or server process was not found"
    if backend == "faulty":
        assert engine_workers(fault_dir) <= started  # the engine's own worker was seen
    assert wait_gone(started) == set(), f"left running: {started}\n{output[-3000:]}"
    data = valid_report(report)
    assert data["complete"] is False
    assert result_ids(data)[:1] == ["test_first"]
