"""xdist workers get disjoint GPU slices; sessions under -n give the same results as without."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pytest

from pytest_llmbench.errors import ConfigError
from pytest_llmbench.workers import (
    auto_workers,
    check_workers,
    early_gpus_per_worker,
    pin_early,
    pin_worker,
    settle_workers,
    visible_devices,
    worker_index,
)
from tests.conftest import ECHO_BACKEND_CONFTEST
from tests.energy.fake_nvml import uuid


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


@pytest.mark.parametrize(
    ("value", "count", "expected"),
    [
        (None, 3, ["0", "1", "2"]),
        ("", 3, []),
        ("2,0", 3, ["2", "0"]),
        ("0,-1,1", 3, ["0"]),  # CUDA stops at the first invalid entry
        ("1,7,2", 4, ["1"]),  # an index NVML does not list hides the rest
        ("1,1,2", 4, ["1"]),  # so does a repeat
        ("GPU-a,MIG-b,0", 1, ["GPU-a", "MIG-b", "0"]),
        ("0,1", 0, ["0", "1"]),  # no NVML here: the list cannot be checked, it is kept
    ],
)
def test_visible_devices_are_read_the_way_cuda_reads_them(
    value: str | None, count: int, expected: list[str]
) -> None:
    env = {} if value is None else {"CUDA_VISIBLE_DEVICES": value}
    assert visible_devices(env, count) == expected


def test_a_slice_of_nvml_indices_puts_cuda_in_nvml_order_unless_the_user_chose() -> None:
    env: dict[str, str] = {}
    assert pin_worker(env, "gw1", 1, count_devices=2) == ["1"]
    assert env == {"CUDA_VISIBLE_DEVICES": "1", "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
    env = {"CUDA_DEVICE_ORDER": "FASTEST_FIRST"}
    pin_worker(env, "gw0", 1, count_devices=2)
    assert env["CUDA_DEVICE_ORDER"] == "FASTEST_FIRST"
    env = {"CUDA_VISIBLE_DEVICES": "3,2"}  # the user's list: its order is the user's
    pin_worker(env, "gw1", 1, count_devices=4)
    assert env == {"CUDA_VISIBLE_DEVICES": "2"}


def test_an_early_pin_is_undone_exactly() -> None:
    env = {"PYTEST_XDIST_WORKER": "gw1", "CUDA_VISIBLE_DEVICES": "0,1,2,3"}
    pin = pin_early(env, 2, count_devices=4)
    assert pin is not None and pin.devices == ("2", "3") and pin.worker_id == "gw1"
    assert env["CUDA_VISIBLE_DEVICES"] == "2,3"
    pin.undo(env)
    assert env == {"PYTEST_XDIST_WORKER": "gw1", "CUDA_VISIBLE_DEVICES": "0,1,2,3"}
    env = {"PYTEST_XDIST_WORKER": "gw1"}
    pin = pin_early(env, 1, count_devices=2)
    assert pin is not None and env["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"
    pin.undo(env)
    assert env == {"PYTEST_XDIST_WORKER": "gw1"}
    assert pin_early({}, 1, count_devices=2) is None  # not a worker
    too_far = {"PYTEST_XDIST_WORKER": "gw5"}
    assert pin_early(too_far, 1, count_devices=2) is None  # configure reports it
    assert too_far == {"PYTEST_XDIST_WORKER": "gw5"}


def test_a_session_started_inside_a_worker_gets_its_devices_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """PYTEST_XDIST_WORKER is inherited by a pytest started from a worker: pinned early, it
    turns out at configure to be a controller, whose workers must share the whole list."""
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw1")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    early = pin_early(os.environ, 1, count_devices=2)
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "1"
    assert settle_workers(early, None, 1, 2) == 1  # two workers of one GPU each: they fit
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "0,1"


def test_a_worker_keeps_its_early_slice_and_corrects_a_wrong_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw1")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    early = pin_early(os.environ, 1, count_devices=2)
    assert settle_workers(early, "gw1", 1, 2) is None
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "1"  # kept, not sliced again
    assert settle_workers(early, "gw0", 1, 2) is None  # (ids disagree: redo from the list)
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "0"


@pytest.mark.parametrize(
    ("cli", "ini", "expected"),
    [(None, "", None), ("2", "", 2), (None, "3", 3), ("1", "4", 1), ("0", "", None)],
)
def test_the_option_is_read_before_pytest_parses_it(
    cli: str | None, ini: str, expected: int | None
) -> None:
    assert early_gpus_per_worker(cli, ini) == expected


@pytest.mark.parametrize("bad", ["two", "-1"])
def test_a_bad_early_option_names_it(bad: str) -> None:
    with pytest.raises(ConfigError, match="^--llm-gpus-per-worker: "):
        early_gpus_per_worker(bad, "")


def test_auto_gives_one_worker_per_full_slice_and_at_least_one() -> None:
    assert auto_workers({}, 2, count_devices=8) == 4
    assert auto_workers({}, 3, count_devices=8) == 2
    assert auto_workers({"CUDA_VISIBLE_DEVICES": "5,6"}, 1, count_devices=8) == 2
    assert auto_workers({}, 1, count_devices=0) == 1  # the controller then says why it fails


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


# -- energy under xdist, against a fake NVML (the hardware boundary) -------------------------------

FAKE_NVML = Path(__file__).parent / "energy" / "fake_nvml.py"

# A stand-in ``pynvml`` for the session's processes (the controller and each worker import it
# from the project directory): two GPUs whose energy counters run all the time, at 50 W and
# 1000 W; the second stands for another job's load beside worker 0's GPU.
PYNVML_TWO_GPUS = textwrap.dedent(
    """
    import time
    from fake_nvml import FakeGpu, FakeNvml, uuid

    WATTS = (50, 1000)

    def _counter(watts):
        return lambda: int(time.monotonic() * watts * 1000)  # millijoules

    _nvml = FakeNvml([FakeGpu(uuid(n), energy_mj=_counter(w)) for n, w in enumerate(WATTS)])

    def __getattr__(name):  # pynvml's functions and constants, from the fake
        return getattr(_nvml, name)
    """
)

CUDA_ECHO_CONFTEST = ECHO_BACKEND_CONFTEST.replace(
    'return EngineInfo("echo", "1.0", self.spec.model_path, "cpu")',
    "import os\n"
    '        return EngineInfo("echo", "1.0", self.spec.model_path, "cuda", cuda_devices=(0,),\n'
    "            details={k: os.environ.get(v, 'unset') for k, v in (\n"
    "                ('worker', 'PYTEST_XDIST_WORKER'),\n"
    "                ('cuda_visible_devices', 'CUDA_VISIBLE_DEVICES'),\n"
    "                ('cuda_device_order', 'CUDA_DEVICE_ORDER'))})",
)


@pytest.fixture
def two_fake_gpus(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A project whose processes see two fake GPUs through NVML, and an echo engine that says
    it computes on CUDA device 0 (its own first visible GPU)."""
    assert CUDA_ECHO_CONFTEST != ECHO_BACKEND_CONFTEST
    pytester.makeconftest(CUDA_ECHO_CONFTEST)
    pytester.makepyfile(fake_nvml=FAKE_NVML.read_text(), pynvml=PYNVML_TWO_GPUS)
    for name in ("CUDA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER", "NCCL_NVLS_ENABLE"):
        monkeypatch.delenv(name, raising=False)
    return pytester


