"""Hugging Face ids and context limits as a user meets them: real sessions on pytorch (pytester,
in process), a cache built by hand (conftest.py), no network."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import pytest

from pytest_llmbench.gate import compare
from pytest_llmbench.gate.history import expand, load_history
from pytest_llmbench.results import load_report
from tests.models.conftest import MAIN, REPO, V1

pytest.importorskip("torch")

QUICK = ("--llm-repeat", "1", "--llm-warmup", "0", "--llm-energy", "none")
BENCH = textwrap.dedent(
    """
    def test_throughput(llm_bench):
        llm_bench(num_prompts=2, input_tokens=8, output_tokens=4)
    """
)


@pytest.fixture(autouse=True)
def _built_models_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    """pytester moves HOME: keep the embedded model's cache where it is already built."""
    from pytest_llmbench.workload.tinymodel import CACHE_ENV, cache_root

    monkeypatch.setenv(CACHE_ENV, str(cache_root()))


def usage_error(result: pytest.RunResult) -> str:
    """The one line of a usage error (exit 4), after checking nothing ran."""
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    lines = [line for line in result.errlines if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("ERROR: "), lines
    assert "Traceback" not in result.stdout.str() and "collected" not in result.stdout.str()
    return lines[0].removeprefix("ERROR: ")


def test_the_suite_by_id_and_by_revision(hf_cache: Path, pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_bench=BENCH)
    runs = {}
    for name, model in (("main", REPO), ("v1", f"{REPO}@v1")):
        result = pytester.runpytest("--llm-model", model, *QUICK, "--llm-json", f"{name}.json")
        result.assert_outcomes(passed=1)
        runs[name] = load_report(pytester.path / f"{name}.json")
        snapshot = hf_cache / "models--llmbench--tiny-llama" / "snapshots"
        commit = MAIN if name == "main" else V1
        result.stdout.fnmatch_lines(
            [f"backend pytorch * model {REPO}@{name} (commit {commit[:12]}, {snapshot / commit})"]
        )
        (r,) = runs[name].results
        assert r.model == REPO
        assert r.model_source == {
            "kind": "hub",
            "name": REPO,
            "id": REPO,
            "revision": name,
            "commit": commit,
            "path": str(snapshot / commit),
            "context": {
                "tokens": 1024 if name == "main" else 2048,
                "source": "max_position_embeddings in config.json",
            },
        }
    # Two commits are two configs for the gate: a note against one baseline, ...
    assert runs["main"].results[0].config_hash != runs["v1"].results[0].config_hash
    comparison = compare(runs["v1"], runs["main"])
    assert any("config differs" in row.detail for row in comparison.rows)
    # ... and in a history spanning both commits, each is judged against its own runs only.
    history = pytester.path / "history"
    history.mkdir()
    shutil.copy(pytester.path / "v1.json", history / "1.json")
    shutil.copy(pytester.path / "main.json", history / "2.json")
    spanning = compare(load_history(expand([str(history)])).reports, runs["main"])
    assert [row.runs for row in spanning.rows if row.runs] and all(
        row.runs == 1 for row in spanning.rows if row.runs
    )
    assert any("1 history run(s) ran another config" in note for note in spanning.notes)


def test_a_pinned_commit_is_the_same_config_as_its_branch(
    hf_cache: Path, pytester: pytest.Pytester
) -> None:
    pytester.makepyfile(test_bench=BENCH)
    for name, model in (("branch", REPO), ("pinned", f"{REPO}@{MAIN}")):
        pytester.runpytest("--llm-model", model, *QUICK, "--llm-json", f"{name}.json")
    hashes = {
        json.loads((pytester.path / f"{n}.json").read_text())["results"][0]["config_hash"]
        for n in ("branch", "pinned")
    }
    assert len(hashes) == 1


def test_model_errors_name_what_the_user_typed(hf_cache: Path, pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_bench=BENCH)
    cli = usage_error(pytester.runpytest("--llm-model", f"{REPO}@v9"))
    assert cli.startswith(f"--llm-model: {REPO} has no revision 'v9' in the Hugging Face cache")
    pytester.makefile(".yaml", bench="model_name: llmbench/absent\n")
    yaml = usage_error(pytester.runpytest("--llm-config", "bench.yaml"))
    assert yaml.startswith("bench.yaml: model_name: llmbench/absent is not in the Hugging Face")
    assert yaml.endswith("or allow them with --llm-allow-download")
    override = usage_error(pytester.runpytest("--llm-set", "model_name=./absent"))
    assert override == "command line: model_name: './absent': no such file or directory"


def test_a_local_folder_that_reads_as_an_id_wins_said_once(
    hf_cache: Path, pytester: pytest.Pytester
) -> None:
    folder = pytester.path / "llmbench" / "tiny-llama"
    shutil.copytree(hf_cache / "models--llmbench--tiny-llama" / "snapshots" / V1, folder)
    pytester.makepyfile(test_bench=BENCH + BENCH.replace("test_throughput", "test_again"))
    result = pytester.runpytest("--llm-model", REPO, *QUICK, "--llm-json", "r.json")
    result.assert_outcomes(passed=2)
    said = "is a local folder and also reads as a Hugging Face id; the local folder is used"
    assert result.stdout.str().count(said) == 1
    data = json.loads((pytester.path / "r.json").read_text())
    assert {r["model_source"]["kind"] for r in data["results"]} == {"local"}


@pytest.mark.parametrize(
    ("backend", "settings", "limit", "source"),
    [
        ("pytorch", (), 1024, "max_position_embeddings in config.json"),
        ("vllm", ("vllm.max_model_len=64",), 64, "vllm.max_model_len"),
        ("sglang", ("sglang.context_length=64",), 64, "sglang.context_length"),
        ("tensorrt", ("tensorrt.max_seq_len=64",), 64, "tensorrt.max_seq_len"),
        ("llamacpp", ("llamacpp.n_ctx=64",), 64, "llamacpp.n_ctx"),
        ("openai", ("vllm.max_model_len=64",), 64, "vllm.max_model_len"),  # managed vllm server
    ],
)
def test_config_lengths_beyond_the_context_stop_the_session_before_any_engine(
    hf_cache: Path,
    pytester: pytest.Pytester,
    backend: str,
    settings: tuple[str, ...],
    limit: int,
    source: str,
) -> None:
    pytester.makepyfile(test_bench=BENCH)
    args = ["--llm-model", REPO, "--llm-backend", backend]
    for setting in (*settings, f"workload.input_tokens={limit}"):
        args += ["--llm-set", setting]
    message = usage_error(pytester.runpytest(*args))
    assert message == (
        f"workload.input_tokens: {limit} input + 16 output tokens = {limit + 16} exceed the "
        f"context of {limit} tokens on {backend} ({source}); at most {limit - 16} input tokens fit"
    )


def test_the_embedded_models_context_is_checked_too(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_bench=BENCH)
    message = usage_error(pytester.runpytest("--llm-set", "max_output_tokens=4096"))
    assert message.startswith("max_output_tokens: 32 input + 4096 output tokens = 4128 exceed the")
    assert message.endswith(
        "context of 2048 tokens on pytorch (max_position_embeddings of the embedded model); the "
        "output alone does not fit"
    )


def test_a_dataset_line_too_long_is_named(pytester: pytest.Pytester) -> None:
    lines = [{"prompt": "Tra bee stou."}, {"prompt": "Kai lou."}, {"prompt": "Tra bee. " * 900}]
    pytester.makefile(".jsonl", prompts="\n".join(json.dumps(line) for line in lines))
    pytester.makepyfile(test_bench=BENCH)
    args = [
        "--llm-set",
        "workload.dataset=prompts.jsonl",
        "--llm-set",
        "workload.input_tokens=4000",
    ]
    message = usage_error(pytester.runpytest(*args))
    assert message.startswith("workload.dataset: prompts.jsonl:3: ")
    assert "exceed the context of 2048 tokens on pytorch" in message


def test_a_benchmarks_own_length_beyond_the_context_fails_that_test_alone(
    hf_cache: Path, pytester: pytest.Pytester
) -> None:
    long_line = json.dumps({"prompt": "Tra bee. " * 900})
    pytester.makefile(".jsonl", prompts=json.dumps({"prompt": "Kai lou."}) + "\n" + long_line)
    pytester.makepyfile(
        test_bench="""
        def test_fits(llm_bench):
            llm_bench(num_prompts=2, input_tokens=8, output_tokens=4)

        def test_too_long(llm_bench):
            llm_bench(num_prompts=2, input_tokens=5000, output_tokens=8)

        def test_long_dataset_line(llm_bench):
            llm_bench(num_prompts=2, dataset="prompts.jsonl", input_tokens=3000, output_tokens=4)

        def test_fits_again(llm_bench):
            llm_bench(num_prompts=2, input_tokens=8, output_tokens=4)
        """
    )
    result = pytester.runpytest("--llm-model", f"{REPO}@v1", *QUICK, "--llm-json", "r.json")
    result.assert_outcomes(passed=2, failed=2)
    out = result.stdout.str()
    assert "Traceback" not in out and "def test_too_long" not in out  # one line, no code shown
    assert (
        "test_bench.py::test_too_long[pytorch]: llm_bench(num_prompts=2, input_tokens=5000, "
        "output_tokens=8): 5000 input + 8 output tokens = 5008 exceed the context of 2048 tokens "
        "on pytorch (max_position_embeddings in config.json); at most 2040 input tokens fit\n"
    ) in out
    assert (
        "test_bench.py::test_long_dataset_line[pytorch]: llm_bench(num_prompts=2, "
        "dataset='prompts.jsonl', input_tokens=3000, output_tokens=4): prompts.jsonl:2: 3000 "
        "input + 4 output tokens = 3004 exceed the context of 2048 tokens on pytorch"
    ) in out
    data = json.loads((pytester.path / "r.json").read_text())
    assert [r["test_id"].split("::")[-1] for r in data["results"]] == [
        "test_fits[pytorch]",
        "test_fits_again[pytorch]",
    ]


def test_hf_home_chooses_the_cache(hf_cache: Path, pytester: pytest.Pytester) -> None:
    """The environment variables as users set them, read by huggingface_hub at its import in a
    fresh process: HF_HOME (its hub/ folder), with HF_HUB_CACHE unset."""
    home = pytester.path / "hf-home"
    shutil.copytree(hf_cache, home / "hub", symlinks=True)
    pytester.makepyfile(
        test_where="""
        from pytest_llmbench.plugin import SESSION_KEY

        def test_where(request, llm_backend_name):
            model = request.config.stash[SESSION_KEY].model
            print("RESOLVED", model.commit, model.directory)
        """
    )
    pytester._monkeypatch.delenv("HF_HUB_CACHE")  # type: ignore[attr-defined]
    pytester._monkeypatch.setenv("HF_HOME", str(home))  # type: ignore[attr-defined]
    result = pytester.runpytest_subprocess("--llm-model", f"{REPO}@v1", "-s")
    result.assert_outcomes(passed=1)
    snapshot = home / "hub" / "models--llmbench--tiny-llama" / "snapshots" / V1
    assert f"RESOLVED {V1} {snapshot}\n" in result.stdout.str()
