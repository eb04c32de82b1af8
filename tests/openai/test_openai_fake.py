"""The openai backend against a fake server: timings, token counts, each failure per request."""

from __future__ import annotations

import json
import logging
import pickle
from pathlib import Path

import pytest
from openai_fakes import MODEL_ID, SECRET, FakeServer, make_backend, requests

from pytest_llmbench.backends.base import Schedule
from pytest_llmbench.backends.openai.backend import OpenAIBackend
from pytest_llmbench.config.schema import DecoderConfig, ExperimentConfig
from pytest_llmbench.errors import ConfigError, EngineError


def started(model: Path, server: FakeServer, **options: object) -> OpenAIBackend:
    backend = make_backend(model, server_url=server.url, **options)
    backend.start()
    return backend


def test_completions_stream_timestamps_and_usage(tiny_model: Path, fake_server: FakeServer) -> None:
    backend = started(tiny_model, fake_server)
    fake_server.state.usage_tokens = 4
    [c] = backend.generate(requests(1))
    assert c.error is None
    assert c.output_tokens == 4 and c.output_tokens_source == "usage"
    assert c.text == "Hello world"
    # One time per read that brings output: four events, four reads unless a busy machine hands
    # two over at once (then they share one arrival, not a made-up gap of zero).
    assert 1 <= len(c.token_times_s) <= 4
    assert c.start_s < c.first_token_s == c.token_times_s[0]  # type: ignore[operator]
    assert list(c.token_times_s) == sorted(c.token_times_s)
    assert c.token_times_s[-1] <= c.end_s
    # The fake sleeps 5 ms between events: stamps follow arrivals, not the end of the stream (a busy
    # machine may hand two events over in one read, so the span is checked, not every gap).
    assert c.token_times_s[-1] - c.token_times_s[0] >= 0.004 * (len(c.token_times_s) - 1)
    assert c.input_tokens == 3  # the usage block's prompt_tokens
    body = fake_server.state.bodies[0]
    assert body["model"] == MODEL_ID  # from /v1/models
    assert body["prompt"] == [5, 6, 7]
    assert body["max_tokens"] == body["min_tokens"] == 4 and body["ignore_eos"] is True
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["temperature"] == 0.0  # greedy by default (compat translation)
    assert "top_k" not in body and "min_p" not in body  # neutral extensions are not sent
    assert backend.info().version == "fake-1.0"
    assert backend.info().device == "remote"


@pytest.mark.parametrize(("path", "version"), [("/server_info", "fake-1.0"), ("/none", "unknown")])
def test_version_from_sglangs_server_info_else_unknown(
    tiny_model: Path, fake_server: FakeServer, path: str, version: str
) -> None:
    """SGLang 0.5.16 has no /version; its /server_info holds the version among its settings."""
    fake_server.state.identity = {path: {"version": "fake-1.0"}}
    assert started(tiny_model, fake_server).info().version == version


def test_sampling_extensions_are_sent_when_used(tiny_model: Path, fake_server: FakeServer) -> None:
    config = ExperimentConfig(decoder=DecoderConfig(do_sample=True, temperature=0.7, top_k=5))
    backend = make_backend(tiny_model, config, server_url=fake_server.url)
    backend.start()
    backend.generate(requests(1))
    body = fake_server.state.bodies[0]
    assert body["top_k"] == 5 and body["temperature"] == 0.7


def test_chat_stream_skips_role_event(tiny_model: Path, fake_server: FakeServer) -> None:
    backend = started(tiny_model, fake_server, endpoint="chat")
    [c] = backend.generate(requests(1))
    assert c.error is None, c.error
    # The opening role-only event is no token: the first token comes after the fake's 5 ms pause.
    assert c.first_token_s is not None and c.first_token_s - c.start_s >= 0.005
    assert 1 <= len(c.token_times_s) <= 4
    assert c.text == "Hello world"
    body = fake_server.state.bodies[0]
    assert body["messages"] == [{"role": "user", "content": "hello there"}]
    assert "prompt" not in body


def test_several_tokens_per_event_itl_is_per_arrival(
    tiny_model: Path, fake_server: FakeServer
) -> None:
    fake_server.state.mode = "multi"
    backend = started(tiny_model, fake_server)
    [c] = backend.generate(requests(1))
    assert c.error is None
    assert c.output_tokens == 4  # usage counts tokens ...
    assert 1 <= len(c.token_times_s) <= 2  # ... arrivals (two events) are what we can time
    assert len(c.inter_token_s) == len(c.token_times_s) - 1


