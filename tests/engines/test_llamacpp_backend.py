"""The llamacpp backend on the embedded tiny model (real llama.cpp through llama-cpp-python)."""

from __future__ import annotations

import textwrap

import pytest

from pytest_llmbench import compat
from pytest_llmbench.backends.base import BackendSpec, GenerationRequest
from pytest_llmbench.backends.llamacpp.args import llama_kwargs, sampling_kwargs, server_args
from pytest_llmbench.backends.llamacpp.backend import INSTALL_HINT, LlamacppBackend
from pytest_llmbench.config.load import parse_override, resolve_config
from pytest_llmbench.errors import ConfigError
from pytest_llmbench.workload.tinymodel import ensure_tiny_model


def spec(*overrides: str, model: str | None = None) -> BackendSpec:
    config = resolve_config(overrides=[parse_override(o) for o in overrides])
    path = model or str(ensure_tiny_model())
    return BackendSpec(path, config, compat.translate(config, "llamacpp"), "cpu")


def reqs(n: int, prompt: int = 12, out: int = 8) -> list[GenerationRequest]:
    return [
        GenerationRequest(f"r{i}", tuple(range(5 + i, 5 + i + prompt)), out, out) for i in range(n)
    ]


# -- translation (no llama.cpp needed) -------------------------------------------------------------
def test_llamacpp_section_and_universal_parameters_translate() -> None:
    s = spec(
        "llamacpp.n_threads=2",
        "llamacpp.n_ctx=512",
        "llamacpp.flash_attn=true",
        "decoder.do_sample=true",
        "decoder.temperature=0.7",
        "decoder.top_k=20",
        "decoder.repetition_penalty=1.1",
        "random_seed=5",
    )
    assert llama_kwargs(s) == {
        "n_ctx": 512,
        "n_batch": 512,
        "flash_attn": True,
        "verbose": False,
        "n_threads": 2,
        "seed": 5,
    }
    assert sampling_kwargs(s.translation) == {
        "temp": 0.7,
        "top_k": 20,
        "top_p": 1.0,
        "min_p": 0.0,
        "repeat_penalty": 1.1,
    }
    assert server_args(s.config, native=False) == [
        "--n_ctx", "512", "--n_batch", "512", "--n_threads", "2", "--flash_attn", "true",
        "--seed", "5", "--interrupt_requests", "false",
    ]  # fmt: skip
    assert server_args(s.config, native=True) == [
        "--ctx-size", "512", "--batch-size", "512", "--threads", "2", "--flash-attn", "on",
        "--seed", "5",
    ]  # fmt: skip


def test_greedy_is_temperature_zero_and_precision_picks_the_gguf_type() -> None:
    assert sampling_kwargs(spec().translation)["temp"] == 0.0
    assert spec().translation.engine["gguf_type"] == "f32"
    assert spec("fp_precision=float16").translation.engine["gguf_type"] == "f16"
    both = spec("fp_precision=float16", "llamacpp.quantization=q8_0")
    assert both.translation.engine["gguf_type"] == "q8_0"


def test_parameters_llama_cpp_lacks_are_reported() -> None:
    s = spec("decoder.no_repeat_ngram_size=3", "quantization.load_in_8bit=true")
    assert dict(s.translation.unsupported) == {
        "decoder.no_repeat_ngram_size": "llama.cpp has no n-gram blocking",
        "quantization.load_in_8bit": "use llamacpp.quantization: q8_0 instead",
    }


def test_a_model_path_that_is_no_gguf_and_no_directory_is_named(tmp_path) -> None:
    other = tmp_path / "weights.bin"
    other.write_bytes(b"x")
    with pytest.raises(ConfigError, match="weights.bin is a file but not a .gguf file"):
        LlamacppBackend(spec(model=str(other))).model_file()
    with pytest.raises(ConfigError, match="nope: no such file or directory"):
        LlamacppBackend(spec(model=str(tmp_path / "nope"))).model_file()


def test_without_llama_cpp_the_backend_skips_with_the_install_hint(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "llama_cpp" else real(name, *a),
    )
    pytester.makepyfile(
        textwrap.dedent(
            """
            def test_x(llm_bench):
                llm_bench(num_prompts=1, input_tokens=4, output_tokens=2)
            """
        )
    )
    result = pytester.runpytest_inprocess("--llm-backend", "llamacpp", "-rs")
    result.assert_outcomes(skipped=1)
    assert INSTALL_HINT in result.stdout.str()  # the exact hint (fnmatch would read its [])
