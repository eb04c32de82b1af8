"""SGLang installs that cannot run, and an SGLang engine dying mid-run, seen by a user's session.

The ``sglang`` package is an installed stand-in (``tests/engines/sglang_standin.py``) on the
session's ``sys.path``, which the engine's spawned process inherits; NVML is faked so that the
session resolves a CUDA device (SGLang refuses the CPU before importing anything).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from packaging.version import Version

from pytest_llmbench.backends.sglang.install import installed_version
from tests.energy.fake_nvml import FakeGpu, FakeNvml, uuid
from tests.engines.sglang_standin import write_metadata, write_sglang

from .helpers import result_ids, valid_report, wait_gone

QUICK = ("--llm-repeat", "1", "--llm-warmup", "0", "--llm-energy", "none")
BENCH = """
def test_bench(llm_bench):
    llm_bench(num_prompts=2, input_tokens=4, output_tokens=3)
"""
TORCH = installed_version("torch")


@pytest.fixture
def site(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder first on sys.path, where a test writes its ``sglang``; a fake NVML with one GPU;
    the stand-in engine's pid files in ``$SGLANG_STANDIN_DIR``."""
    folder = pytester.path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml([FakeGpu(uuid(0))]))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    standin = pytester.path / "standin"
    standin.mkdir()
    monkeypatch.setenv("SGLANG_STANDIN_DIR", str(standin))
    return folder


def compatible(site: Path, **kwargs: str) -> None:
    """sglang 0.5.16 with its torch and kernel pins met by what is installed here."""
    torch = (f"torch=={Version(TORCH).base_version}",) if TORCH else ()
    write_sglang(site, requires=(*torch, "sglang-kernel==0.4.5"), **kwargs)
    write_metadata(site, "sglang-kernel", "0.4.5")


def skip_lines(result: pytest.RunResult) -> list[str]:
    return [line for line in result.stdout.lines if line.startswith("SKIPPED [")]


def test_the_wrong_torch_skips_with_both_versions_and_no_traceback(
    pytester: pytest.Pytester, site: Path
) -> None:
    write_sglang(site, requires=("torch==2.11.0",))
    pytester.makepyfile(test_bench=BENCH)
    result = pytester.runpytest_inprocess("--llm-backend", "sglang", "-rs", *QUICK)
    result.assert_outcomes(skipped=1)
    found = f"but torch {TORCH} is installed" if TORCH else "which is not installed: pip install"
    (line,) = skip_lines(result)
    assert f"sglang 0.5.16 needs torch==2.11.0, {found}" in line
    assert "Traceback" not in result.stdout.str()


def test_a_missing_kernel_package_skips_naming_it(pytester: pytest.Pytester, site: Path) -> None:
    torch = (f"torch=={Version(TORCH).base_version}",) if TORCH else ()
    write_sglang(site, requires=(*torch, "sglang-kernel==0.4.5"))
    pytester.makepyfile(test_bench=BENCH)
    result = pytester.runpytest_inprocess("--llm-backend", "sglang", "-rs", *QUICK)
    result.assert_outcomes(skipped=1)
    (line,) = skip_lines(result)
    assert line.endswith(
        "sglang 0.5.16 needs sglang-kernel==0.4.5, which is not installed: "
        "pip install 'sglang-kernel==0.4.5'"
    )


def test_an_engine_that_cannot_be_imported_skips_with_one_line(
    pytester: pytest.Pytester, site: Path
) -> None:
    """The import happens in the engine's own process; its failure comes back as the skip."""
    compatible(site, engine="raise ImportError('libcudart.so.12: cannot open shared object file')")
    pytester.makepyfile(test_bench=BENCH)
    result = pytester.runpytest_inprocess("--llm-backend", "sglang", "-rs", *QUICK)
    result.assert_outcomes(skipped=1)
    (line,) = skip_lines(result)
    assert line.endswith(
        "sglang 0.5.16 is installed but cannot be imported: "
        "ImportError: libcudart.so.12: cannot open shared object file"
    )
    assert "Traceback" not in result.stdout.str()


def test_an_engine_killed_mid_run_fails_that_test_and_the_session_goes_on(
    pytester: pytest.Pytester, site: Path
) -> None:
    compatible(site)
    standin = Path(str(site.parent / "standin"))
    pytester.makepyfile(
        test_bench="""
        import os
        from pathlib import Path

        def test_before(llm_bench):
            llm_bench(num_prompts=2, input_tokens=4, output_tokens=3)

        def test_killed(llm_bench):
            (Path(os.environ["SGLANG_STANDIN_DIR"]) / "next").write_text("sigkill")
            llm_bench(num_prompts=2, input_tokens=4, output_tokens=3)

        def test_after(llm_bench):
            llm_bench(num_prompts=2, input_tokens=4, output_tokens=3)
        """
    )
    result = pytester.runpytest_inprocess("--llm-backend", "sglang", *QUICK, "--llm-json", "r.json")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*test_killed*", "*sglang engine process was killed by SIGKILL*"])
    report = valid_report(pytester.path / "r.json")
    assert result_ids(report) == ["test_before", "test_after"]
    engines = (standin / "engines").read_text().split()
    assert len(engines) == 2 and engines[0] != engines[1]  # started again after the kill
    schedulers = {int(pid) for pid in (standin / "schedulers").read_text().split()}
    assert len(schedulers) == 2 and wait_gone(schedulers) == set()  # the killed one's too