def test_events_read_together_get_no_gap_of_zero(tiny_model: Path, fake_server: FakeServer) -> None:
    """A stream that reaches the client in one read (llama-cpp-python's server on a tiny model)
    has no inter-token gap to time: no ITL sample, and the engine details say why."""
    fake_server.state.mode = "burst"
    backend = started(tiny_model, fake_server)
    out = backend.generate(requests(2))
    assert [c.error for c in out] == [None, None]
    assert [c.output_tokens for c in out] == [4, 4] and out[0].text == "Hello world"
    assert [len(c.token_times_s) for c in out] == [1, 1]
    assert [c.inter_token_s for c in out] == [[], []]
    assert "one network read" in backend.info().details["itl_unavailable"]
    fake_server.state.mode = "ok"  # streamed apart again: the reason goes with the last call
    fake_server.state.delay_s = 0.05
    backend.generate(requests(1))
    assert "itl_unavailable" not in backend.info().details


def test_without_usage_tokens_are_counted_with_the_tokenizer(
    tiny_model: Path, fake_server: FakeServer
) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_model))
    ids = tok.encode("Staibou keelou tra 123.", add_special_tokens=False)
    fake_server.state.tokens = [tok.decode([i]) for i in ids]
    fake_server.state.mode = "no_usage"
    backend = started(tiny_model, fake_server)
    [c] = backend.generate(requests(1))
    assert c.error is None
    assert c.output_tokens_source == "tokenizer"
    assert c.output_tokens == len(ids) and len(ids) > 3
    assert backend.info().details["output_tokens_counted_by"] == "tokenizer"


def test_without_usage_a_length_finish_counts_max_tokens(
    tiny_model: Path, fake_server: FakeServer
) -> None:
    """llama-cpp-python's server: no usage block, tokens merged into fewer events, text that
    re-tokenises differently; its finish_reason "length" says max_tokens were generated."""
    fake_server.state.tokens = ["a", "b", "c", "d"]  # four tokens, as max_tokens asks ...
    fake_server.state.mode = "no_usage_multi"  # ... sent as two events, no usage block
    backend = started(tiny_model, fake_server)
    [c] = backend.generate(requests(1, max_tokens=4))
    assert c.error is None and c.output_tokens == 4 and 1 <= len(c.token_times_s) <= 2
    assert c.output_tokens_source == "finish_reason=length"
    assert backend.info().details["output_tokens_counted_by"] == "finish_reason=length"


def test_usage_wins_over_the_tokenizer(tiny_model: Path, fake_server: FakeServer) -> None:
    fake_server.state.usage_tokens = 17  # deliberately unlike the 4 text pieces
    backend = started(tiny_model, fake_server)
    [c] = backend.generate(requests(1))
    assert (c.output_tokens, c.output_tokens_source) == (17, "usage")


def test_http_500_is_a_request_error(tiny_model: Path, fake_server: FakeServer) -> None:
    backend = started(tiny_model, fake_server)
    fake_server.state.mode = "http500"
    out = backend.generate(requests(3))
    assert len(out) == 3
    assert all(c.error and c.error.startswith("HTTP 500") and "boom" in c.error for c in out)
    assert all(c.output_tokens == 0 for c in out)
    fake_server.state.mode = "ok"  # the session survives
    assert [c.error for c in backend.generate(requests(2))] == [None, None]


def test_malformed_sse_is_a_request_error(tiny_model: Path, fake_server: FakeServer) -> None:
    backend = started(tiny_model, fake_server)
    fake_server.state.mode = "malformed"
    [c] = backend.generate(requests(1))
    assert c.error is not None and "malformed SSE data" in c.error


def test_stream_without_end_is_a_request_error(tiny_model: Path, fake_server: FakeServer) -> None:
    backend = started(tiny_model, fake_server)
    fake_server.state.mode = "no_done"
    [c] = backend.generate(requests(1))
    assert c.error is not None and "ended early" in c.error


def test_slow_server_times_out_per_request(tiny_model: Path, fake_server: FakeServer) -> None:
    backend = started(tiny_model, fake_server, request_timeout_s=0.3)
    fake_server.state.mode = "slow"
    fake_server.state.slow_s = 30.0
    out = backend.generate(requests(2))
    assert all(c.error and c.error.startswith("timeout") for c in out)
    # cut by the 0.3 s timeout, not left to the server's 30 s: a busy machine can make the cut
    # late, but not by the 29 s between the two
    assert all(0.25 < c.latency_s < 30.0 for c in out)


def test_refused_connection_is_a_request_error(tiny_model: Path, fake_server: FakeServer) -> None:
    backend = started(tiny_model, fake_server)
    fake_server.stop()  # the server goes away mid-session
    out = backend.generate(requests(2))
    host = fake_server.url.split("//")[1]
    assert all(
        c.error and c.error.startswith(f"cannot connect to {host}: ") and "refused" in c.error
        for c in out
    ), out[0].error


