"""Agreement, perplexity and their gates as a user meets them: real sessions (pytester).

Two pure-Python backends registered through our hook answer the probe with token ids (through the
Backend protocol's default ``greedy_token_ids``, i.e. ``generate``); ``left`` scores text with a
constant log-probability, so its perplexity is known exactly; ``right`` cannot score text.
Environment variables change what they answer between a baseline run and a current run.
"""

from __future__ import annotations

import json
import math
import textwrap

import pytest

from pytest_llmbench.gate import EXIT_REGRESSION, EXIT_UNMEASURED

QUALITY_CONFTEST = textwrap.dedent(
    """
    import math, os, time
    from pytest_llmbench.backends.base import Backend, Completion, EngineInfo

    class Left(Backend):
        name = "left"
        extra = "left"

        @classmethod
        def check_available(cls):
            return None

        def start(self):
            pass

        def tokens(self, request):
            first = request.prompt_token_ids[0]
            return tuple((first + k) % 97 for k in range(request.max_output_tokens))

        def generate(self, requests):
            out = []
            for r in requests:
                t0 = time.perf_counter()
                ids = self.tokens(r)
                out.append(Completion(r.request_id, r.input_tokens, len(ids), t0,
                                      time.perf_counter(), output_token_ids=ids))
            return out

        def token_logprobs(self, prompt_ids, response_ids):
            vocab = float(os.environ.get("QUALITY_PPL", "64"))
            return [math.log(1 / vocab)] * len(response_ids)

        def info(self):
            return EngineInfo(self.name, "1.0", self.spec.model_path, "cpu",
                              details={"dtype": "float32"})

    class Right(Left):
        name = "right"

        def tokens(self, request):
            ids = list(super().tokens(request))
            # QUALITY_DIVERGE=N: the third probe prompt parts from left's at token N
            at = os.environ.get("QUALITY_DIVERGE")
            if at is not None and request.request_id == "probe-2":
                ids[int(at)] += 1
            return tuple(ids)

        def token_logprobs(self, prompt_ids, response_ids):
            return Backend.token_logprobs(self, prompt_ids, response_ids)

        def info(self):
            return EngineInfo(self.name, "1.0", self.spec.model_path, "cpu",
                              details={"dtype": "bfloat16"})

    def pytest_llmbench_register_backends():
        return {"left": Left, "right": Right}
    """
)
BENCH = textwrap.dedent(
    """
    def test_bench(llm_bench):
        llm_bench(num_prompts=2, input_tokens=4, output_tokens=3)
    """
)
RUN = ("--llm-repeat", "2", "--llm-warmup", "0")


