"""Several client processes sharing one schedule: the split, the shared start, the exact merge."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from openai_fakes import FakeServer, make_backend, requests

from pytest_llmbench.backends.base import Schedule
from pytest_llmbench.backends.openai.options import OpenAIOptions, validate
from pytest_llmbench.backends.openai.processes import ClientProcesses, auto_processes, split
from pytest_llmbench.errors import ConfigError, EngineError


@given(
    st.integers(0, 60),
    st.integers(1, 9),
    st.one_of(st.none(), st.integers(1, 40)),
    st.booleans(),
)
def test_split_gives_every_request_once_with_its_offset_and_shares_the_cap(
    n: int, processes: int, cap: int | None, timed: bool
) -> None:
    offsets = tuple(i * 0.5 for i in range(n)) if timed else None
    shares = split(Schedule(offsets, cap), n, processes)
    indices = sorted(i for share, _ in shares for i in share)
    assert indices == list(range(n))
    assert len(shares) <= min(processes, n, cap or n)
    for share, schedule in shares:
        assert share == sorted(share)
        if offsets is not None:
            assert schedule.arrival_offsets_s == tuple(offsets[i] for i in share)
    if cap is not None and shares:
        assert sum(s.max_concurrency or 0 for _, s in shares) == cap
        assert all((s.max_concurrency or 0) >= 1 for _, s in shares)


def test_auto_is_one_process_per_cpu_less_one_for_a_local_server() -> None:
    assert auto_processes(local_server=False, cpus=4) == 4
    assert auto_processes(local_server=True, cpus=4) == 3
    assert auto_processes(local_server=True, cpus=1) == 1
    assert auto_processes(local_server=False, cpus=64) == 8


@pytest.mark.parametrize("value", [0, "0", "two", -1, 1.5])
def test_bad_process_counts_name_the_option(value: object) -> None:
    with pytest.raises(ConfigError, match="^--llm-client-processes: .* is not a number >= 1"):
        validate(OpenAIOptions(client_processes=value))  # type: ignore[arg-type]


def test_good_process_counts() -> None:
    assert validate(OpenAIOptions(client_processes="3")).client_processes == 3  # type: ignore[arg-type]
    assert validate(OpenAIOptions(client_processes="auto")).client_processes == "auto"


def test_two_processes_share_one_start_and_merge_exactly(
    tiny_model: Path, fake_server: FakeServer
) -> None:
    fake_server.state.delay_s = 0.0
    backend = make_backend(tiny_model, server_url=fake_server.url, client_processes=2)
    backend.start()
    try:
        offsets = tuple(i * 0.01 for i in range(10))
        out = backend.serve(requests(10), Schedule(arrival_offsets_s=offsets))
        loads = backend.client_load()
        again = backend.serve(requests(3), Schedule(max_concurrency=2))  # the pool is reused
        assert backend.info().details["client_processes"] == "2"
    finally:
        backend.close()
    assert [c.request_id for c in out] == [f"r{i}" for i in range(10)]
    assert all(c.error is None and c.output_tokens == 4 for c in out)
    assert len(fake_server.state.bodies) == 13
    assert loads is not None and len(loads) == 2 and all(load.wall_s > 0 for load in loads)
    # One start for both processes: every request was due at that start plus its own offset.
    starts = {
        round(c.scheduled_s - o, 9) for c, o in zip(out, offsets, strict=True) if c.scheduled_s
    }
    assert len(starts) == 1
    assert [c.request_id for c in again] == ["r0", "r1", "r2"] and not any(c.error for c in again)


def test_a_dead_client_process_fails_the_run_and_the_backend_starts_fresh_ones(
    tiny_model: Path, fake_server: FakeServer
) -> None:
    fake_server.state.delay_s = 0.0
    backend = make_backend(tiny_model, server_url=fake_server.url, client_processes=2)
    backend.start()
    pool = ClientProcesses(2)
    try:
        prepared = [backend._prepare(r) for r in requests(4)]
        pool._procs[1].kill()
        pool._procs[1].join(5)
        with pytest.raises(EngineError, match="client process llmbench-client-1 exited"):
            pool.run(backend._plan(), prepared, Schedule())
        assert not pool.alive
        backend.serve(requests(2), Schedule())
        first = backend._processes
        assert first is not None
        first._procs[0].kill()
        first._procs[0].join(5)
        out = backend.serve(requests(4), Schedule())  # a dead pool is replaced before a run
        assert backend._processes is not first and not any(c.error for c in out)
    finally:
        pool.close()
        backend.close()


def test_the_summary_and_report_carry_the_processes(
    pytester: pytest.Pytester, fake_server: FakeServer
) -> None:
    fake_server.state.delay_s = 0.0
    pytester.makepyfile(
        """
        def test_serving(llm_bench):
            llm_bench(num_prompts=6, input_tokens=4, output_tokens=4)
        """
    )
    result = pytester.runpytest_inprocess(
        "--llm-backend", "openai", "--llm-server-url", fake_server.url,
        "--llm-client-processes", "2", "--llm-repeat", "1", "--llm-warmup", "0",
        "--llm-json", "r.json",
    )  # fmt: skip
    result.assert_outcomes(passed=1)
    report = json.loads((pytester.path / "r.json").read_text())
    [res] = report["results"]
    assert res["engine_details"]["client_processes"] == "2"
    [rep] = res["repetitions"]
    assert rep["client"]["processes"] == 2 and rep["client"]["schedule_lag_s"]["count"] == 6
    bad = pytester.runpytest_inprocess("--llm-client-processes", "0")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    bad.stderr.fnmatch_lines(["*--llm-client-processes: '0' is not a number >= 1 or auto*"])
