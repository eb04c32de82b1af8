"""Multi-turn conversations: the workload, the history each turn carries, the per-turn table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_llmbench.backends.base import Completion
from pytest_llmbench.errors import ConfigError
from pytest_llmbench.multiturn import per_turn
from pytest_llmbench.workload.conversations import (
    ConversationSpec,
    History,
    build_conversations,
    check_context,
    model_context,
    not_sent,
    record_turn,
    turn_of,
    turn_request,
)


class WordTokenizer:
    """One token per word; ids are word lengths plus a word number (enough to round-trip)."""

    def __init__(self) -> None:
        self.words: list[str] = []

    def encode(self, text: str) -> list[int]:
        ids = []
        for word in text.split():
            if word not in self.words:
                self.words.append(word)
            ids.append(self.words.index(word))
        return ids

    def decode(self, token_ids: list[int] | tuple[int, ...]) -> str:
        while len(self.words) <= max(token_ids, default=0):
            self.words.append(f"w{len(self.words)}")
        return "".join(f"{self.words[i]} " for i in token_ids)


VOCAB = list(range(50))


def test_synthetic_conversations_are_seeded_and_each_block_is_new() -> None:
    spec = ConversationSpec(num_conversations=3, turns=2, user_tokens=5, think_time_s=1.0)
    a = build_conversations(spec, WordTokenizer(), VOCAB, block=1)
    assert a == build_conversations(spec, WordTokenizer(), VOCAB, block=1)
    b = build_conversations(spec, WordTokenizer(), VOCAB, block=2)
    assert [c.user_ids for c in a] != [c.user_ids for c in b]  # no conversation seen twice
    assert all(len(ids) == 5 for c in a for ids in c.user_ids)
    assert all(c.think_s[0] == 0.0 and c.think_s[1] > 0 for c in a)
    assert len({c.conversation_id for c in a + b}) == 6


def test_each_turn_carries_the_history_and_the_answers() -> None:
    spec = ConversationSpec(num_conversations=1, turns=3, user_tokens=4, output_tokens=2)
    tok = WordTokenizer()
    [conv] = build_conversations(spec, tok, VOCAB)
    history = History()
    lengths = []
    for turn in range(3):
        request = turn_request(spec, conv, turn, history)
        lengths.append(request.input_tokens)
        assert request.messages is not None and request.messages[-1][0] == "user"
        assert request.min_output_tokens == request.max_output_tokens == 2
        assert turn_of(request.request_id) == turn + 1
        answer = Completion(request.request_id, request.input_tokens, 2, 0.0, 1.0,
                            output_token_ids=(7, 8), text="seven eight")  # fmt: skip
        record_turn(conv, turn, history, answer, tok)
    assert lengths == [4, 4 + 2 + 4, 4 + 2 + 4 + 2 + 4]  # t * user + (t - 1) * answer
    assert [role for role, _ in history.messages] == ["user", "assistant"] * 3
    assert history.messages[1] == ("assistant", "seven eight")
    assert history.ids[4:6] == [7, 8]  # the engine's own answer ids, not re-tokenised text


def test_an_answer_without_ids_is_re_tokenised_and_a_failure_stops_the_conversation() -> None:
    spec = ConversationSpec(num_conversations=1, turns=3, user_tokens=3, output_tokens=2)
    tok = WordTokenizer()
    [conv] = build_conversations(spec, tok, VOCAB)
    history = History()
    first = turn_request(spec, conv, 0, history)
    record_turn(conv, 0, history, Completion(first.request_id, 3, 2, 0, 1, text="a b"), tok)
    assert history.ids[3:] == tok.encode("a b")
    second = turn_request(spec, conv, 1, history)
    failed = Completion(second.request_id, 7, 0, 1, 2, error="HTTP 500")
    record_turn(conv, 1, history, failed, tok)
    assert history.failed == "turn 2 failed: HTTP 500"
    dropped = not_sent(turn_request(spec, conv, 2, history), history.failed, 3.0)
    assert dropped.error == "turn 2 failed: HTTP 500" and dropped.output_tokens == 0


def test_a_conversation_longer_than_the_context_is_refused_with_the_numbers() -> None:
    spec = ConversationSpec(turns=4, user_tokens=32, output_tokens=16)  # 4 * 48 = 192 tokens
    check_context(spec, 192, "max_position_embeddings")
    with pytest.raises(ConfigError) as error:
        check_context(spec, 128, "max_position_embeddings in /m/config.json")
    assert str(error.value) == (
        "conversations.turns: 4 turns of 32 user + 16 answer tokens reach 192 tokens, beyond "
        "the model's context of 128 (max_position_embeddings in /m/config.json); use fewer "
        "turns or shorter messages"
    )


def test_model_context_comes_from_config_json(tmp_path: Path) -> None:
    assert model_context(str(tmp_path)) is None
    (tmp_path / "config.json").write_text(json.dumps({"max_position_embeddings": 2048}))
    assert model_context(str(tmp_path)) == (
        2048,
        f"max_position_embeddings in {tmp_path / 'config.json'}",
    )


@pytest.mark.parametrize(
    "field, value", [("turns", 0), ("num_conversations", -1), ("think_time_s", -1.0)]
)
def test_bad_settings_name_the_field(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=f"^conversations.{field}: "):
        ConversationSpec(**{field: value})  # type: ignore[arg-type]


def test_conversations_from_a_jsonl_file(tmp_path: Path) -> None:
    path = tmp_path / "chats.jsonl"
    lines = [
        {"messages": [{"role": "user", "content": "hi there friend"},
                      {"role": "assistant", "content": "hello"},
                      {"role": "user", "content": "tell me more please now"}]},
        {"messages": [{"role": "user", "content": "only one turn"}]},
    ]  # fmt: skip
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    spec = ConversationSpec(num_conversations=2, turns=2, user_tokens=3, dataset=str(path))
    tok = WordTokenizer()
    convs = build_conversations(spec, tok, VOCAB)
    # only the first line has two user turns; it is used for both (the file is too small)
    assert [len(c.user_ids) for c in convs] == [2, 2]
    assert convs[0].user_texts == (tok.decode(tok.encode("hi there friend")),
                                   tok.decode(tok.encode("tell me more")))  # fmt: skip
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": "nope"}\n')
    with pytest.raises(ConfigError, match=r"bad.jsonl:1: expected \{\"messages\""):
        build_conversations(dataclass_with(spec, dataset=str(bad)), tok, VOCAB)
    with pytest.raises(ConfigError, match="no conversation has 5 user messages"):
        build_conversations(dataclass_with(spec, turns=5), tok, VOCAB)


def dataclass_with(spec: ConversationSpec, **changes: object) -> ConversationSpec:
    import dataclasses

    return dataclasses.replace(spec, **changes)  # type: ignore[arg-type]


def test_per_turn_statistics_group_by_turn_index() -> None:
    done = [
        Completion("c0-t1", 4, 2, 0.0, 1.0, 0.4),
        Completion("c1-t1", 4, 2, 0.0, 1.0, 0.6),
        Completion("c0-t2", 10, 2, 2.0, 2.5, 2.1),
        Completion("c1-t2", 10, 0, 2.0, 2.0, error="HTTP 500"),
    ]
    rows = per_turn(done)
    assert [r["turn"] for r in rows] == [1, 2]
    assert rows[0]["requests"] == 2 and rows[0]["ttft_s_p50"] == pytest.approx(0.5)
    assert rows[1]["requests"] == 1 and rows[1]["errors"] == 1
    assert rows[1]["input_tokens_mean"] == 10 and rows[1]["ttft_s_p50"] == pytest.approx(0.1)
    assert rows[0]["energy_per_output_token"] is None
    assert "overlap in one energy window" in rows[0]["energy_unavailable"]
