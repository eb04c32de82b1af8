"""Validation of the openai backend's options, as the plugin will call it."""

from __future__ import annotations

import pytest

from pytest_llmbench.backends.openai.options import (
    OpenAIOptions,
    from_mapping,
    from_spec_options,
    validate,
    validate_server_url,
)
from pytest_llmbench.errors import ConfigError


@pytest.mark.parametrize(
    "url, expected",
    [
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
        ("https://api.example.com/", "https://api.example.com"),
        ("http://host:8000/v1", "http://host:8000"),  # the OpenAI base_url form
        ("http://host/proxy/v1/", "http://host/proxy"),
        ("http://[::1]:9000", "http://[::1]:9000"),
    ],
)
def test_good_urls_are_normalised(url: str, expected: str) -> None:
    assert validate_server_url(url) == expected


@pytest.mark.parametrize(
    "url, message",
    [
        ("127.0.0.1:8000", "scheme must be http or https"),
        ("ftp://host", "scheme must be http or https"),
        ("http://", "has no host"),
        ("http://host:99999", "not a valid URL"),
        ("http://user:pw@host", "must not contain credentials"),
        ("http://host?x=1", "drop the query"),
    ],
)
def test_bad_urls_name_the_option(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        validate_server_url(url)
    assert str(info.value).startswith("--llm-server-url: ")


@pytest.mark.parametrize(
    "changes, option",
    [
        ({"server": "tgi"}, "--llm-server"),
        ({"request_timeout_s": 0}, "--llm-request-timeout"),
        ({"max_connections": 0}, "--llm-max-connections"),
        ({"api_key_env": "sk-abc123"}, "--llm-api-key-env"),
        ({"endpoint": "embeddings"}, "--llm-endpoint"),
    ],
)
def test_bad_values_name_the_option(changes: dict[str, object], option: str) -> None:
    with pytest.raises(ConfigError, match=f"^{option}: "):
        validate(OpenAIOptions(**changes))  # type: ignore[arg-type]


def test_a_key_passed_as_the_variable_name_is_not_echoed() -> None:
    with pytest.raises(ConfigError) as info:
        validate(OpenAIOptions(api_key_env="sk-abc123"))
    assert "sk-abc123" not in str(info.value)


def test_pytest_option_roundtrip(pytester: pytest.Pytester) -> None:
    """The plugin declares the options (with ini mirrors) and validates them at configure."""
    pytester.makepyfile(
        """
        from pytest_llmbench.backends.openai.options import OpenAIOptions
        from pytest_llmbench.plugin import SESSION_KEY

        def test_it(pytestconfig):
            assert pytestconfig.stash[SESSION_KEY].options.openai == OpenAIOptions(
                server_url="http://h:1", request_timeout_s=5.0, max_connections=8
            )
        """
    )
    args = ["--llm-server-url", "http://h:1/v1/", "--llm-request-timeout", "5"]
    result = pytester.runpytest_inprocess(*args, "--llm-max-connections", "8")
    result.assert_outcomes(passed=1)
    pytester.makeini(
        "[pytest]\nllm_server_url = http://h:1\nllm_request_timeout = 5\nllm_max_connections = 8\n"
    )
    pytester.runpytest_inprocess().assert_outcomes(passed=1)
    pytester.makepyfile(
        """
        from pytest_llmbench.plugin import SESSION_KEY

        def test_it(pytestconfig):
            options = pytestconfig.stash[SESSION_KEY].options.openai
            assert options.server_args == ("--max-num-seqs", "4", "--enforce-eager")
            assert options.startup_timeout_s == 30.0
        """
    )
    server = ["--llm-server-arg=--max-num-seqs", "--llm-server-arg", "4"]
    more = ["--llm-server-arg=--enforce-eager", "--llm-server-startup-timeout", "30"]
    pytester.runpytest_inprocess(*server, *more).assert_outcomes(passed=1)
    pytester.makeini(
        "[pytest]\nllm_server_arg = --max-num-seqs 4 --enforce-eager\n"
        "llm_server_startup_timeout = 30\n"
    )
    pytester.runpytest_inprocess().assert_outcomes(passed=1)
    bad = pytester.runpytest_inprocess("--llm-server-startup-timeout", "0")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    bad.stderr.fnmatch_lines(["*--llm-server-startup-timeout: 0.0 is not > 0*"])
    bad = pytester.runpytest_inprocess("--llm-server-url", "localhost:8000")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    bad.stderr.fnmatch_lines(["*--llm-server-url: 'localhost:8000': scheme must be http or https*"])


def test_spec_options() -> None:
    assert from_spec_options({}) == OpenAIOptions()
    assert from_spec_options({"openai": {"server": "sglang"}}).server == "sglang"
    with pytest.raises(ConfigError, match="unknown option"):
        from_mapping({"sever": "vllm"})
    with pytest.raises(TypeError):
        from_spec_options({"openai": 3})
