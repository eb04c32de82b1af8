"""llama.cpp fed from the one resolution: a Hub snapshot converted to GGUF, or a GGUF of a GGUF
repository picked by file or quantization; a prompt longer than the context fails its test in
one line instead of llama.cpp's ``llama_decode returned 1``. Real llama.cpp, in process."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import pytest

llama_cpp = pytest.importorskip("llama_cpp")  # imported before the inner sessions, kept by them
pytest.importorskip("gguf")

from pytest_llmbench.errors import ConfigError  # noqa: E402
from pytest_llmbench.models import resolve_model  # noqa: E402
from tests.models.conftest import REPO, V1  # noqa: E402
from tests.models.hf_cache import add_revision, commit_hash  # noqa: E402

GGUF_REPO = "llmbench/tiny-llama-GGUF"
GGUF_COMMIT = commit_hash("gguf")
F32, Q8 = "tiny-llama-F32.gguf", "tiny-llama-Q8_0.gguf"
QUICK = ("--llm-repeat", "1", "--llm-warmup", "0", "--llm-energy", "none")


@pytest.fixture(scope="session")
def gguf_repo(hub_cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A GGUF-only repository, as GGUF repositories on the Hub are: two quantizations of the
    embedded model, no config.json, no tokenizer files (the vocabulary is inside the GGUF)."""
    from pytest_llmbench.backends.llamacpp.gguf_convert import ensure_gguf
    from pytest_llmbench.workload.tinymodel import ensure_tiny_model

    out = tmp_path_factory.mktemp("gguf")
    files = {
        name: ensure_gguf(ensure_tiny_model(), kind, out).read_bytes()
        for name, kind in ((F32, "f32"), (Q8, "q8_0"))
    }
    add_revision(hub_cache_dir, GGUF_REPO, GGUF_COMMIT, files, refs=("main",))
    return GGUF_REPO


@pytest.fixture(autouse=True)
def _built_models_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_llmbench.workload.tinymodel import CACHE_ENV, cache_root

    monkeypatch.setenv(CACHE_ENV, str(cache_root()))


def test_a_gguf_repository_is_picked_by_file_or_quantization(
    hf_cache: Path, gguf_repo: str
) -> None:
    snapshot = hf_cache / "models--llmbench--tiny-llama-GGUF" / "snapshots" / GGUF_COMMIT
    by_quant = resolve_model(f"{gguf_repo}:q8_0", field="--llm-model")
    assert by_quant.engine_path("llamacpp") == str(snapshot / Q8)
    assert by_quant.identity == f"{gguf_repo}@{GGUF_COMMIT}:{Q8}"
    by_file = resolve_model(f"{gguf_repo}@main:{F32}", field="--llm-model")
    assert by_file.engine_path("openai", server_kind="llamacpp") == str(snapshot / F32)
    assert by_file.context is not None and by_file.context.tokens == 2048  # from the GGUF
    with pytest.raises(ConfigError) as info:
        by_file.engine_path("pytorch")
    assert str(info.value) == (
        f"--llm-model: {gguf_repo} has no config.json and safetensors weights, only GGUF files, "
        "which only llama.cpp loads (--llm-backend llamacpp, or --llm-server llamacpp); pytorch "
        "needs a model directory or a Hugging Face id with weights"
    )
    with pytest.raises(ConfigError, match=r"several \.gguf files .* pick one with"):
        resolve_model(gguf_repo, field="--llm-model")
    with pytest.raises(ConfigError, match="no .gguf file matches 'Q4_K_M'"):
        resolve_model(f"{gguf_repo}:Q4_K_M", field="--llm-model")


def test_llamacpp_by_id_and_a_prompt_beyond_its_context(
    hf_cache: Path, pytester: pytest.Pytester
) -> None:
    """The snapshot converted to GGUF; a 5000-token prompt against n_ctx 2048 fails its test in
    one line (the engine is never asked), and the next test runs on the same engine."""
    pytester.makepyfile(
        test_bench=textwrap.dedent(
            """
            def test_fits(llm_bench):
                llm_bench(num_prompts=2, input_tokens=8, output_tokens=4)

            def test_too_long(llm_bench):
                llm_bench(num_prompts=1, input_tokens=5000)

            def test_fits_again(llm_bench):
                llm_bench(num_prompts=2, input_tokens=8, output_tokens=4)
            """
        )
    )
    args = [
        "--llm-backend",
        "llamacpp",
        "--llm-model",
        f"{REPO}@v1",
        *QUICK,
        "--llm-json",
        "r.json",
    ]
    result = pytester.runpytest(*args)
    result.assert_outcomes(passed=2, failed=1)
    out = result.stdout.str()
    assert (
        "test_bench.py::test_too_long[llamacpp]: llm_bench(num_prompts=1, input_tokens=5000): "
        "5000 input + 16 output tokens = 5016 exceed the context of 2048 tokens on llamacpp "
        "(max_position_embeddings in config.json); at most 2032 input tokens fit\n"
    ) in out
    assert "llama_decode" not in out and "Traceback" not in out
    results = json.loads((pytester.path / "r.json").read_text())["results"]
    assert [r["model_source"]["commit"] for r in results] == [V1, V1]
    assert {r["model"] for r in results} == {REPO}
    assert {r["engine_details"]["gguf_type"] for r in results} == {"f32"}  # converted


def test_llamacpp_on_a_gguf_picked_from_a_repository(
    hf_cache: Path, gguf_repo: str, pytester: pytest.Pytester
) -> None:
    pytester.makepyfile(
        test_bench="""
        def test_throughput(llm_bench):
            llm_bench(num_prompts=2, input_tokens=8, output_tokens=4)
        """
    )
    args = ["--llm-backend", "llamacpp", "--llm-model", f"{gguf_repo}:Q8_0", *QUICK]
    result = pytester.runpytest(*args, "--llm-json", "r.json")
    result.assert_outcomes(passed=1)
    (r,) = json.loads((pytester.path / "r.json").read_text())["results"]
    assert r["model_source"]["path"].endswith(f"/{GGUF_COMMIT}/{Q8}")
    assert r["engine_details"]["gguf_type"] == "as given"
    refused = pytester.runpytest("--llm-backend", "pytorch", "--llm-model", f"{gguf_repo}:Q8_0")
    assert refused.ret == pytest.ExitCode.USAGE_ERROR
    refused.stderr.fnmatch_lines(["ERROR: --llm-model: * only GGUF files, which only llama.cpp*"])


def test_a_local_gguf_file_runs_on_llamacpp(
    hf_cache: Path, gguf_repo: str, pytester: pytest.Pytester
) -> None:
    snapshot = hf_cache / "models--llmbench--tiny-llama-GGUF" / "snapshots" / GGUF_COMMIT
    shutil.copy(snapshot / F32, pytester.path / "model.gguf")
    pytester.makepyfile(
        test_bench="""
        def test_throughput(llm_bench):
            llm_bench(num_prompts=1, input_tokens=8, output_tokens=4)
        """
    )
    args = [
        "--llm-backend",
        "llamacpp",
        "--llm-model",
        "model.gguf",
        *QUICK,
        "--llm-json",
        "r.json",
    ]
    pytester.runpytest(*args).assert_outcomes(passed=1)
    (r,) = json.loads((pytester.path / "r.json").read_text())["results"]
    assert r["model_source"]["kind"] == "local" and r["model"] == "model.gguf"
    assert r["model_source"]["context"]["source"].startswith("llama.context_length in")
