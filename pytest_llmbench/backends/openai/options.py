"""Options of the ``openai`` backend: which server, how to reach it, limits; validated once.

The plugin declares the command-line options with :func:`add_options` and builds the value with
:func:`options_from_getoption` at ``pytest_configure``; the backend receives it through
``BackendSpec.options["openai"]``. The API key itself is never stored here: only the name of the
environment variable that holds it, read when a request is sent, so no repr, log or report can
contain it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal
from urllib.parse import urlsplit

from pytest_llmbench.errors import ConfigError

SERVER_KINDS: tuple[str, ...] = ("vllm", "sglang", "tensorrt", "llamacpp")
ENDPOINTS: tuple[str, ...] = ("completions", "chat")
OPTIONS_KEY = "openai"  # key of BackendSpec.options

Endpoint = Literal["completions", "chat"]


@dataclass(frozen=True)
class OpenAIOptions:
    """How the ``openai`` backend reaches its server. Times in seconds."""

    server_url: str | None = None  # an external server; None starts a managed one
    server: str = "vllm"  # managed server kind when server_url is None
    api_key_env: str | None = None  # NAME of the env var holding the key, never the key
    request_timeout_s: float = 600.0  # whole request, first byte to last
    max_connections: int = 256  # connections (= requests in flight) to the server
    endpoint: Endpoint = "completions"  # /v1/completions (token ids) or /v1/chat/completions
    model_name: str | None = None  # sent as "model"; None: first entry of /v1/models
    startup_timeout_s: float = 900.0  # managed server: time to become ready
    server_args: tuple[str, ...] = ()  # managed server: extra command-line arguments, verbatim
    # client processes that share each schedule (backends/openai/processes.py); "auto": one per
    # usable CPU, less one when the server runs on this machine
    client_processes: int | Literal["auto"] = 1

    def api_key(self) -> str | None:
        """The key from the environment at call time (None when no variable is configured)."""
        if self.api_key_env is None:
            return None
        key = os.environ.get(self.api_key_env)
        if not key:
            raise ConfigError(
                "--llm-api-key-env", f"environment variable {self.api_key_env} is unset or empty"
            )
        return key


def validate_server_url(url: str) -> str:
    """The URL without a trailing slash; ConfigError naming ``--llm-server-url`` when unusable."""
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError on a bad port
    except ValueError as exc:
        raise ConfigError("--llm-server-url", f"{url!r} is not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https"):
        raise ConfigError(
            "--llm-server-url", f"{url!r}: scheme must be http or https, e.g. http://127.0.0.1:8000"
        )
    if not parts.hostname:
        raise ConfigError("--llm-server-url", f"{url!r} has no host, e.g. http://127.0.0.1:8000")
    if parts.username or parts.password:
        raise ConfigError(
            "--llm-server-url", "must not contain credentials; use --llm-api-key-env VAR"
        )
    if parts.query or parts.fragment:
        raise ConfigError("--llm-server-url", f"{url!r}: drop the query/fragment")
    del port
    path = parts.path.rstrip("/")
    if path.endswith("/v1"):  # users paste the OpenAI "base_url"; we add /v1 ourselves
        path = path[: -len("/v1")]
    return f"{parts.scheme}://{parts.netloc}{path}"


def validate(options: OpenAIOptions) -> OpenAIOptions:
    """The options with the URL normalised; ConfigError naming the option that is wrong."""
    url = options.server_url
    if url is not None:
        url = validate_server_url(url)
    if options.server not in SERVER_KINDS:
        raise ConfigError(
            "--llm-server", f"{options.server!r} is not one of {', '.join(SERVER_KINDS)}"
        )
    if options.endpoint not in ENDPOINTS:
        raise ConfigError("--llm-endpoint", f"{options.endpoint!r} is not one of {ENDPOINTS}")
    if options.api_key_env is not None and not options.api_key_env.isidentifier():
        raise ConfigError(
            "--llm-api-key-env",
            "takes the NAME of an environment variable (e.g. OPENAI_API_KEY), not the key",
        )
    if not options.request_timeout_s > 0:
        raise ConfigError("--llm-request-timeout", f"{options.request_timeout_s} is not > 0")
    if options.max_connections < 1:
        raise ConfigError("--llm-max-connections", f"{options.max_connections} is not >= 1")
    if not options.startup_timeout_s > 0:
        raise ConfigError("--llm-server-startup-timeout", f"{options.startup_timeout_s} is not > 0")
    return _replace(
        options, server_url=url, client_processes=client_processes(options.client_processes)
    )


def client_processes(value: object) -> int | Literal["auto"]:
    """``--llm-client-processes``: a whole number >= 1, or ``auto``."""
    if value == "auto":
        return "auto"
    try:
        number = int(str(value)) if not isinstance(value, int) else value
    except ValueError:
        number = 0
    if isinstance(value, (bool, float)) or number < 1:
        raise ConfigError("--llm-client-processes", f"{value!r} is not a number >= 1 or auto")
    return number


def _replace(options: OpenAIOptions, **changes: Any) -> OpenAIOptions:
    values = {f.name: getattr(options, f.name) for f in fields(options)}
    values.update(changes)
    return OpenAIOptions(**values)


def from_mapping(values: Mapping[str, object]) -> OpenAIOptions:
    """Options from a plain mapping (e.g. a YAML section); unknown keys are an error."""
    known = {f.name for f in fields(OpenAIOptions)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError("openai", f"unknown option(s) {unknown}; known: {sorted(known)}")
    kwargs: dict[str, Any] = dict(values)
    if "server_args" in kwargs:
        kwargs["server_args"] = tuple(str(a) for a in kwargs["server_args"])
    return validate(OpenAIOptions(**kwargs))


def from_spec_options(options: Mapping[str, object]) -> OpenAIOptions:
    """The backend's view of ``BackendSpec.options``: defaults when the plugin set nothing."""
    value = options.get(OPTIONS_KEY)
    if value is None:
        return validate(OpenAIOptions())
    if isinstance(value, OpenAIOptions):
        return validate(value)
    if isinstance(value, Mapping):
        return from_mapping(value)
    raise TypeError(f"BackendSpec.options[{OPTIONS_KEY!r}] must be OpenAIOptions, not {value!r}")


