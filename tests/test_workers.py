"""xdist workers get disjoint GPU slices; sessions under -n give the same results as without."""

from __future__ import annotations

import json

import pytest

from pytest_llmbench.errors import ConfigError
from pytest_llmbench.workers import check_workers, pin_worker, worker_index
from tests.conftest import ECHO_BACKEND_CONFTEST


def test_each_worker_gets_its_own_slice() -> None:
    slices = []
    for n in range(4):
        env: dict[str, str] = {}
        slices.append(pin_worker(env, f"gw{n}", 2, count_devices=8))
        assert env["CUDA_VISIBLE_DEVICES"] == ",".join(slices[-1])
    assert slices == [["0", "1"], ["2", "3"], ["4", "5"], ["6", "7"]]


def test_slices_respect_an_existing_visible_list_by_uuid() -> None:
    env = {"CUDA_VISIBLE_DEVICES": "GPU-a,GPU-b,GPU-c"}
    assert pin_worker(env, "gw1", 1, count_devices=8) == ["GPU-b"]
    assert env["CUDA_VISIBLE_DEVICES"] == "GPU-b"


def test_too_many_workers_is_a_clear_error() -> None:
    with pytest.raises(
        ConfigError,
        match="--llm-gpus-per-worker: worker gw2 needs devices 4..5 but only 4 are visible",
    ):
        pin_worker({}, "gw2", 2, count_devices=4)
    with pytest.raises(ValueError):
        worker_index("master")


def test_the_controller_checks_that_every_worker_gets_a_full_slice() -> None:
    check_workers({}, 4, 2, count_devices=8)
    check_workers({"CUDA_VISIBLE_DEVICES": "3,4"}, 2, 1, count_devices=8)
    with pytest.raises(ConfigError, match=r"2 workers x 2 GPUs need 4 devices .* use -n 1 or"):
        check_workers({"CUDA_VISIBLE_DEVICES": "3,4,5"}, 2, 2, count_devices=8)


def test_xdist_session_gathers_every_result(echo_pytester: pytest.Pytester) -> None:
    echo_pytester.makepyfile(
        test_many="""
        import pytest

        @pytest.mark.parametrize("n", range(6))
        def test_many(llm_bench, n):
            llm_bench(num_prompts=1 + n, input_tokens=4, output_tokens=3)
        """
    )
    args = ("--llm-backend", "echo", "--llm-repeat", "1", "--llm-warmup", "0")
    echo_pytester.runpytest_subprocess(*args, "--llm-json", "plain.json").assert_outcomes(passed=7)
    xdist = echo_pytester.runpytest_subprocess(
        *args, "-n", "2", "--dist", "load", "--llm-json", "xdist.json"
    )
    xdist.assert_outcomes(passed=7)

    def ids(name: str) -> list[tuple[str, int]]:
        report = json.loads((echo_pytester.path / name).read_text())
        assert report["complete"] is True
        return sorted((r["test_id"], r["workload"]["num_prompts"]) for r in report["results"])

    assert ids("xdist.json") == ids("plain.json")
    assert len(ids("plain.json")) == 7


PINNED_CONFTEST = ECHO_BACKEND_CONFTEST.replace(
    'return EngineInfo("echo", "1.0", self.spec.model_path, "cpu")',
    "import os\n"
    '        return EngineInfo("echo", "1.0", self.spec.model_path, "cpu", details={\n'
    '            "worker": os.environ.get("PYTEST_XDIST_WORKER", "none"),\n'
    '            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES", "unset")})',
)


def test_gpus_per_worker_gives_each_xdist_worker_its_own_devices(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Four devices the controller sees (a fake list: no GPU here), two per worker, -n 2."""
    assert PINNED_CONFTEST != ECHO_BACKEND_CONFTEST
    pytester.makeconftest(PINNED_CONFTEST)
    pytester.makepyfile(
        test_many="""
        import pytest

        @pytest.mark.parametrize("n", range(6))
        def test_many(llm_bench, n):
            llm_bench(num_prompts=1, input_tokens=4, output_tokens=2)
        """
    )
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-a,GPU-b,GPU-c,GPU-d")
    args = ["--llm-backend", "echo", "--llm-repeat", "1", "--llm-warmup", "0"]
    args += ["--llm-energy", "none", "--llm-gpus-per-worker", "2", "--llm-json", "r.json"]
    result = pytester.runpytest_subprocess(*args, "-n", "2", "--dist", "load")
    result.assert_outcomes(passed=6)
    results = json.loads((pytester.path / "r.json").read_text())["results"]
    seen = {
        (r["engine_details"]["worker"], r["engine_details"]["cuda_visible_devices"])
        for r in results
    }
    assert seen == {("gw0", "GPU-a,GPU-b"), ("gw1", "GPU-c,GPU-d")}

    too_many = pytester.runpytest_subprocess(*args, "-n", "3")
    assert too_many.ret == pytest.ExitCode.USAGE_ERROR
    assert [line for line in too_many.stderr.lines if line.strip()] == [
        "ERROR: --llm-gpus-per-worker: 3 workers x 2 GPUs need 6 devices but only 4 are visible "
        "(GPU-a,GPU-b,GPU-c,GPU-d); use -n 2 or fewer"
    ]
