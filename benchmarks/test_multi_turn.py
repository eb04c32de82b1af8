"""Multi-turn conversations: each turn's prompt is the history so far plus a new user message.

Where the backend is a client of a server (openai), the conversations run as free sessions, one
result with per-turn latencies; elsewhere turn by turn in lockstep, one result per turn index,
each turn in its own energy window: turn 1 against later turns shows what caching the history's
prefix is worth in TTFT and joules per token.

    pytest benchmarks/test_multi_turn.py --llm-backend vllm
    pytest benchmarks/test_multi_turn.py --llm-backend openai --llm-endpoint chat
"""

from __future__ import annotations


def test_multi_turn_conversations(llm_bench):
    turns = 3
    results = llm_bench.conversations(turns=turns)

    spec = results[0].workload
    for result in results:
        for rep in result.repetitions:
            assert rep.errors == 0, f"{result.test_id}: failed turns"
    if results[0].conversation["mode"] == "lockstep":
        assert len(results) == turns
        if llm_bench.backend != "openai":  # token-id engines return their answers' ids
            for turn, result in enumerate(results, start=1):
                expected = turn * spec["user_tokens"] + (turn - 1) * spec["output_tokens"]
                rep = result.repetitions[0]
                assert rep.input_tokens == expected * spec["num_conversations"]
    else:
        per_turn = results[0].conversation["per_turn"]
        assert [row["turn"] for row in per_turn] == list(range(1, turns + 1))