@pytest.fixture
def quality_pytester(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(QUALITY_CONFTEST)
    pytester.makepyfile(test_bench=BENCH)
    return pytester


def _report(pytester: pytest.Pytester, name: str) -> dict:
    return json.loads((pytester.path / name).read_text())


def test_agreement_section_compares_the_pair_in_json_and_terminal(
    quality_pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    import jsonschema

    from pytest_llmbench.results import load_schema

    monkeypatch.setenv("QUALITY_DIVERGE", "8")
    result = quality_pytester.runpytest("--llm-backend", "left,right", "--llm-json", "r.json", *RUN)
    result.assert_outcomes(passed=2)
    data = _report(quality_pytester, "r.json")
    jsonschema.validate(data, load_schema())
    (entry,) = data["agreement"]
    assert entry["backends"] == ["left", "right"]
    assert entry["dtypes"] == {"left": "float32", "right": "bfloat16"}
    assert entry["token_agreement"] == pytest.approx((3 + 8 / 32) / 4)
    assert entry["first_divergence"]["prompt"] == 2
    assert entry["first_divergence"]["position"] == 8
    a, b = entry["first_divergence"]["tokens"]
    assert b == a + 1
    out = result.stdout.str()
    assert "agreement between backends (comparison of pairs" in out and "not pooled" in out
    result.stdout.fnmatch_lines(
        ["left vs right * float32 / bfloat16 * 0.812 * prompt 2, token 8: *"]
    )


def test_every_result_carries_its_perplexity_or_why_not(
    quality_pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QUALITY_PPL", "50")
    result = quality_pytester.runpytest("--llm-backend", "left,right", "--llm-json", "r.json", *RUN)
    result.assert_outcomes(passed=2)
    by_backend = {r["backend"]: r for r in _report(quality_pytester, "r.json")["results"]}
    left = by_backend["left"]["quality"]
    assert math.isclose(left["perplexity"], 50.0) and left["unavailable"] is None
    assert by_backend["left"]["aggregate"]["perplexity"] == pytest.approx(50.0)
    right = by_backend["right"]["quality"]
    assert right["perplexity"] is None
    assert right["unavailable"] == "right does not return log-probabilities of a given text"
    out = result.stdout.str()
    assert "quality: perplexity 50 on reference-v1" in out
    assert (
        "quality: perplexity unavailable (right does not return log-probabilities of a given "
        "text)" in out
    )


def test_one_backend_has_no_agreement_section(quality_pytester: pytest.Pytester) -> None:
    result = quality_pytester.runpytest("--llm-backend", "left", "--llm-json", "r.json", *RUN)
    result.assert_outcomes(passed=1)
    assert "agreement" not in _report(quality_pytester, "r.json")
    assert "agreement between backends" not in result.stdout.str()


def _baseline(pytester: pytest.Pytester, backends: str = "left,right") -> None:
    result = pytester.runpytest("--llm-backend", backends, "--llm-json", "base.json", *RUN)
    assert result.ret == 0


def test_token_agreement_gate_fails_on_a_drop_beyond_the_rule(
    quality_pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    _baseline(quality_pytester)  # identical probes: agreement 1.0
    gate = ("--llm-compare", "base.json", "--llm-fail-on", "token_agreement:-0.05")
    same = quality_pytester.runpytest("--llm-backend", "left,right", *gate, *RUN)
    assert same.ret == 0, same.stdout.str()
    assert "token_agreement" in same.stdout.str() and "left~right" in same.stdout.str()

    monkeypatch.setenv("QUALITY_DIVERGE", "24")  # 1 - (1 - 24/32) / 4 = 0.9375: -0.0625
    worse = quality_pytester.runpytest("--llm-backend", "left,right", *gate, *RUN)
    assert worse.ret == EXIT_REGRESSION, worse.stdout.str()
    worse.stdout.fnmatch_lines(["*regression: agreement token_agreement -0.0625*"])

    monkeypatch.setenv("QUALITY_DIVERGE", "28")  # 0.96875: -0.031, inside the rule
    slight = quality_pytester.runpytest("--llm-backend", "left,right", *gate, *RUN)
    assert slight.ret == 0, slight.stdout.str()


def test_token_agreement_gate_needs_a_pair_in_the_run(quality_pytester: pytest.Pytester) -> None:
    _baseline(quality_pytester)
    gate = ("--llm-compare", "base.json", "--llm-fail-on", "token_agreement:-0.05")
    alone = quality_pytester.runpytest("--llm-backend", "left", *gate, *RUN)
    assert alone.ret == EXIT_UNMEASURED, alone.stdout.str()
    assert "needs two or more --llm-backend" in alone.stdout.str()


def test_perplexity_gate_is_exact_on_identical_history_and_flags_a_change(
    quality_pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    _baseline(quality_pytester, "left")  # one history run: deterministic metrics gate at once
    gate = ("--llm-compare", "base.json", "--llm-fail-on", "perplexity:+2%")
    same = quality_pytester.runpytest("--llm-backend", "left", *gate, *RUN)
    assert same.ret == 0, same.stdout.str()
    same.stdout.fnmatch_lines(["*perplexity*64*64*+0.0%*ok*"])

    monkeypatch.setenv("QUALITY_PPL", "66")  # +3.1%
    worse = quality_pytester.runpytest("--llm-backend", "left", *gate, *RUN)
    assert worse.ret == EXIT_REGRESSION, worse.stdout.str()
    worse.stdout.fnmatch_lines(
        ["*regression: test_bench.py::test_bench[[]left[]] perplexity +3.1%*"]
    )

    monkeypatch.setenv("QUALITY_PPL", "65")  # +1.6%: within the rule
    slight = quality_pytester.runpytest("--llm-backend", "left", *gate, *RUN)
    assert slight.ret == 0, slight.stdout.str()


def test_agreement_under_xdist_comes_from_the_workers(quality_pytester: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    quality_pytester.makepyfile(
        test_more="""
        import pytest

        @pytest.mark.parametrize("n", range(3))
        def test_more(llm_bench, n):
            llm_bench(num_prompts=1 + n, input_tokens=4, output_tokens=3)
        """
    )
    result = quality_pytester.runpytest_subprocess(
        "--llm-backend", "left,right", "-n", "2", "--llm-json", "x.json", *RUN
    )
    result.assert_outcomes(passed=8)
    (entry,) = _report(quality_pytester, "x.json")["agreement"]
    assert entry["backends"] == ["left", "right"] and entry["token_agreement"] == 1.0
    assert "agreement between backends" in result.stdout.str()
