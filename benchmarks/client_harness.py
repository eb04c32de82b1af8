"""Drive one client against a server and print what it achieved, as one JSON line.

    python benchmarks/client_harness.py ours URL REQUESTS CONCURRENCY [--processes N] [--cpu C]
    python benchmarks/client_harness.py vllm URL REQUESTS CONCURRENCY --tokenizer DIR [--cpu C]

``ours``: pytest-llmbench's openai backend (``OpenAIBackend.serve``), prompts of 32 token ids
and 16 forced output tokens; after one unmeasured warm-up run of 200 requests it prints the
measured run's requests per second (over the wall time of the run, and on the wire: first send
to last end), the event-loop CPU seconds of its client processes, and errors. ``vllm``: the
client of ``vllm bench serve`` (``vllm.benchmarks.serve``) on its random dataset of the same
lengths, with ``--ignore-eos``; it prints the request throughput and failures vLLM reports (its
duration covers the requests only, not its start-up). ``--cpu`` pins the client (and its
processes) to one CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

INPUT_TOKENS = 32
OUTPUT_TOKENS = 16


def ours(url: str, requests: int, concurrency: int, processes: int) -> dict[str, object]:
    from pytest_llmbench.backends.base import BackendSpec, GenerationRequest, Schedule
    from pytest_llmbench.backends.openai.backend import OpenAIBackend
    from pytest_llmbench.backends.openai.options import OpenAIOptions
    from pytest_llmbench.compat import translate
    from pytest_llmbench.config.schema import ExperimentConfig

    config = ExperimentConfig()
    options = {"server_url": url, "max_connections": max(concurrency, 1)}
    if processes > 1:
        options["client_processes"] = processes
    spec = BackendSpec(
        "unused", config, translate(config, "openai"), "cpu", {"openai": OpenAIOptions(**options)}
    )
    backend = OpenAIBackend(spec)
    backend.start()
    prompt = tuple(range(5, 5 + INPUT_TOKENS))
    batch = [
        GenerationRequest(f"r{i}", prompt, OUTPUT_TOKENS, OUTPUT_TOKENS) for i in range(requests)
    ]
    schedule = Schedule(max_concurrency=concurrency)
    try:
        backend.serve(batch[:200], schedule)  # warm-up: imports, connections, processes
        started = time.perf_counter()
        done = backend.serve(batch, schedule)
        wall_s = time.perf_counter() - started
        loads = getattr(backend, "client_load", lambda: None)() or ()
    finally:
        backend.close()
    cpu_s = sum(load.cpu_s for load in loads) or None
    return {
        "client": "ours" if processes == 1 else f"ours x{processes}",
        "requests_s": requests / wall_s,
        # On the wire only: first send to last end. What the wall time adds is this process
        # handing shares to client processes and collecting their completions.
        "wire_requests_s": requests / (max(c.end_s for c in done) - min(c.start_s for c in done)),
        "loop_cpu_s": cpu_s,
        "cpu_ms_per_request": None if cpu_s is None else cpu_s / requests * 1000,
        # 1.0: a client process's loop was busy the whole run (the busiest one counts)
        "busiest_cpu_share": max((load.cpu_share for load in loads), default=None),
        "errors": sum(1 for c in done if c.error is not None),
        "first_error": next((c.error for c in done if c.error is not None), None),
        "output_tokens": sum(c.output_tokens for c in done),
    }


def vllm(url: str, requests: int, concurrency: int, tokenizer: str) -> dict[str, object]:
    import argparse as ap

    from vllm.benchmarks.serve import add_cli_args, main

    out = Path(tempfile.mkdtemp(prefix="vllm-bench-"))
    parser = ap.ArgumentParser()
    add_cli_args(parser)
    args = parser.parse_args(
        [
            "--backend", "vllm", "--base-url", url, "--endpoint", "/v1/completions",
            "--model", "fake-model", "--tokenizer", tokenizer, "--dataset-name", "random",
            "--random-input-len", str(INPUT_TOKENS), "--random-output-len", str(OUTPUT_TOKENS),
            "--num-prompts", str(requests), "--max-concurrency", str(concurrency),
            "--ignore-eos", "--disable-tqdm", "--save-result", "--result-dir", str(out),
            "--result-filename", "result.json",
        ]
    )  # fmt: skip
    main(args)
    result = json.loads((out / "result.json").read_text())
    return {
        "client": "vllm bench serve",
        "requests_s": result["request_throughput"],
        "wire_requests_s": None,
        "loop_cpu_s": None,
        "cpu_ms_per_request": None,
        "busiest_cpu_share": None,
        "errors": result["failed"],
        "first_error": next((e for e in result.get("errors") or [] if e), None),
        "output_tokens": result["total_output_tokens"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("client", choices=("ours", "vllm"))
    parser.add_argument("url")
    parser.add_argument("requests", type=int)
    parser.add_argument("concurrency", type=int)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--tokenizer", default="")
    parser.add_argument("--cpu", type=int, default=None)
    args = parser.parse_args()
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    if args.client == "ours":
        line = ours(args.url, args.requests, args.concurrency, args.processes)
    else:
        line = vllm(args.url, args.requests, args.concurrency, args.tokenizer)
    line["concurrency"] = args.concurrency
    line["requests"] = args.requests
    sys.stdout.flush()
    print("RESULT " + json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
