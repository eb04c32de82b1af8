"""vLLM (its CPU build) fed a Hub snapshot by id: one real session, the engine in its own process.

One engine start for two tests (a start takes minutes on a small CPU): the model runs by id, and
a prompt beyond ``vllm.max_model_len`` fails its test in one line before vLLM is asked."""

from __future__ import annotations

import importlib.util
import json
import textwrap
from pathlib import Path

import pytest

from tests.models.conftest import MAIN, REPO

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("vllm") is None,
    reason="vllm is not installed: pip install pytest-llmbench[vllm]",
)


def test_vllm_by_id_and_a_prompt_beyond_max_model_len(
    hf_cache: Path, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pytest_llmbench.workload.tinymodel import CACHE_ENV, cache_root

    monkeypatch.setenv(CACHE_ENV, str(cache_root()))
    pytester.makepyfile(
        test_bench=textwrap.dedent(
            """
            def test_fits(llm_bench):
                llm_bench(num_prompts=2, input_tokens=8, output_tokens=4)

            def test_too_long(llm_bench):
                llm_bench(num_prompts=1, input_tokens=600, output_tokens=4)
            """
        )
    )
    args = ["--llm-backend", "vllm", "--llm-model", REPO, "--llm-json", "r.json"]
    args += ["--llm-set", "vllm.max_model_len=512", "--llm-set", "vllm.enforce_eager=true"]
    result = pytester.runpytest(*args, "--llm-repeat", "1", "--llm-warmup", "0")
    result.assert_outcomes(passed=1, failed=1)
    assert (
        "test_bench.py::test_too_long[vllm]: llm_bench(num_prompts=1, input_tokens=600, "
        "output_tokens=4): 600 input + 4 output tokens = 604 exceed the context of 512 tokens on "
        "vllm (vllm.max_model_len); at most 508 input tokens fit\n"
    ) in result.stdout.str()
    (r,) = json.loads((pytester.path / "r.json").read_text())["results"]
    assert (r["model"], r["model_source"]["commit"]) == (REPO, MAIN)
    assert r["model_source"]["path"].endswith(f"/snapshots/{MAIN}")
    assert r["model_source"]["context"]["tokens"] == 1024  # the model's; vLLM's own is lower
