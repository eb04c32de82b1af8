"""OpenAI-compatible servers misbehaving: HTTP errors and timeouts, never ready, killed mid-run."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .engines import STAND_IN_SERVER
from .helpers import result_ids, valid_report

pytest.importorskip("aiohttp")

from tests.openai.openai_fakes import FakeServer  # noqa: E402

QUICK = ("--llm-repeat", "1", "--llm-warmup", "0", "--llm-energy", "none")


@pytest.fixture
def server() -> Iterator[FakeServer]:
    fake = FakeServer()
    try:
        yield fake
    finally:
        fake.stop()


def test_http_errors_and_timeouts_count_in_the_error_rate_and_the_run_completes(
    pytester: pytest.Pytester, server: FakeServer
) -> None:
    server.state.script = ["ok", "http500", "http429", "slow", "ok"]
    server.state.slow_s = 3.0
    pytester.makepyfile(
        test_bench="""
        def test_serving(llm_bench):
            result = llm_bench(num_prompts=5, input_tokens=4, output_tokens=4)
            [rep] = result.repetitions
            assert (rep.requests, rep.errors) == (2, 3)
        """
    )
    result = pytester.runpytest_inprocess(
        "--llm-backend", "openai", "--llm-server-url", server.url, "--llm-request-timeout", "0.5",
        *QUICK, "--llm-json", "r.json",
    )  # fmt: skip
    # passed: 3 errors, so the slow request was cut by the 0.5 s timeout (it answers after 3 s)
    result.assert_outcomes(passed=1)
    [measured] = valid_report(pytester.path / "r.json")["results"]
    assert measured["aggregate"]["error_rate"] == pytest.approx(3 / 5)
    result.stdout.fnmatch_lines(["*test_serving*60.0*"])  # err % in the terminal summary


def test_server_never_ready_fails_after_the_startup_timeout_with_its_log(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(STAND_IN_SERVER)
    pytester.makepyfile(
        test_bench="""
        def test_one(llm_bench):
            llm_bench(num_prompts=1, input_tokens=4, output_tokens=2)

        def test_two(llm_bench):
            llm_bench(num_prompts=1, input_tokens=4, output_tokens=2)
        """
    )
    result = pytester.runpytest_inprocess(
        "--llm-backend", "openai", "--llm-server-startup-timeout", "1.5",
        "--llm-server-arg=--mode", "--llm-server-arg=never", *QUICK,
    )  # fmt: skip
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(
        ["*vllm server not ready after 1.5 s*last lines:*", "serving", "*vllm server not ready*"]
    )
    assert "Traceback" not in result.stdout.str()
    # one wait for start-up: the second test errors with the same message, not a second wait
    assert (pytester.path / "server-launches.txt").read_text().split() == ["vllm"]


def test_server_killed_mid_run_fails_that_test_with_its_log_and_the_next_restarts_it(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(STAND_IN_SERVER)
    pytester.makepyfile(
        test_bench="""
        import os, signal
        from pathlib import Path

        def server_pid():
            for entry in Path("/proc").iterdir():
                if not entry.name.isdigit():
                    continue
                try:
                    cmdline = (entry / "cmdline").read_bytes()
                    parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                except OSError:
                    continue
                if b"fake_server_proc.py" in cmdline and parent == os.getpid():
                    return int(entry.name)
            raise AssertionError("no server process")

        def test_before(llm_bench):
            llm_bench(num_prompts=1, input_tokens=4, output_tokens=2)

        def test_killed(llm_bench):
            os.kill(server_pid(), signal.SIGKILL)
            llm_bench(num_prompts=1, input_tokens=4, output_tokens=2)

        def test_after(llm_bench):
            llm_bench(num_prompts=1, input_tokens=4, output_tokens=2)
        """
    )
    result = pytester.runpytest_inprocess(
        "--llm-backend", "openai", "--llm-server-startup-timeout", "30", *QUICK,
        "--llm-json", "r.json",
    )  # fmt: skip
    result.assert_outcomes(passed=2, failed=1)
    assert (pytester.path / "server-launches.txt").read_text().split() == ["vllm", "vllm"]
    result.stdout.fnmatch_lines(
        ["*the vllm server died (killed by SIGKILL); log *server.log, last lines:*", "*serving*"]
    )
    report = valid_report(pytester.path / "r.json")
    assert result_ids(report) == ["test_before", "test_after"]
