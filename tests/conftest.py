"""Shared pieces of the plugin's own tests."""

from __future__ import annotations

import importlib.util
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.checkout_writes import snapshot, written_since


def pytest_configure(config: pytest.Config) -> None:
    """No timing bound in a unit test, hypothesis's included: its default 200 ms deadline per
    example and its too-slow health check fail examples that a busy CI runner merely delays."""
    if importlib.util.find_spec("hypothesis") is None or config.getoption(
        "hypothesis_profile", None
    ):
        return
    from hypothesis import HealthCheck, settings

    settings.register_profile(
        "llmbench-busy-machine", deadline=None, suppress_health_check=[HealthCheck.too_slow]
    )
    settings.load_profile("llmbench-busy-machine")


@pytest.fixture(scope="session", autouse=True)
def _tests_write_only_under_tmp(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fails the session (an error at the last teardown) when a test wrote into the checkout's
    out/ folder, where users keep their reports, instead of under its tmp path."""
    root = Path(__file__).resolve().parents[1]
    before = snapshot(root)
    yield
    own = [request.config.getoption(o, None) or "" for o in ("llm_json", "llm_html")]
    written = written_since(before, snapshot(root), root, own)
    assert not written, f"tests wrote into the checkout: {', '.join(written)}; use tmp_path"


@pytest.fixture(scope="session", autouse=True)
def _import_heavy_modules_once() -> None:
    """pytester's in-process runs drop modules first imported inside them, and numpy- or
    torch-based libraries break when imported twice: import them once, before any inner session.
    (A fixture, not a module-level import, so that ``pytest --help`` here stays light.) Sessions
    that run torch models use ``runpytest_subprocess`` instead."""
    for name in ("numpy", "torch", "transformers"):
        if importlib.util.find_spec(name) is None:
            return
        __import__(name)
    # Loading the embedded model's tokenizer pulls in the rest lazily; do it here once as well.
    from pytest_llmbench.workload.tinymodel import ensure_tiny_model
    from pytest_llmbench.workload.tokenizer import load_tokenizer

    load_tokenizer(str(ensure_tiny_model()))


# A third-party backend, registered through our hook the way a user's plugin would: pure Python,
# so plugin behaviour is tested in-process without loading torch. It echoes token ids.
ECHO_BACKEND_CONFTEST = textwrap.dedent(
    """
    import time
    from pytest_llmbench.backends.base import Backend, Capabilities, Completion, EngineInfo

    class EchoBackend(Backend):
        name = "echo"
        extra = "echo"
        capabilities = Capabilities(streaming=True)
        started = 0

        @classmethod
        def check_available(cls):
            return None

        def start(self):
            type(self).started += 1

        def generate(self, requests):
            out = []
            for r in requests:
                t0 = time.perf_counter()
                times = tuple(time.perf_counter() for _ in range(r.max_output_tokens))
                out.append(Completion(r.request_id, r.input_tokens, r.max_output_tokens, t0,
                                      times[-1], times[0], times))
            return out

        def info(self):
            return EngineInfo("echo", "1.0", self.spec.model_path, "cpu")

    class BrokenBackend(EchoBackend):
        name = "broken"

        @classmethod
        def check_available(cls):
            return "broken is not installed: pip install pytest-llmbench[broken]"

    def pytest_llmbench_register_backends():
        return {"echo": EchoBackend, "broken": BrokenBackend}
    """
)


@pytest.fixture
def echo_pytester(pytester: pytest.Pytester) -> pytest.Pytester:
    """A pytester project with the echo backend registered and a tiny benchmark."""
    pytester.makeconftest(ECHO_BACKEND_CONFTEST)
    pytester.makepyfile(
        test_bench=textwrap.dedent(
            """
            def test_throughput(llm_bench):
                result = llm_bench(num_prompts=4, input_tokens=8, output_tokens=5)
                assert result.repetitions[0].output_tokens == 20 * result.repetitions[0].iterations
            """
        )
    )
    return pytester