def test_each_workers_energy_window_reads_only_its_own_gpu(two_fake_gpus: pytest.Pytester) -> None:
    """-n 2 --llm-gpus-per-worker 1: worker gw0 measures GPU 0 (50 W) only, while GPU 1's
    counter runs at 1000 W beside it, and gw1 measures GPU 1 only; one report holds both."""
    two_fake_gpus.makepyfile(
        test_many="""
        import pytest

        @pytest.mark.parametrize("n", range(4))
        def test_many(llm_bench, n):
            llm_bench(num_prompts=1, input_tokens=4, output_tokens=2)
        """
    )
    result = two_fake_gpus.runpytest_subprocess(
        *("--llm-backend", "echo", "--llm-repeat", "1", "--llm-warmup", "0"),
        *("--llm-energy", "nvml", "--llm-energy-idle", "0", "--llm-json", "r.json"),
        *("-n", "2", "--dist", "load", "--llm-gpus-per-worker", "1"),
    )
    result.assert_outcomes(passed=4)
    report = json.loads((two_fake_gpus.path / "r.json").read_text())
    assert report["complete"] is True
    by_worker: dict[str, list[dict]] = {}
    for r in report["results"]:
        details = r["engine_details"]
        assert details["cuda_device_order"] == "PCI_BUS_ID"  # the slice holds NVML indices
        by_worker.setdefault(details["worker"], []).append(r)
        expected = {"gw0": "0", "gw1": "1"}[details["worker"]]
        assert details["cuda_visible_devices"] == expected
    assert sorted(by_worker) == ["gw0", "gw1"]  # both workers measured, one merged report
    gpu_of = {"gw0": uuid(0), "gw1": uuid(1)}
    for worker, results in by_worker.items():
        for r in results:
            (repetition,) = r["repetitions"]
            energy = repetition["energy"]
            assert energy["method"] == "nvml-counter"
            assert list(energy["per_device_j"]) == [gpu_of[worker]]  # never the other GPU
            assert [d["uuid"] for d in energy["devices"]] == [gpu_of[worker]]
            assert list(energy["power_trace"]) == [gpu_of[worker]]
            watts = energy["energy_j"] / energy["window_s"]
            # 50 W against 1000 W: reading (or adding) the other GPU would show ~1000 W
            if worker == "gw0":
                assert 25 < watts < 100, watts
            else:
                assert 500 < watts < 2000, watts


