"""Engines that cannot share a process (SGLang, TensorRT-LLM, vLLM) run in turn in one session.

Two ``own_process`` backends, registered through our hook the way a third-party plugin would,
each insist in ``start()`` that they are alone in a process that is not pytest's: a module global
and an environment marker that a second engine in the same process would find already set.
"""

from __future__ import annotations

import importlib.util
import json
import textwrap

import pytest

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("pytest_llmbench.backends.host") is None,
    reason="waits for backends/host.py (HostedBackend) on main",
)

ENGINES = textwrap.dedent(
    """
    import json, os, time
    from pathlib import Path
    from pytest_llmbench.backends.base import Backend, Capabilities, Completion, EngineInfo

    _ENGINE_HERE = None  # what a second engine in this process would find

    class Exclusive(Backend):
        extra = "none"
        capabilities = Capabilities(own_process=True, streaming=True)

        @classmethod
        def check_available(cls):
            return None

        def start(self):
            global _ENGINE_HERE
            assert os.getpid() != int(os.environ["ISOLATION_PYTEST_PID"]), "inside pytest"
            assert _ENGINE_HERE is None, f"{_ENGINE_HERE} already lives in this process"
            assert "ISOLATION_ENGINE" not in os.environ, os.environ.get("ISOLATION_ENGINE")
            _ENGINE_HERE = os.environ["ISOLATION_ENGINE"] = self.name
            log = Path(os.environ["ISOLATION_LOG"])
            with log.open("a") as f:
                f.write(json.dumps({"engine": self.name, "pid": os.getpid()}) + "\\n")

        def generate(self, requests):
            out = []
            for r in requests:
                t0 = time.perf_counter()
                times = tuple(time.perf_counter() for _ in range(r.max_output_tokens))
                out.append(Completion(r.request_id, r.input_tokens, r.max_output_tokens, t0,
                                      times[-1], times[0], times))
            return out

        def info(self):
            return EngineInfo(self.name, "1", self.spec.model_path, "cpu",
                              details={"pid": str(os.getpid())})

    class Alpha(Exclusive):
        name = "alpha"

    class Beta(Exclusive):
        name = "beta"
    """
)

CONFTEST = textwrap.dedent(
    """
    import os
    os.environ["ISOLATION_PYTEST_PID"] = str(os.getpid())
    from isolated_engines import Alpha, Beta

    def pytest_llmbench_register_backends():
        return {"alpha": Alpha, "beta": Beta}
    """
)

BENCH = textwrap.dedent(
    """
    def test_alone(llm_bench):
        result = llm_bench(num_prompts=2, input_tokens=4, output_tokens=3)
        assert result.repetitions[0].output_tokens == 6 * result.repetitions[0].iterations
        assert llm_bench.engine.info.details["pid"] != str(__import__("os").getpid())
    """
)


def test_two_exclusive_engines_run_in_turn_each_in_its_own_process(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = pytester.path / "engines.jsonl"
    monkeypatch.setenv("ISOLATION_LOG", str(log))
    monkeypatch.delenv("ISOLATION_ENGINE", raising=False)
    pytester.makepyfile(isolated_engines=ENGINES, test_bench=BENCH)
    pytester.makeconftest(CONFTEST)

    result = pytester.runpytest_subprocess(
        "--llm-backend",
        "alpha,beta",
        "--llm-repeat",
        "1",
        "--llm-warmup",
        "0",
        "-p",
        "no:cacheprovider",
    )

    result.assert_outcomes(passed=2)
    started = [json.loads(line) for line in log.read_text().splitlines()]
    assert [s["engine"] for s in started] == ["alpha", "beta"]  # in turn, each started once
    assert len({s["pid"] for s in started}) == 2
