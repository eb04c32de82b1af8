"""Token agreement between two backends' greedy probes: the metric's properties."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_llmbench.quality.agreement import (
    agreement_section,
    common_prefix,
    first_divergence,
    token_agreement,
)
from pytest_llmbench.quality.perplexity import Perplexity, measure_perplexity
from pytest_llmbench.quality.probe import (
    OUTPUT_TOKENS,
    PROMPT_TOKENS,
    PROMPTS,
    ProbeOutput,
    probe_prompts,
    run_probe,
)

LENGTH = 8
tokens = st.lists(st.integers(0, 5), min_size=LENGTH, max_size=LENGTH)
outputs = st.lists(tokens, min_size=1, max_size=5)


@st.composite
def output_pairs(draw: st.DrawFn) -> tuple[list[list[int]], list[list[int]]]:
    a = draw(outputs)
    b = [draw(tokens) for _ in a]
    return a, b


@given(output_pairs())
def test_agreement_lies_in_unit_interval_and_is_symmetric(pair: tuple) -> None:
    a, b = pair
    value = token_agreement(a, b)
    assert 0.0 <= value <= 1.0
    assert value == token_agreement(b, a)


@given(outputs)
def test_identical_outputs_agree_fully_and_never_diverge(a: list[list[int]]) -> None:
    assert token_agreement(a, a) == 1.0
    assert first_divergence(a, a) is None


@given(output_pairs())
def test_agreement_is_one_exactly_when_nothing_diverges(pair: tuple) -> None:
    a, b = pair
    assert (token_agreement(a, b) == 1.0) == (first_divergence(a, b) is None)


@given(output_pairs())
def test_agreement_is_the_mean_prefix_fraction(pair: tuple) -> None:
    a, b = pair
    expected = sum(common_prefix(x, y) for x, y in zip(a, b, strict=True)) / (LENGTH * len(a))
    assert math.isclose(token_agreement(a, b), expected)


@given(output_pairs())
def test_first_divergence_names_the_first_differing_token(pair: tuple) -> None:
    a, b = pair
    div = first_divergence(a, b)
    if div is None:
        return
    i, j = div["prompt"], div["position"]
    assert all(a[k] == b[k] for k in range(i))  # earlier prompts agree entirely
    assert a[i][:j] == b[i][:j] and a[i][j] != b[i][j]
    assert div["tokens"] == [a[i][j], b[i][j]]


def test_only_the_prefix_counts_after_a_divergence() -> None:
    # Two greedy decodes see different contexts after they part: later matches are luck.
    a = [[1, 2, 3, 4], [5, 6, 7, 8]]
    b = [[1, 9, 3, 4], [5, 6, 7, 8]]
    assert token_agreement(a, b) == pytest.approx((1 / 4 + 4 / 4) / 2)
    assert first_divergence(a, b) == {"prompt": 0, "position": 1, "tokens": [2, 9]}


def test_different_prompt_counts_are_refused() -> None:
    with pytest.raises(ValueError, match="same non-zero number of prompts"):
        token_agreement([[1]], [[1], [2]])


def _probe(name: str, outputs: list[list[int]] | None, reason: str | None = None) -> ProbeOutput:
    data = None if outputs is None else tuple(tuple(o) for o in outputs)
    return ProbeOutput(name, "/m/tiny", "float32", data, reason)


def test_section_has_one_entry_per_pair_and_the_first_probe_of_a_backend_wins() -> None:
    probes = [
        _probe("vllm", [[1, 2]]),
        _probe("pytorch", [[1, 3]]),
        _probe("vllm", [[7, 7]]),  # another xdist worker's engine: ignored
        _probe("openai", None, "the server returns text"),
    ]
    section = agreement_section(probes)
    assert [e["backends"] for e in section] == [
        ["openai", "pytorch"],
        ["openai", "vllm"],
        ["pytorch", "vllm"],
    ]
    pair = section[2]
    assert pair["token_agreement"] == 0.5 and pair["first_divergence"]["tokens"] == [3, 2]
    assert pair["dtypes"] == {"pytorch": "float32", "vllm": "float32"}
    assert section[0]["token_agreement"] is None
    assert section[0]["unavailable"] == "openai: the server returns text"


def test_probe_output_round_trips_through_a_report() -> None:
    probe = _probe("pytorch", [[1, 2, 3]])
    assert ProbeOutput.from_dict(probe.to_dict()) == probe


class _Greedy:
    def __init__(self, length: int | None = None) -> None:
        self.length = length

    def greedy_token_ids(self, prompts: list[list[int]], output_tokens: int) -> list[tuple]:
        n = self.length or output_tokens
        return [tuple(p[0] for _ in range(n)) for p in prompts]


def test_probe_prompts_are_fixed_slices_of_the_reference() -> None:
    prompts = probe_prompts(list(range(300)))
    assert len(prompts) == PROMPTS and all(len(p) == PROMPT_TOKENS for p in prompts)
    assert len({tuple(p) for p in prompts}) == PROMPTS
    assert probe_prompts(list(range(300))) == prompts


def test_a_backend_that_returns_the_wrong_length_gives_a_reason() -> None:
    ok = run_probe(_Greedy(), list(range(300)), backend="b", model="m", dtype="float32")
    assert ok.outputs is not None and all(len(o) == OUTPUT_TOKENS for o in ok.outputs)
    short = run_probe(_Greedy(3), list(range(300)), backend="b", model="m", dtype="float32")
    assert short.outputs is None and f"{OUTPUT_TOKENS} tokens" in str(short.reason)


def test_perplexity_of_uniform_logprobs_is_the_vocabulary_size() -> None:
    assert Perplexity.of([math.log(1 / 50)] * 10).value == pytest.approx(50)
    assert Perplexity.of([]).value is None
    assert Perplexity.of([float("nan")]).reason == (
        "the backend returned non-finite log-probabilities"
    )


def test_perplexity_of_a_backend_without_logprobs_says_why() -> None:
    from pytest_llmbench.errors import QualityUnavailable

    class NoScores:
        def token_logprobs(self, prompt_ids: list[int], response_ids: list[int]) -> list[float]:
            raise QualityUnavailable("echo does not return log-probabilities of a given text")

    p = measure_perplexity(NoScores(), [1, 2, 3])
    assert p.value is None
    assert p.describe() == "unavailable (echo does not return log-probabilities of a given text)"
