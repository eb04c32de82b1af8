"""Multi-turn conversations: each turn's prompt is the history so far plus a new user message.

A :class:`ConversationSpec` asks for ``num_conversations`` conversations of ``turns`` turns. The
user messages are synthetic (seeded random ordinary tokens of ``user_tokens`` each, as
:mod:`.prompts` draws them) or the user messages of a JSONL file (one conversation per line,
``{"messages": [{"role": "user", "content": "..."}, {"role": "assistant", ...}, ...]}``,
each user message cut to ``user_tokens`` tokens; the file's assistant messages are not used).
The answers are the model's own, forced to ``output_tokens`` each, as in vLLM's multi-turn
benchmark: the history of turn *t* holds the user messages and the answers of turns 1..t-1, so
an engine that caches prefixes finds the whole history of a later turn cached.

Token-id backends receive the history as ids (user ids, answer ids, ..., new user ids): exact
lengths, turn *t*'s prompt is ``t * user_tokens + (t - 1) * output_tokens`` tokens. Chat
endpoints receive it as messages (``GenerationRequest.messages``) and apply their own template.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pytest_llmbench.backends.base import Completion, GenerationRequest
from pytest_llmbench.errors import ConfigError
from pytest_llmbench.workload.prompts import Tokenizer, _stable_ids

FIELD = "conversations"  # how errors name this workload's settings


@dataclass(frozen=True)
class ConversationSpec:
    """What a multi-turn benchmark sends. Lengths in tokens, times in seconds."""

    name: str = "conversations"
    num_conversations: int = 4
    turns: int = 3
    user_tokens: int = 32  # each new user message
    output_tokens: int = 16  # each answer (forced: min = max, EOS ignored)
    think_time_s: float = 0.0  # mean pause before each later turn (exponential, seeded)
    dataset: str | None = None  # JSONL, one conversation per line
    seed: int = 0

    def __post_init__(self) -> None:
        for key in ("num_conversations", "turns", "user_tokens", "output_tokens"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{FIELD}.{key}", f"{value!r} is not a whole number >= 1")
        if not self.think_time_s >= 0:
            raise ConfigError(f"{FIELD}.think_time_s", f"{self.think_time_s} is not >= 0")

    @property
    def last_turn_tokens(self) -> int:
        """Tokens of the longest sequence: the last turn's prompt plus its answer (ids path)."""
        return self.turns * (self.user_tokens + self.output_tokens)

    def describe(self) -> dict[str, object]:
        return {
            "name": self.name,
            "num_conversations": self.num_conversations,
            "turns": self.turns,
            "user_tokens": self.user_tokens,
            "output_tokens": self.output_tokens,
            "think_time_s": self.think_time_s,
            "dataset": self.dataset,
            "seed": self.seed,
        }


@dataclass(frozen=True)
class Conversation:
    """One conversation's user messages (ids and text) and the pause before each turn."""

    conversation_id: str
    user_ids: tuple[tuple[int, ...], ...]
    user_texts: tuple[str, ...]
    think_s: tuple[float, ...]  # before turn t; 0 for the first


@dataclass
class History:
    """What a conversation has said so far, as ids and as chat messages."""

    ids: list[int] = field(default_factory=list)
    messages: list[tuple[str, str]] = field(default_factory=list)
    failed: str | None = None  # why the conversation stopped early


def check_context(spec: ConversationSpec, limit: int | None, source: str) -> None:
    """ConfigError when the last turn of a conversation does not fit the model's context."""
    if limit is not None and spec.last_turn_tokens > limit:
        raise ConfigError(
            f"{FIELD}.turns",
            f"{spec.turns} turns of {spec.user_tokens} user + {spec.output_tokens} answer tokens "
            f"reach {spec.last_turn_tokens} tokens, beyond the model's context of {limit} "
            f"({source}); use fewer turns or shorter messages",
        )


def model_context(model_path: str) -> tuple[int, str] | None:
    """The model's context length from its ``config.json``, and where it came from."""
    path = Path(model_path) / "config.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    for key in ("max_position_embeddings", "n_positions", "max_seq_len", "seq_length"):
        value = data.get(key) if isinstance(data, dict) else None
        if isinstance(value, int) and value > 0:
            return value, f"{key} in {path}"
    return None


