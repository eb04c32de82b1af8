"""Prompts with exact token lengths, the same for every backend.

Synthetic prompts are drawn as token ids (seeded) from the tokenizer's ordinary vocabulary, then
decoded and re-encoded until the round trip is stable, so text-only protocols see the same length.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from pytest_llmbench.backends.base import GenerationRequest
from pytest_llmbench.errors import ConfigError


class Tokenizer(Protocol):
    def encode(self, text: str) -> list[int]: ...

    def decode(self, token_ids: Sequence[int]) -> str: ...


@dataclass(frozen=True)
class Workload:
    """What one benchmark sends: ``num_prompts`` requests of exact input and output lengths."""

    name: str
    num_prompts: int
    input_tokens: int
    output_tokens: int
    min_output_tokens: int | None = None  # None: forced equal to output_tokens
    dataset: str | None = None  # JSONL file with a "prompt" field per line
    shared_prefix_tokens: int = 0  # leading tokens common to all prompts (prefix caching)
    seed: int = 0

    def describe(self) -> dict[str, object]:
        return {
            "name": self.name,
            "num_prompts": self.num_prompts,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "min_output_tokens": self.forced_min_tokens,
            "dataset": self.dataset,
            "shared_prefix_tokens": self.shared_prefix_tokens,
            "seed": self.seed,
        }

    @property
    def forced_min_tokens(self) -> int:
        return self.output_tokens if self.min_output_tokens is None else self.min_output_tokens


def _stable_ids(
    tokenizer: Tokenizer, ids: list[int], length: int, rng: random.Random, pool: list[int]
) -> list[int]:
    """Ids of exactly ``length`` tokens whose decode -> encode round trip returns them unchanged.

    The whole text must encode back to the ids, not only its first ``length`` tokens: a last
    token holding part of a UTF-8 character decodes to U+FFFD, whose three bytes encode to more
    tokens, so a text protocol would send a longer prompt. Such a last token is redrawn.
    """
    for _ in range(20):
        text = tokenizer.decode(ids)
        encoded = tokenizer.encode(text)
        if encoded == ids:
            return ids
        again = encoded[:length]
        while len(again) < length:
            again.append(rng.choice(pool))
        if again == ids:  # equal up to the length: the text runs longer, so redraw the end
            again[-1] = rng.choice(pool)
        ids = again
    return ids  # token-id protocols use the ids directly; only text protocols see drift


def _request(
    workload: Workload, index: int, ids: Sequence[int], tokenizer: Tokenizer
) -> GenerationRequest:
    """Request ``index`` of ``workload``: its prompt ids and the forced output length."""
    return GenerationRequest(
        request_id=f"{workload.name}-{index}",
        prompt_token_ids=tuple(ids),
        max_output_tokens=workload.output_tokens,
        min_output_tokens=workload.forced_min_tokens,
        prompt_text=tokenizer.decode(ids),
    )


def synthetic_requests(
    workload: Workload, tokenizer: Tokenizer, vocab_ids: Sequence[int]
) -> list[GenerationRequest]:
    """``workload.num_prompts`` requests of random ordinary tokens (seeded)."""
    if workload.shared_prefix_tokens > workload.input_tokens:
        raise ConfigError(
            "workload.shared_prefix_tokens",
            f"{workload.shared_prefix_tokens} is not <= input_tokens ({workload.input_tokens})",
        )
    rng = random.Random(workload.seed)
    pool = list(vocab_ids)
    prefix = [rng.choice(pool) for _ in range(workload.shared_prefix_tokens)]
    requests = []
    for i in range(workload.num_prompts):
        tail = [rng.choice(pool) for _ in range(workload.input_tokens - len(prefix))]
        ids = _stable_ids(tokenizer, prefix + tail, workload.input_tokens, rng, pool)
        requests.append(_request(workload, i, ids, tokenizer))
    return requests


def read_dataset(path_text: str) -> list[tuple[int, str]]:
    """(line number, prompt) of each non-empty line of a JSONL file (``{"prompt": "..."}``);
    ConfigError naming ``workload.dataset``, the file and the line."""
    path = Path(path_text)
    if not path.is_file():
        raise ConfigError("workload.dataset", f"{str(path)!r} is not a readable file")
    prompts: list[tuple[int, str]] = []
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(
                "workload.dataset", f"{path}:{lineno}: invalid JSON ({exc.msg})"
            ) from None
        if not isinstance(record, dict) or not isinstance(record.get("prompt"), str):
            raise ConfigError(
                "workload.dataset", f'{path}:{lineno}: expected {{"prompt": "<text>"}}'
            )
        prompts.append((lineno, record["prompt"]))
    if not prompts:
        raise ConfigError("workload.dataset", f"{path}: no prompts")
    return prompts


def dataset_prompt_ids(workload: Workload, tokenizer: Tokenizer) -> list[tuple[int, list[int]]]:
    """(line number, token ids truncated to input_tokens) of the dataset lines ``workload``
    sends, in order: line ``i % lines`` for request ``i``."""
    assert workload.dataset is not None
    lines = read_dataset(workload.dataset)
    used = [lines[i % len(lines)] for i in range(min(workload.num_prompts, len(lines)))]
    return [(n, tokenizer.encode(text)[: workload.input_tokens]) for n, text in used]


def file_requests(workload: Workload, tokenizer: Tokenizer) -> list[GenerationRequest]:
    """Requests from a JSONL file (``{"prompt": "..."}`` per line), truncated to input_tokens."""
    prompts = dataset_prompt_ids(workload, tokenizer)
    return [
        _request(workload, i, prompts[i % len(prompts)][1], tokenizer)
        for i in range(workload.num_prompts)
    ]


def build_requests(
    workload: Workload, tokenizer: Tokenizer, vocab_ids: Sequence[int]
) -> list[GenerationRequest]:
    if workload.dataset:
        return file_requests(workload, tokenizer)
    return synthetic_requests(workload, tokenizer, vocab_ids)
