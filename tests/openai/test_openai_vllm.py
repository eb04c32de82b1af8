"""The openai backend against a REAL vLLM OpenAI server (CPU build) on the tiny model.

One managed server for the module (~60 s to start on 2 cores), started by the backend itself.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path

import pytest
from openai_fakes import make_backend

from pytest_llmbench.backends.base import GenerationRequest
from pytest_llmbench.backends.openai.backend import OpenAIBackend
from pytest_llmbench.config.engines import VllmConfig
from pytest_llmbench.config.schema import ExperimentConfig
from pytest_llmbench.goodput import SLO, goodput
from pytest_llmbench.workload.traffic import poisson_schedule

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("vllm") is None, reason="vllm is not installed (pip install vllm)"
)

MAX_TOKENS = 12
# The tiny model's tokenizer has no chat template; the server needs one for /chat/completions.
CHAT_TEMPLATE = "{% for m in messages %}{{ m['content'] }}{% endfor %}"


@pytest.fixture(scope="module")
def vllm_backend(
    tiny_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OpenAIBackend]:
    template = tmp_path_factory.mktemp("vllm") / "chat.jinja"
    template.write_text(CHAT_TEMPLATE)
    config = ExperimentConfig(max_output_tokens=MAX_TOKENS, vllm=VllmConfig(max_model_len=512))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB; the default would take a large share
        backend = make_backend(
            tiny_model,
            config,
            server="vllm",
            server_args=("--chat-template", str(template)),
            # the plugin's defaults (900 s, 600 s): hang guards, not bounds; vLLM's start on a
            # busy 2-core runner takes minutes
        )
        backend.start()
    try:
        yield backend
    finally:
        backend.close()
        assert backend._server is None


def reqs(n: int, prompt_len: int = 16) -> list[GenerationRequest]:
    return [
        GenerationRequest(
            f"v{i}",
            tuple(100 + (i * 7 + j) % 500 for j in range(prompt_len)),
            MAX_TOKENS,
            MAX_TOKENS,
            prompt_text="Staibou keelou tra mei dou",
        )
        for i in range(n)
    ]


def check_streamed(c: object) -> None:
    from pytest_llmbench.backends.base import Completion

    assert isinstance(c, Completion)
    assert c.error is None, c.error
    assert c.output_tokens == MAX_TOKENS and c.output_tokens_source == "usage"  # forced length
    assert c.first_token_s is not None
    times = c.token_times_s
    assert c.start_s < times[0] == c.first_token_s
    assert list(times) == sorted(times) and times[-1] <= c.end_s
    # One event per token when the client keeps up; vLLM coalesces tokens into one event when
    # several are pending (seen here under Poisson load), and events read together share one
    # arrival, hence "ITL" is per arrival.
    assert 1 <= len(times) <= MAX_TOKENS


def test_completions_stream(vllm_backend: OpenAIBackend) -> None:
    out = vllm_backend.generate(reqs(4))
    for c in out:
        check_streamed(c)
        assert c.input_tokens == 16  # token-id prompts arrive unchanged
    info = vllm_backend.info()
    assert info.version.startswith("vLLM 0.")  # /version and owned_by "vllm"
    assert info.details["output_tokens_counted_by"] == "usage"
    assert info.details["server"] == "vllm" and info.device == "cpu"


def test_chat_stream(vllm_backend: OpenAIBackend, tiny_model: Path) -> None:
    chat = make_backend(
        tiny_model,
        vllm_backend.spec.config,
        server_url=vllm_backend.info().details["server_url"],
        endpoint="chat",
    )
    chat.start()
    for c in chat.generate(reqs(2)):
        check_streamed(c)


def test_poisson_schedule(vllm_backend: OpenAIBackend) -> None:
    schedule = poisson_schedule(6, rate=4.0, seed=1)
    out = vllm_backend.serve(reqs(6), schedule)
    for c in out:
        check_streamed(c)
    offsets = schedule.arrival_offsets_s or ()
    t0 = min(c.start_s for c in out)
    # Never sent before its arrival time (relative to the first send). How late is the machine's
    # load, not a property of the client: that is recorded (schedule lag), not bounded here.
    for c, offset in zip(out, offsets, strict=True):
        assert c.start_s - t0 >= offset - offsets[0] - 0.005
    assert goodput(out, SLO(e2e_s=60.0)) > 0


def test_server_timings_of_each_window(vllm_backend: OpenAIBackend) -> None:
    """The managed server's /metrics, read around a window: its own count of the window's
    requests and their queue, prefill and decode times, beside ours."""
    from pytest_llmbench.backends.base import Schedule
    from pytest_llmbench.energy.base import UnavailableMeter
    from pytest_llmbench.runner import run_repetition

    rep = run_repetition(vllm_backend, reqs(4), Schedule(), UnavailableMeter("test"))
    server = rep.server
    assert server is not None and server["available"], server
    assert server["kind"] == "vllm" and server["requests"] == 4
    for stage in ("queue_time_s", "prefill_time_s", "decode_time_s", "ttft_s", "e2e_latency_s"):
        assert server[stage]["count"] == 4, stage
        assert server[stage]["mean"] is not None and server[stage]["mean"] >= 0
    assert 0 <= server["kv_cache_usage"]["peak"] <= 1 and server["preemptions"] == 0
    # the server's TTFT excludes HTTP and the client: it cannot exceed what we measured
    assert server["ttft_s"]["mean"] <= max(rep.ttft_s) + 0.05


def test_multi_turn_chat_sessions_hit_the_prefix_cache(
    vllm_backend: OpenAIBackend, tiny_model: Path
) -> None:
    """Free-running chat sessions against the real server: every turn carries the history with
    the server's own answers, and later turns find that history in vLLM's prefix cache."""
    from pytest_llmbench.energy.base import UnavailableMeter
    from pytest_llmbench.multiturn import per_turn, run_sessions
    from pytest_llmbench.runner import RunSettings
    from pytest_llmbench.workload.conversations import ConversationSpec, build_conversations
    from pytest_llmbench.workload.tokenizer import load_tokenizer

    chat = make_backend(
        tiny_model,
        vllm_backend.spec.config,
        server_url=vllm_backend.info().details["server_url"],
        endpoint="chat",
    )
    chat.start()
    # vLLM on the CPU caches in blocks of 128 tokens: a turn's history must fill one to hit
    spec = ConversationSpec(num_conversations=2, turns=3, user_tokens=140, output_tokens=MAX_TOKENS)
    tok = load_tokenizer(str(tiny_model))
    blocks = [build_conversations(spec, tok, tok.vocab_ids(), b) for b in range(2)]
    settings = RunSettings(repetitions=1, warmup=0)
    _, [rep], done = run_sessions(chat, spec, blocks, 2, UnavailableMeter("test"), settings)
    rows = per_turn(done)
    assert [r["turn"] for r in rows] == [1, 2, 3] and all(r["errors"] == 0 for r in rows)
    prompts = [r["input_tokens_mean"] for r in rows]
    assert prompts[0] < prompts[1] < prompts[2]  # the history grows (the server's own count)
    assert rep.server is not None and rep.server["available"], rep.server
    assert rep.server["requests"] == 6
    assert rep.server["prefix_cache_hit_rate"] > 0, rep.server  # later turns reuse the history