def build_conversations(
    spec: ConversationSpec, tokenizer: Tokenizer, vocab_ids: Sequence[int], block: int = 0
) -> list[Conversation]:
    """Block ``block`` of conversations: each repetition (and the warm-up) gets its own block,
    so that no conversation is seen twice by an engine that caches prefixes (a dataset too
    small for that cycles, and says nothing: give it enough conversations)."""
    rng = random.Random(f"{spec.seed}:{block}")
    if spec.dataset:
        texts = _dataset_turns(spec)
        first = block * spec.num_conversations
        chosen = [texts[(first + i) % len(texts)] for i in range(spec.num_conversations)]
        user_ids = [
            [tuple(tokenizer.encode(t)[: spec.user_tokens]) for t in turns] for turns in chosen
        ]
    else:
        pool = list(vocab_ids)
        user_ids = []
        for _ in range(spec.num_conversations):
            turns = []
            for _ in range(spec.turns):
                ids = [rng.choice(pool) for _ in range(spec.user_tokens)]
                turns.append(tuple(_stable_ids(tokenizer, ids, spec.user_tokens, rng, pool)))
            user_ids.append(turns)
    out = []
    for i, turns in enumerate(user_ids):
        think = tuple(
            0.0 if t == 0 or not spec.think_time_s else rng.expovariate(1.0 / spec.think_time_s)
            for t in range(spec.turns)
        )
        out.append(
            Conversation(
                f"{spec.name}-b{block}-c{i}",
                tuple(turns),
                tuple(tokenizer.decode(ids) for ids in turns),
                think,
            )
        )
    return out


def _dataset_turns(spec: ConversationSpec) -> list[list[str]]:
    """User messages of each conversation of the file with at least ``turns`` of them."""
    assert spec.dataset is not None
    where = f"{FIELD}.dataset"
    path = Path(spec.dataset)
    if not path.is_file():
        raise ConfigError(where, f"{str(path)!r} is not a readable file")
    found: list[list[str]] = []
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(where, f"{path}:{lineno}: invalid JSON ({exc.msg})") from None
        messages = record.get("messages") if isinstance(record, dict) else None
        if not isinstance(messages, list) or not all(
            isinstance(m, dict) and isinstance(m.get("content"), str) for m in messages
        ):
            raise ConfigError(
                where,
                f'{path}:{lineno}: expected {{"messages": [{{"role": "user", "content": '
                '"..."}, ...]}',
            )
        users = [m["content"] for m in messages if m.get("role") == "user"]
        if len(users) >= spec.turns:
            found.append(users[: spec.turns])
    if not found:
        raise ConfigError(where, f"{path}: no conversation has {spec.turns} user messages")
    return found


def turn_request(
    spec: ConversationSpec, conversation: Conversation, turn: int, history: History
) -> GenerationRequest:
    """Turn ``turn`` (0-based) of ``conversation``: the history plus its next user message."""
    ids = (*history.ids, *conversation.user_ids[turn])
    messages = (*history.messages, ("user", conversation.user_texts[turn]))
    return GenerationRequest(
        request_id=f"{conversation.conversation_id}-t{turn + 1}",
        prompt_token_ids=ids,
        max_output_tokens=spec.output_tokens,
        min_output_tokens=spec.output_tokens,
        prompt_text="".join(text for _, text in messages),
        messages=messages,
    )


def record_turn(
    conversation: Conversation,
    turn: int,
    history: History,
    completion: Completion,
    tokenizer: Tokenizer,
) -> None:
    """Add turn ``turn``'s user message and the model's answer to ``history`` (the answer's ids
    as the engine returned them, else its text re-tokenised)."""
    if completion.error is not None:
        history.failed = f"turn {turn + 1} failed: {completion.error}"
        return
    answer_ids = list(completion.output_token_ids) or tokenizer.encode(completion.text or "")
    answer_text = completion.text if completion.text is not None else tokenizer.decode(answer_ids)
    history.ids += [*conversation.user_ids[turn], *answer_ids]
    history.messages += [("user", conversation.user_texts[turn]), ("assistant", answer_text)]


def not_sent(request: GenerationRequest, why: str, at_s: float) -> Completion:
    """The completion of a turn that was not sent because an earlier turn failed."""
    return Completion(request.request_id, request.input_tokens, 0, at_s, at_s, error=why)


def turn_of(request_id: str) -> int:
    """The 1-based turn index in a request id made by :func:`turn_request`."""
    return int(request_id.rsplit("-t", 1)[1])
