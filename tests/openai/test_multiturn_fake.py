"""Multi-turn sessions through the openai backend against the fake server, end to end."""

from __future__ import annotations

import json

import jsonschema
import pytest
from openai_fakes import FakeServer

from pytest_llmbench.results import load_schema

QUICK = ("--llm-repeat", "1", "--llm-warmup", "1", "--llm-json", "r.json")


def test_chat_sessions_send_the_history_with_the_models_answers(
    pytester: pytest.Pytester, fake_server: FakeServer
) -> None:
    fake_server.state.delay_s = 0.001
    pytester.makepyfile(
        """
        def test_chat(llm_bench):
            [result] = llm_bench.conversations(
                num_conversations=2, turns=3, user_tokens=4, output_tokens=4, think_time_s=0.01
            )
            assert result.test_id.endswith("::sessions")
        """
    )
    result = pytester.runpytest_inprocess(
        "--llm-backend", "openai", "--llm-server-url", fake_server.url, "--llm-endpoint", "chat",
        *QUICK,
    )  # fmt: skip
    result.assert_outcomes(passed=1)
    bodies = fake_server.state.bodies
    assert len(bodies) == 2 * (2 * 3)  # warm-up and one repetition, 2 conversations x 3 turns
    turns = sorted(len(b["messages"]) for b in bodies)
    assert turns == [1] * 4 + [3] * 4 + [5] * 4  # user, (assistant, user) per later turn
    last = next(b for b in bodies if len(b["messages"]) == 5)["messages"]
    assert [m["role"] for m in last] == ["user", "assistant", "user", "assistant", "user"]
    assert last[1]["content"] == "Hello world"  # the answer the server streamed
    report = json.loads((pytester.path / "r.json").read_text())
    jsonschema.validate(report, load_schema())  # the client and conversation sections too
    [res] = report["results"]
    section = res["conversation"]
    assert section["mode"] == "sessions" and section["max_active"] == 2
    assert [row["turn"] for row in section["per_turn"]] == [1, 2, 3]
    assert all(row["requests"] == 2 and row["errors"] == 0 for row in section["per_turn"])
    assert section["per_turn"][0]["energy_per_output_token"] is None
    rep = res["repetitions"][0]
    assert rep["requests"] == 6 and rep["client"]["schedule_lag_s"]["count"] == 6
    assert "turn 1" in result.stdout.str() and "TTFT p50" in result.stdout.str()


def test_lockstep_through_a_server_gives_one_result_per_turn(
    pytester: pytest.Pytester, fake_server: FakeServer
) -> None:
    fake_server.state.delay_s = 0.0
    pytester.makepyfile(
        """
        def test_turns(llm_bench):
            results = llm_bench.conversations(
                mode="lockstep", num_conversations=3, turns=2, user_tokens=5, output_tokens=4
            )
            assert [r.test_id.rsplit("::", 1)[1] for r in results] == ["turn1", "turn2"]
            first, second = results
            assert first.workload["turn"] == 1 and second.workload["turn"] == 2
            assert all(r.repetitions[0].requests == 3 for r in results)
        """
    )
    result = pytester.runpytest_inprocess(
        "--llm-backend", "openai", "--llm-server-url", fake_server.url, *QUICK
    )
    result.assert_outcomes(passed=1)
    # completions endpoint: token ids; the fake sends no ids, so the answer's text
    # ("Hello world") is re-tokenised into the history
    lengths = sorted({len(b["prompt"]) for b in fake_server.state.bodies})
    assert lengths[0] == 5 and len(lengths) == 2 and lengths[1] > 5 + 5


def test_a_conversation_beyond_the_context_fails_the_test_with_the_reason(
    pytester: pytest.Pytester, fake_server: FakeServer
) -> None:
    pytester.makepyfile(
        """
        def test_long(llm_bench):
            llm_bench.conversations(turns=100, user_tokens=64, output_tokens=64)
        """
    )
    result = pytester.runpytest_inprocess(
        "--llm-backend", "openai", "--llm-server-url", fake_server.url, *QUICK
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*conversations.turns: 100 turns of 64 user + 64 answer tokens reach 12800 tokens, "
         "beyond the model's context of 2048 (max_position_embeddings in *config.json)*"]
    )  # fmt: skip
    assert fake_server.state.bodies == []  # refused before anything was sent