def test_a_worker_pins_its_gpus_before_conftest_files_load(
    two_fake_gpus: pytest.Pytester,
) -> None:
    """A conftest that reads CUDA_VISIBLE_DEVICES at import (as one that initialises CUDA would)
    already sees the worker's slice."""
    conftest = two_fake_gpus.path / "conftest.py"
    conftest.write_text(
        'import os\nAT_IMPORT = os.environ.get("CUDA_VISIBLE_DEVICES", "unset")\n'
        + conftest.read_text()
    )
    two_fake_gpus.makepyfile(
        test_seen="""
        import os
        import conftest

        def test_seen():
            worker = os.environ["PYTEST_XDIST_WORKER"]
            assert conftest.AT_IMPORT == {"gw0": "0", "gw1": "1"}[worker]
        """
    )
    result = two_fake_gpus.runpytest_subprocess(
        "--llm-energy", "none", "-n", "2", "--llm-gpus-per-worker", "1"
    )
    result.assert_outcomes(passed=1)


def test_n_auto_starts_one_worker_per_gpu_slice(two_fake_gpus: pytest.Pytester) -> None:
    two_fake_gpus.makepyfile(
        test_workers="""
        import os

        def test_worker_count():
            assert os.environ["PYTEST_XDIST_WORKER_COUNT"] == "2"  # 2 fake GPUs, 1 each
        """
    )
    result = two_fake_gpus.runpytest_subprocess(
        "--llm-energy", "none", "-n", "auto", "--llm-gpus-per-worker", "1"
    )
    result.assert_outcomes(passed=1)


def test_an_engine_wider_than_a_workers_slice_is_one_usage_error(
    two_fake_gpus: pytest.Pytester,
) -> None:
    two_fake_gpus.makepyfile(test_x="def test_x():\n    pass\n")
    result = two_fake_gpus.runpytest_subprocess(
        *("--llm-backend", "vllm", "--llm-set", "vllm.tensor_parallel_size=2"),
        *("-n", "2", "--llm-gpus-per-worker", "1"),
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert [line for line in result.stderr.lines if line.strip()] == [
        "ERROR: vllm.tensor_parallel_size: the vllm engine uses 2 GPUs but each xdist worker "
        "gets 1 (--llm-gpus-per-worker 1); lower it or make more GPUs visible"
    ]


def test_an_engine_wider_than_the_visible_gpus_is_one_usage_error(
    two_fake_gpus: pytest.Pytester,
) -> None:
    two_fake_gpus.makepyfile(test_x="def test_x():\n    pass\n")
    two_fake_gpus.makefile(
        ".yaml", tp4="sharding:\n  strategy: tensor_parallel\n  num_devices: 4\n"
    )
    result = two_fake_gpus.runpytest_subprocess(
        "--llm-backend", "pytorch,sglang", "--llm-config", "tp4.yaml"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert [line for line in result.stderr.lines if line.strip()] == [
        "ERROR: sharding.num_devices: the pytorch engine uses 4 GPUs but only 2 are visible "
        "(CUDA_VISIBLE_DEVICES=unset); lower it or make more GPUs visible"
    ]
