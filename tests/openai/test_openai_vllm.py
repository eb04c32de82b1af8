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
    # several are pending (seen here under Poisson load), hence "ITL" is per event.
    assert 1 <= len(times) <= MAX_TOKENS


def test_completions_stream(vllm_backend: OpenAIBackend) -> None:
    out = vllm_backend.generate(reqs(4))
    for c in out:
        check_streamed(c)
        assert c.input_tokens == 16  # token-id prompts arrive unchanged
    info = vllm_backend.info()
    assert info.version.startswith("0.") and info.details["output_tokens_counted_by"] == "usage"
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
    for c, offset in zip(out, offsets, strict=True):
        assert c.start_s - t0 == pytest.approx(offset, abs=0.1)
    assert goodput(out, SLO(e2e_s=60.0)) > 0
