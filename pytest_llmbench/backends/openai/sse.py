"""Server-sent events of OpenAI-compatible streaming responses: bytes -> events -> deltas.

Pure and incremental, so the client can timestamp each event the moment its bytes arrive.
Follows the SSE framing of the HTML standard: lines end in LF, CRLF or CR; ``data:`` lines of
one event are joined with LF; a blank line dispatches the event; lines starting with ``:`` are
comments (keep-alive pings). A chunk boundary may fall anywhere, even inside a UTF-8 character.
"""

from __future__ import annotations

import codecs
import json
from dataclasses import dataclass
from typing import Any

DONE = "[DONE]"


class SSEError(ValueError):
    """The stream does not follow the protocol (malformed JSON, an error event, ...)."""


@dataclass(frozen=True)
class SSEEvent:
    data: str
    event: str = "message"


class SSEParser:
    """Feed raw bytes, get complete events; :meth:`close` flushes an unterminated last event."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="strict")
        self._buffer = ""
        self._data: list[str] = []
        self._event = ""

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        try:
            self._buffer += self._decoder.decode(chunk)
        except UnicodeDecodeError as exc:
            raise SSEError(f"stream is not UTF-8 ({exc.reason})") from None
        events: list[SSEEvent] = []
        while True:
            end = _line_end(self._buffer)
            if end is None:
                break
            line, self._buffer = self._buffer[: end[0]], self._buffer[end[1] :]
            event = self._line(line)
            if event is not None:
                events.append(event)
        return events

    def close(self) -> list[SSEEvent]:
        """Events left when the stream ends without a final blank line."""
        events = self.feed(b"")
        if self._buffer:
            event = self._line(self._buffer)
            self._buffer = ""
            if event is not None:
                events.append(event)
        event = self._line("")
        if event is not None:
            events.append(event)
        return events

    def _line(self, line: str) -> SSEEvent | None:
        if line == "":
            if not self._data:
                self._event = ""
                return None
            event = SSEEvent("\n".join(self._data), self._event or "message")
            self._data, self._event = [], ""
            return event
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        return None  # id, retry and unknown fields do not concern us


def _line_end(buffer: str) -> tuple[int, int] | None:
    """(end of the first line, start of the next), or None when no complete line is buffered."""
    for i, ch in enumerate(buffer):
        if ch == "\n":
            return i, i + 1
        if ch == "\r":
            if i + 1 == len(buffer):
                return None  # a CR at the end may be the first half of CRLF
            return i, i + 2 if buffer[i + 1] == "\n" else i + 1
    return None


@dataclass(frozen=True)
class Delta:
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


def parse_data(data: str, chat: bool) -> Delta:
    """One event's data -> Delta; SSEError on malformed JSON or a server error event."""
    if data.strip() == DONE:
        return Delta(done=True)
    try:
        payload = json.loads(data)
    except json.JSONDecodeError as exc:
        raise SSEError(f"malformed SSE data ({exc.msg}): {data[:120]!r}") from None
    if not isinstance(payload, dict):
        raise SSEError(f"SSE data is not a JSON object: {data[:120]!r}")
    if "error" in payload:
        raise SSEError(f"server error in stream: {_error_message(payload['error'])}")
    usage = payload.get("usage") if isinstance(payload.get("usage"), dict) else None
    prompt_tokens = _int_or_none(usage, "prompt_tokens")
    completion_tokens = _int_or_none(usage, "completion_tokens")
    choices = payload.get("choices") or []
    if not isinstance(choices, list):
        raise SSEError(f"'choices' is not a list: {data[:120]!r}")
    if not choices:
        return Delta(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)
    choice = choices[0]
    if not isinstance(choice, dict):
        raise SSEError(f"a choice is not a JSON object: {data[:120]!r}")
    finish = choice.get("finish_reason")
    if chat:
        delta = choice.get("delta") or {}
        content = delta.get("content") if isinstance(delta, dict) else None
        # vLLM opens a chat stream with {"role": "assistant", "content": ""}: no token yet.
        role_only = isinstance(delta, dict) and "role" in delta and not content
        text = content if isinstance(content, str) else ""
        is_token = content is not None and not role_only
    else:
        raw = choice.get("text")
        text = raw if isinstance(raw, str) else ""
        is_token = raw is not None
    return Delta(
        text=text,
        is_token=is_token,
        finish_reason=finish if isinstance(finish, str) else None,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
    )


def _int_or_none(mapping: dict[str, Any] | None, key: str) -> int | None:
    value = None if mapping is None else mapping.get(key)
    return value if isinstance(value, int) else None


def _error_message(error: object) -> str:
    if isinstance(error, dict):
        return str(error.get("message") or error)[:500]
    return str(error)[:500]