# -- pytest wiring (the plugin calls these; no pytest import here) -----------------------------

# (option, dest, help, extra argparse keywords)
OPTION_SPECS: tuple[tuple[str, str, str, dict[str, Any]], ...] = (
    (
        "--llm-server-url",
        "llm_server_url",
        "openai backend: URL of a running OpenAI-compatible server (http[s]://host:port); "
        "without it a managed server is started (--llm-server).",
        {},
    ),
    (
        "--llm-server",
        "llm_server",
        "openai backend: managed server to start: " + ", ".join(SERVER_KINDS) + " (default vllm).",
        {"choices": SERVER_KINDS},
    ),
    (
        "--llm-server-arg",
        "llm_server_arg",
        "openai backend: one more argument for the managed server's command line, verbatim and "
        "last (repeatable; write flags as --llm-server-arg=--flag).",
        {"action": "append"},
    ),
    (
        "--llm-server-startup-timeout",
        "llm_server_startup_timeout",
        "openai backend: seconds a managed server may take to answer /health (default 900).",
        {"type": float},
    ),
    (
        "--llm-api-key-env",
        "llm_api_key_env",
        "openai backend: NAME of the environment variable that holds the API key "
        "(the key is never printed or stored).",
        {},
    ),
    (
        "--llm-request-timeout",
        "llm_request_timeout",
        "openai backend: seconds one request may take before it counts as failed (default 600).",
        {"type": float},
    ),
    (
        "--llm-max-connections",
        "llm_max_connections",
        "openai backend: most connections (requests in flight) to the server (default 256).",
        {"type": int},
    ),
    (
        "--llm-client-processes",
        "llm_client_processes",
        "openai backend: client processes that share each schedule, N or auto (one per usable "
        "CPU, less one for a server on this machine, at most 8) (default 1).",
        {"metavar": "N|auto"},
    ),
    (
        "--llm-endpoint",
        "llm_endpoint",
        "openai backend: completions (token-id prompts, exact lengths) or chat (default "
        "completions).",
        {"choices": ENDPOINTS},
    ),
)


def add_options(group: Any) -> None:
    """Declare the options on a pytest option group (``parser.getgroup("llmbench")``)."""
    for option, dest, help_text, extra in OPTION_SPECS:
        group.addoption(option, dest=dest, default=None, help=help_text, **extra)


def options_from_getoption(getoption: Callable[[str], object]) -> OpenAIOptions:
    """Validated options from ``config.getoption``; unset options keep their defaults."""
    keys = {
        "llm_server_url": "server_url",
        "llm_server": "server",
        "llm_api_key_env": "api_key_env",
        "llm_request_timeout": "request_timeout_s",
        "llm_max_connections": "max_connections",
        "llm_endpoint": "endpoint",
        "llm_server_arg": "server_args",
        "llm_server_startup_timeout": "startup_timeout_s",
        "llm_client_processes": "client_processes",
    }
    values: dict[str, Any] = {}
    for dest, name in keys.items():
        value: Any = getoption(dest)
        if value is not None:
            values[name] = tuple(str(v) for v in value) if name == "server_args" else value
    return validate(OpenAIOptions(**values))
