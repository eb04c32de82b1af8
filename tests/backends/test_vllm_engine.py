"""The real vLLM engine on the embedded tiny model, run the way the plugin runs it: hosted.

One engine is shared by the whole module (a CPU start takes tens of seconds); the tests run in
file order: offline first, then the timed-arrival tests, which move the backend onto vLLM's async
engine once. The pytest process itself never imports vLLM.
"""

from __future__ import annotations

import importlib.util
import time

import pytest

from pytest_llmbench import compat
from pytest_llmbench.backends.base import BackendSpec, GenerationRequest, Schedule
from pytest_llmbench.backends.host import HostedBackend
from pytest_llmbench.config.fields import build
from pytest_llmbench.config.schema import ExperimentConfig
from pytest_llmbench.errors import UnsupportedParameter

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("vllm") is None,
    reason="vllm is not installed: pip install pytest-llmbench[vllm]",
)

# Small context and no graph capture/compilation: a quick start on CPU.
VLLM_SECTION = {"max_model_len": 512, "enforce_eager": True}


def make_spec(**sections: object) -> BackendSpec:
    from pytest_llmbench.workload.tinymodel import ensure_tiny_model

    sections.setdefault("vllm", VLLM_SECTION)
    cfg = build(ExperimentConfig, sections)
    return BackendSpec(str(ensure_tiny_model()), cfg, compat.translate(cfg, "vllm"), "cpu")


@pytest.fixture(scope="module")
def engine():
    host = HostedBackend("vllm", make_spec())
    try:
        host.start()
        yield host
    finally:
        host.close()


def requests(n: int, output_tokens: int = 16, first_id: int = 0) -> list[GenerationRequest]:
    # Distinct prompts of distinct lengths, ids from the tiny model's ordinary vocabulary.
    return [
        GenerationRequest(
            f"r{first_id + i}",
            tuple(10 + (7 * i + j) % 900 for j in range(24 + i)),
            output_tokens,
            output_tokens,
        )
        for i in range(n)
    ]


def assert_ordered(c, start_after: float, end_before: float) -> None:
    assert start_after <= c.start_s <= c.first_token_s <= c.end_s <= end_before
    assert c.ttft_s <= c.latency_s


def test_offline_generate_gives_exactly_max_tokens_for_every_request(engine):
    batch = requests(8, 16) + requests(4, 5, first_id=8)
    before = time.perf_counter()
    completions = engine.generate(batch)
    after = time.perf_counter()

    assert [c.request_id for c in completions] == [r.request_id for r in batch]
    for c, r in zip(completions, batch, strict=True):
        assert c.output_tokens == r.max_output_tokens == len(c.output_token_ids)
        assert c.input_tokens == r.input_tokens
        assert_ordered(c, before, after)
    info = engine.info()
    assert info.backend == "vllm" and info.details["engine"] == "LLM"
    # vLLM 0.32 fills RequestOutput.metrics: per-request first/last token times, not batch times.
    assert info.details["timing"].startswith("engine metrics")
    assert len({c.end_s for c in completions}) > 1


def test_engine_info_records_version_and_arguments(engine):
    info = engine.info()
    import json

    assert info.version[0].isdigit()
    assert json.loads(info.details["engine_args"])["max_model_len"] == 512
    assert json.loads(info.details["sampling_args"])["detokenize"] is False
    assert json.loads(info.details["env"])["VLLM_CPU_KVCACHE_SPACE"]


def test_tokenizer_and_logprobs(engine):
    ids = engine.encode("hello world")
    assert ids and engine.decode(ids) == "hello world"
    logprobs = engine.call("token_logprobs", [11, 12, 13], [14, 15])
    assert len(logprobs) == 2 and all(lp <= 0 for lp in logprobs)


def test_harness_overhead_compares_both_paths_on_the_same_engine(engine):
    result = engine.call("harness_overhead", requests(4, 8), 1)
    assert result.engine == "LLM" and result.output_tokens == 32
    assert result.direct_tok_s > 0 and result.harness_tok_s > 0
    assert 0.2 < result.ratio < 5  # same work both ways; bounds only catch a broken comparison


def test_serve_with_max_concurrency_streams_every_token(engine):
    batch = requests(6, 12)
    before = time.perf_counter()
    completions = engine.serve(batch, Schedule(max_concurrency=2))
    after = time.perf_counter()

    for c in completions:
        assert c.output_tokens == 12 == len(c.token_times_s)
        assert_ordered(c, before, after)
        assert c.first_token_s == c.token_times_s[0] and c.end_s == c.token_times_s[-1]
        assert all(itl >= 0 for itl in c.inter_token_s)
    # Never more than two requests in flight at any moment.
    events = sorted([(c.start_s, 1) for c in completions] + [(c.end_s, -1) for c in completions])
    in_flight = [sum(step for _, step in events[: i + 1]) for i in range(len(events))]
    assert max(in_flight) == 2
    assert engine.info().details["engine"] == "AsyncLLM"


def test_serve_with_arrival_offsets(engine):
    offsets = (0.0, 0.1, 0.2, 0.3)
    batch = requests(4, 8)
    before = time.perf_counter()
    completions = engine.serve(batch, Schedule(arrival_offsets_s=offsets))
    after = time.perf_counter()

    for c, offset in zip(completions, offsets, strict=True):
        assert c.start_s - before >= offset - 1e-3
        assert c.output_tokens == 8 == len(c.token_times_s)
        assert_ordered(c, before, after)
        assert all(itl >= 0 for itl in c.inter_token_s)


def test_offline_generate_after_the_switch_still_forces_lengths(engine):
    # The switch to the streaming engine is made here, not left to the tests above: under
    # pytest-xdist this test may be the first its worker runs on the module's engine.
    engine.serve(requests(1, 4), Schedule(max_concurrency=1))
    assert engine.info().details["engine"] == "AsyncLLM"
    completions = engine.generate(requests(5, 7))
    assert [c.output_tokens for c in completions] == [7] * 5
    assert all(len(c.token_times_s) == 7 for c in completions)


def test_a_key_the_installed_release_removed_is_refused_by_name():
    host = HostedBackend("vllm", make_spec(vllm={**VLLM_SECTION, "swap_space": 8}))
    try:
        with pytest.raises(UnsupportedParameter, match=r"vllm\.swap_space .*vLLM \d") as info:
            host.start()
        assert "no CPU swap space" in str(info.value)
    finally:
        host.close()
