"""Harness fidelity rounds (``pytest_llmbench.fidelity``) on a hosted fake engine."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from pytest_llmbench import compat
from pytest_llmbench.backends.base import BackendSpec
from pytest_llmbench.backends.host import HostedBackend
from pytest_llmbench.config.schema import ExperimentConfig
from pytest_llmbench.fidelity import check_fidelity, measure_fidelity
from pytest_llmbench.workload.prompts import Workload
from pytest_llmbench.workload.tinymodel import ensure_tiny_model

FAKE = "tests.backends.fake_backend:FakeBackend"
WORKLOAD = Workload("overhead", num_prompts=3, input_tokens=8, output_tokens=4)


@pytest.fixture(scope="module")
def handle():  # type: ignore[no-untyped-def]
    config = ExperimentConfig()
    spec = BackendSpec(str(ensure_tiny_model()), config, compat.translate(config, "pytorch"), "cpu")
    host = HostedBackend(FAKE, spec)
    host.start()
    yield SimpleNamespace(name="fake", backend=host, spec=spec)
    host.close()


def test_rounds_pair_every_path_with_the_direct_call(handle) -> None:  # type: ignore[no-untyped-def]
    summary = measure_fidelity(WORKLOAD, handle, 4)
    assert summary["engine"] == "fake" and summary["rounds"] == 4
    assert summary["output_tokens_per_run"] == 12
    assert len(summary["round_backend_ratios"]) == len(summary["round_hosted_ratios"]) == 4
    assert summary["direct_tok_s"] > 0 and summary["hosted_generate_tok_s"] > 0
    for path in ("backend", "hosted"):  # the bound is never below the median it bounds
        assert summary[f"{path}_ratio_upper_bound"] >= summary[f"{path}_ratio"]


def test_rounds_must_be_a_multiple_of_four(handle) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="multiple of 4, not 6"):
        measure_fidelity(WORKLOAD, handle, 6)


def test_an_engine_in_the_pytest_process_has_no_direct_path_to_time() -> None:
    local = SimpleNamespace(name="pytorch", backend=object(), spec=None)
    with pytest.raises(TypeError, match="pytorch does not run in its own process"):
        measure_fidelity(WORKLOAD, local, 4)  # type: ignore[arg-type]


def summary(backend: float, hosted: float, bound: float) -> dict[str, float]:
    return {
        "backend_ratio": backend,
        "hosted_ratio": hosted,
        "backend_ratio_upper_bound": bound,
        "hosted_ratio_upper_bound": bound,
    }


def test_check_fails_only_beyond_the_spread_unless_strict() -> None:
    check_fidelity(summary(0.85, 0.85, 0.95), 0.9, strict=False)  # a busy machine: no claim
    with pytest.raises(AssertionError, match="backend path's median ratio is <= 0.9"):
        check_fidelity(summary(0.85, 0.95, 0.95), 0.9, strict=True)
    with pytest.raises(AssertionError, match="hosted path is slower than 0.9 x direct"):
        check_fidelity({**summary(0.95, 0.8, 0.95), "hosted_ratio_upper_bound": 0.88}, 0.9, False)
