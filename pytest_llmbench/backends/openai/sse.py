"""Server-sent events of OpenAI-compatible streaming responses: bytes -> events -> deltas.

Pure and incremental, so the client can timestamp each event the moment its bytes arrive.
Follows the SSE framing of the HTML standard: lines end in LF, CRLF or CR; ``data:`` lines of
one event are joined with LF; a blank line dispatches the event; lines starting with ``:`` are
comments (keep-alive pings). A chunk boundary may fall anywhere, even inside a UTF-8 character.

This runs once per streamed event of every request, on the client's one thread, so it works on
bytes with the C-level ``split``/``find`` (LF and CR never occur inside a multi-byte UTF-8
character, so splitting bytes is safe) and decodes each event's data once; events and deltas
are tuples, which cost less to build than dataclass instances.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

DONE = "[DONE]"


class SSEError(ValueError):
    """The stream does not follow the protocol (malformed JSON, an error event, ...)."""


class SSEEvent(NamedTuple):
    data: str
    event: str = "message"


class SSEParser:
    """Feed raw bytes, get complete events; :meth:`close` flushes an unterminated last event."""

    def __init__(self) -> None:
        self._buffer = b""
        self._data: list[bytes] = []
        self._event = b""

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        buffer = self._buffer + chunk if self._buffer else chunk
        if b"\r" in buffer:
            lines, self._buffer = _split_cr(buffer)
            return self._lines(lines)
        # LF only (what servers send): whole events first. Lines after the last blank line wait
        # in the buffer until their event is complete.
        *blocks, self._buffer = buffer.split(b"\n\n")
        events: list[SSEEvent] = []
        for block in blocks:
            # A whole block is a whole event: no field of an earlier one is pending.
            if block[:6] == b"data: " and b"\n" not in block and not (self._data or self._event):
                events.append(SSEEvent(_text(block[6:])))
            else:
                events += self._lines([*block.split(b"\n"), b""])
        return events

    def _lines(self, lines: list[bytes]) -> list[SSEEvent]:
        events: list[SSEEvent] = []
        for line in lines:
            event = self._line(line)
            if event is not None:
                events.append(event)
        return events

    def close(self) -> list[SSEEvent]:
        """Events left when the stream ends without a final blank line."""
        rest, self._buffer = self._buffer, b""
        lines = rest.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n") if rest else []
        return self._lines([*lines, b""])

    def _line(self, line: bytes) -> SSEEvent | None:
        if not line:
            if not self._data:
                self._event = b""
                return None
            data = self._data[0] if len(self._data) == 1 else b"\n".join(self._data)
            event = SSEEvent(_text(data), _text(self._event) if self._event else "message")
            self._data, self._event = [], b""
            return event
        if line[:1] == b":":
            return None
        name, _, value = line.partition(b":")
        if value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            self._data.append(value)
        elif name == b"event":
            self._event = value
        return None  # id, retry and unknown fields do not concern us


def _text(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SSEError(f"stream is not UTF-8 ({exc.reason})") from None


def _split_cr(buffer: bytes) -> tuple[list[bytes], bytes]:
    """Complete lines of a buffer holding CRs, and the unterminated rest. A CR at the very end
    stays in the rest: it may be the first half of a CRLF."""
    held = b""
    if buffer.endswith(b"\r"):
        buffer, held = buffer[:-1], b"\r"
    *lines, rest = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
    return lines, rest + held


class Delta(NamedTuple):
    """One data event of a completion stream, reduced to what we measure.

    ``is_token`` is True for an event that carries generated output (one or more tokens, its
    text possibly empty for a token that decodes to nothing yet). The chat endpoint's opening
    role-only event and the trailing usage-only event carry no token.
    """

    text: str = ""
    is_token: bool = False
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    done: bool = False


_DONE_DELTA = Delta(done=True)
_loads = json.JSONDecoder().decode  # json.loads less its per-call argument handling


def parse_data(data: str, chat: bool) -> Delta:
    """One event's data -> Delta; SSEError on malformed JSON or a server error event."""
    try:
        payload = _loads(data)
    except json.JSONDecodeError as exc:
        if data.strip() == DONE:
            return _DONE_DELTA
        raise SSEError(f"malformed SSE data ({exc.msg}): {data[:120]!r}") from None
    if type(payload) is not dict:
        raise SSEError(f"SSE data is not a JSON object: {data[:120]!r}")
    if "error" in payload:
        raise SSEError(f"server error in stream: {_error_message(payload['error'])}")
    usage = payload.get("usage")
    prompt_tokens = completion_tokens = None
    if type(usage) is dict:
        prompt_tokens = _int_or_none(usage, "prompt_tokens")
        completion_tokens = _int_or_none(usage, "completion_tokens")
    choices = payload.get("choices") or []
    if type(choices) is not list:
        raise SSEError(f"'choices' is not a list: {data[:120]!r}")
    if not choices:
        return Delta("", False, None, prompt_tokens, completion_tokens)
    choice = choices[0]
    if type(choice) is not dict:
        raise SSEError(f"a choice is not a JSON object: {data[:120]!r}")
    finish = choice.get("finish_reason")
    if chat:
        delta = choice.get("delta") or {}
        content = delta.get("content") if type(delta) is dict else None
        # vLLM opens a chat stream with {"role": "assistant", "content": ""}: no token yet.
        role_only = type(delta) is dict and "role" in delta and not content
        text = content if type(content) is str else ""
        is_token = content is not None and not role_only
    else:
        raw = choice.get("text")
        text = raw if type(raw) is str else ""
        is_token = raw is not None
    return Delta(
        text,
        is_token,
        finish if type(finish) is str else None,
        prompt_tokens,
        completion_tokens,
    )


def _int_or_none(mapping: dict[str, Any], key: str) -> int | None:
    value = mapping.get(key)
    return value if isinstance(value, int) else None


def _error_message(error: object) -> str:
    if isinstance(error, dict):
        return str(error.get("message") or error)[:500]
    return str(error)[:500]
