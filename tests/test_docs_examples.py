"""The Python examples in README.md and docs/writing-benchmarks.md run as printed.

Every ```python block that defines a test is written to a test file and run by the plugin on an
echo backend that, unlike the shared one, also accepts timed arrivals, so that the worked
example's closed-loop half runs rather than skips. Energy is off (``--llm-energy none``), the
case the examples must survive: a machine without a meter.
"""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest

from tests.conftest import ECHO_BACKEND_CONFTEST

ROOT = Path(__file__).resolve().parent.parent
DOCS = ("README.md", "docs/writing-benchmarks.md")

TIMED_ECHO = textwrap.dedent(
    """
    import asyncio
    from pytest_llmbench.backends.base import Capabilities
    from pytest_llmbench.workload.traffic import run_schedule

    async def _one(backend, request):
        return backend.generate([request])[0]

    def _serve(self, requests, schedule):
        if schedule.offline:
            return self.generate(requests)
        return asyncio.run(run_schedule(schedule, requests, lambda r: _one(self, r)))

    EchoBackend.capabilities = Capabilities(streaming=True, timed_arrivals=True)
    EchoBackend.serve = _serve
    """
)


def examples(doc: str) -> list[str]:
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / doc).read_text(), re.DOTALL)
    return [b for b in blocks if re.search(r"^def test_", b, re.MULTILINE)]


@pytest.mark.parametrize("doc", DOCS)
def test_examples_run_as_printed(pytester: pytest.Pytester, doc: str) -> None:
    blocks = examples(doc)
    assert blocks, f"{doc} has no runnable example"
    pytester.makeconftest(ECHO_BACKEND_CONFTEST + TIMED_ECHO)
    for i, block in enumerate(blocks):
        pytester.makepyfile(**{f"test_example_{i}": block})
    tests = sum(len(re.findall(r"^def test_", b, re.MULTILINE)) for b in blocks)
    result = pytester.runpytest_inprocess(
        "--llm-backend", "echo", "--llm-repeat", "2", "--llm-warmup", "0",
        "--llm-energy", "none", "-rs", "--llm-json", "r.json",
    )  # fmt: skip
    skipped = result.stdout.str().count("energy unavailable: energy measurement is off")
    # Only energy.require() may skip, and only because energy is off here.
    result.assert_outcomes(passed=tests - skipped, skipped=skipped)
    ids = [r["test_id"] for r in json.loads((pytester.path / "r.json").read_text())["results"]]
    for label in re.findall(r'label="([^"]+)"', "".join(blocks)):
        assert any(i.endswith(f"::{label}") for i in ids), (label, ids)  # nothing skipped early
