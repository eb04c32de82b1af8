"""SSE framing and OpenAI delta parsing."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_llmbench.backends.openai.sse import SSEError, SSEEvent, SSEParser, parse_data

STREAM = (
    ": keep-alive ping\n\n"
    'data: {"choices":[{"text":"h\u00e9"}]}\n\n'
    "event: note\r\ndata: line1\r\ndata: line2\r\n\r\n"
    "id: 7\rdata: cr-only\r\r"
    "data: [DONE]\n\n"
).encode()
EXPECTED = [
    SSEEvent('{"choices":[{"text":"h\u00e9"}]}'),
    SSEEvent("line1\nline2", "note"),
    SSEEvent("cr-only"),
    SSEEvent("[DONE]"),
]


def feed_all(parts: list[bytes]) -> list[SSEEvent]:
    parser = SSEParser()
    events = [e for part in parts for e in parser.feed(part)]
    return events + parser.close()


def test_whole_stream() -> None:
    assert feed_all([STREAM]) == EXPECTED


@given(st.lists(st.integers(0, len(STREAM)), max_size=12))
def test_chunk_boundaries_do_not_matter(cuts: list[int]) -> None:
    points = [0, *sorted(cuts), len(STREAM)]
    parts = [STREAM[a:b] for a, b in zip(points, points[1:], strict=False)]
    assert feed_all(parts) == EXPECTED  # even a cut inside "é" or between CR and LF


LF_STREAM = (
    'data: {"choices":[{"text":"a"}]}\n\n'
    ": ping\n\n"
    "event: note\ndata: one\ndata: two\n\n"
    "\n\n"
    "data: \u00e9t\u00e9\n\n"
    "id: 3\ndata:no-space\n\n"
    "data: [DONE]\n\n"
).encode()
LF_EXPECTED = [
    SSEEvent('{"choices":[{"text":"a"}]}'),
    SSEEvent("one\ntwo", "note"),
    SSEEvent("\u00e9t\u00e9"),
    SSEEvent("no-space"),
    SSEEvent("[DONE]"),
]


@given(st.lists(st.integers(0, len(LF_STREAM)), max_size=12))
def test_lf_only_streams_whole_events_and_fields_alike(cuts: list[int]) -> None:
    """Servers end lines with LF only: the parser's fast path for whole one-line events must
    agree with the line-by-line path, wherever the chunks are cut."""
    points = [0, *sorted(cuts), len(LF_STREAM)]
    parts = [LF_STREAM[a:b] for a, b in zip(points, points[1:], strict=False)]
    assert feed_all(parts) == LF_EXPECTED


def test_an_event_field_before_a_cr_carries_into_the_next_lf_chunk() -> None:
    assert feed_all([b"event: note\r", b"data: x\n\n"]) == [SSEEvent("x", "note")]


def test_close_flushes_an_unterminated_event() -> None:
    assert feed_all([b"data: last"]) == [SSEEvent("last")]


def test_invalid_utf8_is_an_sse_error() -> None:
    with pytest.raises(SSEError, match="not UTF-8"):
        SSEParser().feed(b"data: \xff\xfe\n\n")


def test_completion_delta() -> None:
    d = parse_data(json.dumps({"choices": [{"text": "", "finish_reason": "length"}]}), chat=False)
    assert d.is_token and d.text == "" and d.finish_reason == "length"  # an empty-text token


def test_chat_role_only_event_is_no_token() -> None:
    role = {"choices": [{"delta": {"role": "assistant", "content": ""}}]}
    assert not parse_data(json.dumps(role), chat=True).is_token
    content = {"choices": [{"delta": {"content": "hi"}}]}
    assert parse_data(json.dumps(content), chat=True).is_token


def test_usage_and_done() -> None:
    usage = {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 8}}
    d = parse_data(json.dumps(usage), chat=False)
    assert (d.is_token, d.prompt_tokens, d.completion_tokens) == (False, 3, 8)
    assert parse_data("[DONE]", chat=False).done


@pytest.mark.parametrize(
    "data, message",
    [
        ("{not json", "malformed SSE data"),
        ("[1, 2]", "not a JSON object"),
        ('{"error": {"message": "kv cache full"}}', "server error in stream: kv cache full"),
        ('{"choices": "x"}', "'choices' is not a list"),
    ],
)
def test_bad_data_is_an_sse_error(data: str, message: str) -> None:
    with pytest.raises(SSEError, match=message):
        parse_data(data, chat=False)
