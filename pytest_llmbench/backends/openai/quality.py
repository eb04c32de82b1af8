"""What an OpenAI-compatible server can tell about its answers: greedy token ids (agreement),
prompt log-probabilities (perplexity) and speculative-decoding counters (``/metrics``).

Each is asked for in the plainest form the protocol allows, with vLLM's extensions where the
standard has none; a server that refuses gives ``QualityUnavailable`` with its answer as the
reason, never a made-up number.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pytest_llmbench.errors import QualityUnavailable

_TOKEN_PREFIX = "token_id:"  # vLLM's return_tokens_as_token_ids spelling of a token


@dataclass(frozen=True)
class ServerClient:
    """Synchronous JSON calls to one server (the probe runs between benchmarks, not in them)."""

    base_url: str
    model: str
    headers: Mapping[str, str]
    timeout_s: float

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        url = f"{self.base_url}{path}"
        headers = {"Content-Type": "application/json", **self.headers}
        data = json.dumps({"model": self.model, **body}).encode()
        req = urllib.request.Request(url, data=data, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as r:
                out = json.loads(r.read().decode("utf-8"))
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")[:200]
            raise QualityUnavailable(f"POST {path}: HTTP {exc.code}: {detail}") from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise QualityUnavailable(f"POST {path}: {exc}") from None
        if not isinstance(out, dict):
            raise QualityUnavailable(f"POST {path}: expected a JSON object")
        return out

    def get_text(self, path: str) -> str | None:
        req = urllib.request.Request(f"{self.base_url}{path}", headers=dict(self.headers))
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as r:
                return str(r.read().decode("utf-8", "replace"))
        except (urllib.error.URLError, OSError, ValueError):
            return None


def _choice(reply: dict[str, Any], what: str) -> dict[str, Any]:
    try:
        choice = reply["choices"][0]
    except (KeyError, IndexError, TypeError):
        raise QualityUnavailable(f"{what}: the reply has no choices") from None
    if not isinstance(choice, dict):
        raise QualityUnavailable(f"{what}: the reply's choice is not an object")
    return choice


def generated_ids(choice: dict[str, Any]) -> list[int] | None:
    """Token ids of a completion choice: vLLM's ``token_ids`` (return_token_ids), else its
    ``token_id:N`` logprob tokens (return_tokens_as_token_ids); None when the server sent text."""
    ids = choice.get("token_ids")
    if isinstance(ids, list) and all(isinstance(t, int) for t in ids):
        return list(ids)
    tokens = (choice.get("logprobs") or {}).get("tokens")
    if (
        isinstance(tokens, list)
        and tokens
        and all(isinstance(t, str) and t.startswith(_TOKEN_PREFIX) for t in tokens)
    ):
        return [int(t.removeprefix(_TOKEN_PREFIX)) for t in tokens]
    return None


def greedy_token_ids(
    client: ServerClient, prompts: Sequence[Sequence[int]], output_tokens: int
) -> list[tuple[int, ...]]:
    """Greedy continuations of exactly ``output_tokens`` tokens, one request per prompt."""
    out = []
    for prompt in prompts:
        body = {
            "prompt": list(prompt),
            "max_tokens": output_tokens,
            "min_tokens": output_tokens,
            "ignore_eos": True,
            "temperature": 0,
            "logprobs": 0,
            "return_tokens_as_token_ids": True,
        }
        ids = generated_ids(_choice(client.post("/v1/completions", body), "greedy probe"))
        if ids is None:
            raise QualityUnavailable(
                "the server returns text, not token ids (vLLM's return_tokens_as_token_ids)"
            )
        out.append(tuple(ids))
    return out


def token_logprobs(
    client: ServerClient, prompt_ids: Sequence[int], response_ids: Sequence[int]
) -> list[float]:
    """Log-probabilities of ``response_ids`` after ``prompt_ids``: ``echo`` + ``logprobs`` on
    ``/v1/completions`` (the prompt's tokens come back scored, the first one without a score)."""
    if not prompt_ids:
        raise ValueError("prompt_ids must not be empty")
    body = {
        "prompt": [*prompt_ids, *response_ids],
        "max_tokens": 1,
        "echo": True,
        "logprobs": 0,
        "temperature": 0,
    }
    choice = _choice(client.post("/v1/completions", body), "echo with logprobs")
    scores = (choice.get("logprobs") or {}).get("token_logprobs")
    start = len(prompt_ids)
    if not isinstance(scores, list) or len(scores) < start + len(response_ids):
        raise QualityUnavailable("the server does not echo the prompt's log-probabilities")
    picked = scores[start : start + len(response_ids)]
    if not all(isinstance(x, (int, float)) for x in picked):
        raise QualityUnavailable("the server echoed the prompt without log-probabilities")
    return [float(x) for x in picked]
