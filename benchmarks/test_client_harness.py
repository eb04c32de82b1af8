"""The harness's own HTTP client, measured: record-only, no speed is asserted.

A fake OpenAI server that answers in microseconds (``fake_openai_server.py``, on CPUs of its own
where there are more than one) is driven by pytest-llmbench's client and by ``vllm bench
serve``'s client (when vLLM is installed), each pinned to one CPU, in interleaved rounds whose
order alternates: streamed completions of 32 -> 16 tokens at fixed concurrency. Then our client
split over several processes (``--llm-client-processes``) on the CPUs the server does not use.
Each line: requests per second over the measured run, and for ours the event-loop CPU per
request. Numbers and the machine they came from: docs/performance.md.

    pytest benchmarks/test_client_harness.py --llm-backend openai -s
    LLMBENCH_CLIENT_ROUNDS=4 LLMBENCH_CLIENT_REQUESTS=2000 \\
        pytest benchmarks/test_client_harness.py --llm-backend openai -s
    # scaling on a 16-core machine: 8 server workers on CPUs 8-15, clients on 0-7
    LLMBENCH_SERVER_CPUS=8-15 LLMBENCH_CLIENT_PROCESSES=1,2,4,8 \\
        pytest benchmarks/test_client_harness.py --llm-backend openai -s

``LLMBENCH_CLIENT_CONCURRENCY`` (default ``64,256``) sets the concurrencies;
``LLMBENCH_CLIENT_PROCESSES`` (default ``2``) the process counts of the split runs;
``LLMBENCH_SERVER_CPUS`` (default: the last CPU) the CPUs of the server, one worker process on
each; ``LLMBENCH_CLIENT_BASELINE=DIR[:DIR...]`` adds the client of other checkouts of this
project (e.g. an older commit, via ``git worktree add DIR COMMIT``) to every round.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROUNDS = int(os.environ.get("LLMBENCH_CLIENT_ROUNDS", "1"))
REQUESTS = int(os.environ.get("LLMBENCH_CLIENT_REQUESTS", "1000"))
CONCURRENCY = [int(c) for c in os.environ.get("LLMBENCH_CLIENT_CONCURRENCY", "64,256").split(",")]
BASELINES = [Path(p) for p in os.environ.get("LLMBENCH_CLIENT_BASELINE", "").split(os.pathsep) if p]
PROCESSES = [int(n) for n in os.environ.get("LLMBENCH_CLIENT_PROCESSES", "2").split(",")]
SERVER_CPUS = os.environ.get("LLMBENCH_SERVER_CPUS")


def server_cpu_s(pid: int) -> float | None:
    """CPU seconds the server and its workers have used so far (Linux /proc), else None."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        total = 0
        for one in [str(pid), *children]:
            fields = Path(f"/proc/{one}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime + stime, in clock ticks
    except (OSError, IndexError, ValueError):
        return None
    return total / os.sysconf("SC_CLK_TCK")


def run_client(
    argv: list[str], pythonpath: Path, cpus: list[int] | None = None
) -> dict[str, object]:
    """One client run in a fresh process (limited to ``cpus``, its processes too)."""
    prefix = ["taskset", "-c", ",".join(map(str, cpus))] if cpus else []
    done = subprocess.run(
        [*prefix, sys.executable, str(HERE / "client_harness.py"), *argv],
        capture_output=True,
        text=True,
        timeout=600,
        # that checkout first; what the environment adds (e.g. staged packages) after it
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join(
                filter(None, [str(pythonpath), os.environ.get("PYTHONPATH")])
            ),
        },  # fmt: skip
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, done.stderr[-3000:]
    result: dict[str, object] = json.loads(lines[-1][len("RESULT ") :])
    return result


def test_client_throughput_against_a_fast_server(llm_backend_name, record_property):
    if llm_backend_name != "openai":
        pytest.skip("measures the openai backend's client: select it with --llm-backend openai")
    from fake_openai_server import parse_cpus

    cpus = sorted(os.sched_getaffinity(0))
    server_cpus = parse_cpus(SERVER_CPUS) if SERVER_CPUS else cpus[-1:] if len(cpus) > 1 else []
    client_cpus = [c for c in cpus if c not in server_cpus] or cpus
    client_cpu = str(client_cpus[0])
    pin = ["--cpu", ",".join(map(str, server_cpus)), "--workers", str(len(server_cpus))]
    server = subprocess.Popen(
        [sys.executable, str(HERE / "fake_openai_server.py"), "--port", "0",
         *(pin if server_cpus else [])],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its workers are stopped with it
    )  # fmt: skip
    try:
        assert server.stdout is not None
        url = f"http://127.0.0.1:{int(server.stdout.readline().split()[1])}"
        from pytest_llmbench.workload.tinymodel import ensure_tiny_model

        tokenizer = str(ensure_tiny_model())
        clients: list[tuple[list[str], Path]] = [(["ours"], HERE.parent)]
        clients += [(["ours"], path) for path in BASELINES]
        if importlib.util.find_spec("vllm") is not None:
            clients.append((["vllm", "--tokenizer", tokenizer], HERE.parent))
        lines = []
        for round_ in range(ROUNDS):
            for concurrency in CONCURRENCY:
                order = clients if round_ % 2 == 0 else clients[::-1]
                for (argv, path), label in zip(order, _labels(order), strict=True):
                    args = [argv[0], url, str(REQUESTS), str(concurrency), *argv[1:]]
                    line = measured(server.pid, [*args, "--cpu", client_cpu], path)
                    line["client"] = label
                    lines.append(line)
                for processes in PROCESSES:
                    split = ["ours", url, str(REQUESTS), str(concurrency), "--processes"]
                    lines.append(
                        measured(server.pid, [*split, str(processes)], HERE.parent, client_cpus)
                    )
    finally:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(10)
    for line in lines:
        assert line["errors"] == 0, line
        assert line["output_tokens"] == REQUESTS * 16, line
        print(
            f"{line['client']:<20} c={line['concurrency']:<4} {line['requests_s']:8.0f} req/s"
            + (f" ({line['wire_requests_s']:6.0f} on the wire)" if line["wire_requests_s"] else "")
            + (
                f"  {line['cpu_ms_per_request']:.3f} ms loop CPU/request"
                f" (busiest {line['busiest_cpu_share']:.0%})"
                if line["cpu_ms_per_request"] is not None
                else ""
            )
            + (
                f"  server {line['server_cpu_ms_per_request']:.3f} ms CPU/request"
                if line["server_cpu_ms_per_request"] is not None
                else ""
            )
        )
    record_property(
        "client_harness",
        {
            "rounds": ROUNDS,
            "requests": REQUESTS,
            "load_average": os.getloadavg(),
            "cpus": {"server": server_cpus, "client": client_cpus},
            "runs": lines,
        },
    )


def measured(
    server_pid: int, argv: list[str], pythonpath: Path, cpus: list[int] | None = None
) -> dict[str, object]:
    """A client run, and the server's CPU per request over it (warm-up included)."""
    before = server_cpu_s(server_pid)
    line = run_client(argv, pythonpath, cpus)
    after = server_cpu_s(server_pid)
    served = REQUESTS + (200 if argv[0] == "ours" else 0)
    line["server_cpu_ms_per_request"] = (
        None if before is None or after is None else (after - before) / served * 1000
    )
    return line


def _labels(order: list[tuple[list[str], Path]]) -> list[str]:
    out = []
    for argv, path in order:
        if argv[0] == "vllm":
            out.append("vllm bench serve")
        elif path == HERE.parent:
            out.append("ours")
        else:
            out.append(f"ours ({path.name})")
    return out