def test_unreachable_server_at_start_names_the_option(tiny_model: Path) -> None:
    from pytest_llmbench.backends.openai.servers import free_port

    backend = make_backend(tiny_model, server_url=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(EngineError, match="--llm-server-url"):
        backend.start()


def test_bad_url_is_a_clear_config_error(tiny_model: Path) -> None:
    with pytest.raises(ConfigError, match=r"--llm-server-url: 'ftp://x'.*http or https"):
        make_backend(tiny_model, server_url="ftp://x")


def test_timed_schedule_and_concurrency_cap(tiny_model: Path, fake_server: FakeServer) -> None:
    backend = started(tiny_model, fake_server, max_connections=2)
    out = backend.serve(requests(6), Schedule(arrival_offsets_s=(0, 0, 0, 0, 0.2, 0.2)))
    assert all(c.error is None for c in out)
    starts = sorted(c.start_s for c in out)
    # at most 2 in flight: the third request starts only once one of the first two ended
    first_two_end = min(sorted(out, key=lambda c: c.start_s)[:2], key=lambda c: c.end_s).end_s
    assert starts[2] >= first_two_end
    assert starts[-1] - starts[0] >= 0.19


def test_api_key_is_sent_but_never_leaks(
    tiny_model: Path,
    fake_server: FakeServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("LLMBENCH_TEST_KEY", SECRET)
    backend = started(tiny_model, fake_server, api_key_env="LLMBENCH_TEST_KEY")
    ok = backend.generate(requests(1))
    assert fake_server.state.headers[0]["Authorization"] == f"Bearer {SECRET}"
    fake_server.state.mode = "echo_auth"  # a server that echoes the header into its error
    bad = backend.generate(requests(1))
    assert bad[0].error is not None and "***" in bad[0].error
    seen = [
        repr(backend),
        repr(backend.options),
        repr(backend.spec),
        repr(backend.info()),
        repr(ok),
        repr(bad),
        str(pickle.dumps(backend.spec)),
        caplog.text,
        *capsys.readouterr(),
    ]
    for text in seen:
        assert SECRET not in text


def test_unset_key_variable_fails_at_start(tiny_model: Path, fake_server: FakeServer) -> None:
    backend = make_backend(tiny_model, server_url=fake_server.url, api_key_env="LLMBENCH_NO_SUCH")
    with pytest.raises(
        ConfigError, match="--llm-api-key-env: environment variable LLMBENCH_NO_SUCH"
    ):
        backend.start()


def test_serve_inside_a_running_event_loop(tiny_model: Path, fake_server: FakeServer) -> None:
    import asyncio

    backend = started(tiny_model, fake_server)

    async def inside() -> int:
        return len(backend.generate(requests(2)))

    assert asyncio.run(inside()) == 2


def test_offline_in_flight_follows_batch_size_when_set(
    tiny_model: Path, fake_server: FakeServer
) -> None:
    from pytest_llmbench.config.schema import BatchingConfig

    config = ExperimentConfig(batching=BatchingConfig(batch_size=2))
    backend = make_backend(tiny_model, config, server_url=fake_server.url)
    backend.start()
    out = sorted(backend.generate(requests(4)), key=lambda c: c.start_s)
    assert out[2].start_s >= min(c.end_s for c in out[:2])  # the third waited for a slot
    default = started(tiny_model, fake_server)
    fake_server.state.delay_s = 0.25  # each request streams for 1 s: longer than any launch lag
    out = default.generate(requests(4))
    assert max(c.start_s for c in out) < min(c.end_s for c in out)  # all four at once


def test_the_report_says_how_each_results_tokens_were_counted(
    pytester: pytest.Pytester, tiny_model: Path, fake_server: FakeServer
) -> None:
    """Through the plugin: each result records the counting of its own run, not the first's."""
    pytester.makepyfile(
        """
        def test_usage(llm_bench):
            llm_bench(num_prompts=2, input_tokens=8, output_tokens=4)

        def test_finish(llm_bench, request):
            request.config.fake_server.state.mode = "no_usage"  # 4 tokens, max_tokens 4
            llm_bench(num_prompts=2, input_tokens=8, output_tokens=4)

        def test_tokenizer(llm_bench, request):
            request.config.fake_server.state.mode = "no_usage"  # 4 tokens, max_tokens 5: "stop"
            llm_bench(num_prompts=2, input_tokens=8, output_tokens=5)
        """
    )
    pytester.makeconftest(
        "def pytest_configure(config):\n"
        "    import openai_fakes\n"
        "    config.fake_server = openai_fakes.CURRENT\n"
    )
    import openai_fakes

    openai_fakes.CURRENT = fake_server  # type: ignore[attr-defined]
    report = pytester.path / "r.json"
    args = ["--llm-backend", "openai", "--llm-server-url", fake_server.url]
    args += ["--llm-model", str(tiny_model), "--llm-json", str(report)]
    pytester.runpytest_inprocess(*args, "--llm-repeat", "1", "--llm-warmup", "0").assert_outcomes(
        passed=3
    )
    results = {r["test_id"]: r for r in json.loads(report.read_text())["results"]}
    counted = {k.split("::")[-1]: r["engine_details"]["output_tokens_counted_by"]
               for k, r in results.items()}  # fmt: skip
    assert counted == {
        "test_usage[openai]": "usage",
        "test_finish[openai]": "finish_reason=length",
        "test_tokenizer[openai]": "tokenizer",
    }
