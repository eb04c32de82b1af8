"""The plugin as a user meets it: options, ini, usage errors, parametrisation and -k."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


def test_help_lists_the_llmbench_group(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(
        ["*LLM inference benchmarks (pytest-llmbench)*", "*--llm-backend=NAME*"]
    )
    for option in (
        "--llm-model",
        "--llm-config",
        "--llm-preset",
        "--llm-device",
        "--llm-repeat",
        "--llm-warmup",
        "--llm-json",
        "--llm-ignore-backend-warnings",
    ):
        assert option in result.stdout.str()


def test_help_imports_no_torch_or_engine() -> None:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "pytest", "--help"],
        cwd=Path(__file__).parent.parent,  # this repository, with its conftest files
        capture_output=True,
        text=True,
        check=True,
    )
    imported = {
        line.split("|")[-1].strip().split(".")[0]
        for line in proc.stderr.splitlines()
        if "|" in line
    }
    assert "pytest_llmbench" in imported  # the plugin itself was loaded...
    engines = {"torch", "transformers", "vllm", "sglang", "tensorrt_llm", "aiohttp", "httptools"}
    assert not imported & (engines | {"numpy", "scipy"})  # statistics load when used


def test_unknown_backend_is_a_usage_error(echo_pytester: pytest.Pytester) -> None:
    result = echo_pytester.runpytest("--llm-backend", "nosuch")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert "unknown backend 'nosuch'" in err
    assert "available: pytorch, vllm, sglang, tensorrt, openai, llamacpp, echo, broken, auto" in err
    assert "Traceback" not in err


def test_bad_yaml_value_names_the_dotted_field(echo_pytester: pytest.Pytester) -> None:
    echo_pytester.makefile(".yaml", bad="decoder:\n  temperature: -1\n")
    result = echo_pytester.runpytest("--llm-config", "bad.yaml", "--llm-backend", "echo")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*bad.yaml: decoder.temperature: -1 is not >= 0*"])


def test_a_config_file_with_several_errors_names_them_all(
    echo_pytester: pytest.Pytester,
) -> None:
    echo_pytester.makefile(".yaml", bad="decoder:\n  temprature: 0.7\n  top_k: -3\n")
    result = echo_pytester.runpytest("--llm-config", "bad.yaml", "--llm-backend", "echo")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.stderr.lines if line.strip()]
    assert errors == [
        "ERROR: bad.yaml: 2 config errors:",
        "bad.yaml: decoder.temprature: unknown key; did you mean 'decoder.temperature'? "
        "allowed keys here: do_sample, min_p, no_repeat_ngram_size, repetition_penalty, "
        "temperature, top_k, top_p",
        "bad.yaml: decoder.top_k: -3 is not >= 0",
    ]
    assert "passed" not in result.stdout.str()  # nothing ran


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--llm-set", "batching.strategy=greedy"],
            "batching.strategy: 'greedy' is not one of 'static' | 'dynamic'",
        ),
        (
            ["--llm-set", "decoder.temprature=1"],
            "decoder.temprature: unknown key; did you mean 'decoder.temperature'? allowed keys",
        ),
        (["--llm-set", "novalue"], "--llm-set: 'novalue' is not of the form dotted.key=value"),
        (["--llm-preset", "nosuch"], "--llm-preset: 'nosuch' is not one of"),
        (["--llm-model", "/no/such/dir"], "--llm-model: '/no/such/dir': no such file or directory"),
        (["--llm-config", "missing.yaml"], "--llm-config: 'missing.yaml' is not a readable file"),
        (["--llm-repeat", "0"], "--llm-repeat: 0 is not >= 1"),
    ],
)
def test_bad_input_gets_one_line(
    echo_pytester: pytest.Pytester, args: list[str], message: str
) -> None:
    result = echo_pytester.runpytest("--llm-backend", "echo", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.str()
    assert "Traceback" not in result.stderr.str()


def test_backends_parametrise_and_k_selects(echo_pytester: pytest.Pytester) -> None:
    result = echo_pytester.runpytest(
        "--llm-backend", "echo,broken", "-v", "--llm-repeat", "1", "--llm-warmup", "0"
    )
    result.stdout.fnmatch_lines(
        ["*test_throughput?echo? PASSED*", "*test_throughput?broken? SKIPPED*"]
    )
    result.assert_outcomes(passed=1, skipped=1)
    selected = echo_pytester.runpytest(
        "--llm-backend", "echo", "--llm-backend", "broken", "-k", "echo", "-v"
    )
    selected.assert_outcomes(passed=1)


def test_missing_dependency_skips_with_install_hint(echo_pytester: pytest.Pytester) -> None:
    result = echo_pytester.runpytest("--llm-backend", "broken", "-rs")
    result.assert_outcomes(skipped=1)
    assert "broken is not installed: pip install pytest-llmbench[broken]" in result.stdout.str()


def test_ini_options_mirror_the_command_line(echo_pytester: pytest.Pytester) -> None:
    echo_pytester.makeini(
        "[pytest]\nllm_backend = echo\nllm_repeat = 2\nllm_warmup = 0\nllm_json = out.json\n"
    )
    result = echo_pytester.runpytest()
    result.assert_outcomes(passed=1)
    report = json.loads((echo_pytester.path / "out.json").read_text())
    assert [r["backend"] for r in report["results"]] == ["echo"]
    assert len(report["results"][0]["repetitions"]) == 2


def test_command_line_wins_over_ini(echo_pytester: pytest.Pytester) -> None:
    echo_pytester.makeini("[pytest]\nllm_backend = echo\nllm_repeat = 2\n")
    result = echo_pytester.runpytest("--llm-repeat", "1", "--llm-json", "out.json")
    result.assert_outcomes(passed=1)
    report = json.loads((echo_pytester.path / "out.json").read_text())
    assert len(report["results"][0]["repetitions"]) == 1


def test_engine_starts_once_per_session(echo_pytester: pytest.Pytester) -> None:
    echo_pytester.makepyfile(
        test_more="""
        def test_a(llm_bench):
            llm_bench(num_prompts=1, input_tokens=4, output_tokens=2)

        def test_b(llm_bench, llm_backend):
            llm_bench(num_prompts=1, input_tokens=4, output_tokens=2)
            assert type(llm_backend.backend).started == 1
        """
    )
    result = echo_pytester.runpytest("--llm-backend", "echo", "-p", "no:randomly")
    result.assert_outcomes(passed=3)


def test_backend_name_fixture_runs_without_the_engine(echo_pytester: pytest.Pytester) -> None:
    """``llm_backend_name`` parametrises like ``llm_backend`` but starts and imports nothing."""
    echo_pytester.makepyfile(
        test_names="""
        import pytest

        def test_declared(llm_backend_name):
            assert llm_backend_name in ("echo", "broken")

        def test_both(llm_backend, llm_backend_name):
            assert llm_backend.name == llm_backend_name

        @pytest.mark.llm_requires("decoder.no_repeat_ngram_size")
        def test_requires(llm_backend_name):
            pass
        """
    )
    result = echo_pytester.runpytest("test_names.py", "--llm-backend", "echo,broken", "-rs", "-v")
    result.assert_outcomes(passed=3, skipped=3)
    result.stdout.fnmatch_lines(
        [
            "*test_declared?broken? PASSED*",  # the broken engine is never needed here
            "*test_both?broken? SKIPPED*",
            "*echo does not support decoder.no_repeat_ngram_size*",
            "*broken is not installed*",
        ]
    )
    selected = echo_pytester.runpytest(
        "test_names.py", "--llm-backend", "echo,broken", "-k", "echo"
    )
    selected.assert_outcomes(passed=2, skipped=1)  # only the echo instances
