"""The JSON report under faults: a path that cannot be written, a disk that fills up mid-run."""

from __future__ import annotations

import errno
import os
import textwrap

import pytest

from .helpers import result_ids, valid_report

ARGS = ("--llm-backend", "echo", "--llm-repeat", "1", "--llm-warmup", "0", "--llm-energy", "none")


@pytest.mark.parametrize("option", ["--llm-json", "--llm-html"])
@pytest.mark.parametrize(
    ("where", "problem"),
    [
        ("a_file/report.json", "cannot write a_file/report.json: a_file is a file"),
        ("a_folder", "is a directory; give a file name"),
        ("/proc/llmbench/report.json", "cannot write /proc/llmbench/report.json"),
    ],
)
def test_unwritable_report_path_is_one_line_before_anything_runs(
    echo_pytester: pytest.Pytester, option: str, where: str, problem: str
) -> None:
    (echo_pytester.path / "a_file").write_text("not a folder")
    (echo_pytester.path / "a_folder").mkdir()
    echo_pytester.makepyfile(
        test_side_effect="""
        def test_ran(llm_bench, tmp_path_factory):
            raise AssertionError("a benchmark ran although the report cannot be written")
        """
    )
    result = echo_pytester.runpytest_inprocess(*ARGS, option, where)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.stderr.lines if line.strip()]
    assert len(errors) == 1, errors
    assert errors[0].startswith(f"ERROR: {option}: ") and problem in errors[0]
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


DISK = textwrap.dedent(
    """
    import errno, os
    import pytest

    FULL = []  # non-empty: the disk is full
    _real_fsync = os.fsync

    def _fsync(fd):
        if FULL:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return _real_fsync(fd)

    def pytest_configure(config):  # for the whole session, the last report write included
        os.fsync = _fsync

    def pytest_unconfigure(config):
        os.fsync = _real_fsync

    @pytest.fixture
    def disk_full():
        return FULL
    """
)


def test_disk_full_keeps_the_previous_report_and_fails_the_run(
    echo_pytester: pytest.Pytester,
) -> None:
    """The first result is written; then every write fails with ENOSPC (injected at fsync)."""
    conftest = echo_pytester.path / "conftest.py"
    conftest.write_text(conftest.read_text() + DISK)
    echo_pytester.makepyfile(
        test_bench="""
        def test_first(llm_bench, disk_full):
            llm_bench(num_prompts=2, input_tokens=4, output_tokens=3)

        def test_second(llm_bench, disk_full):
            disk_full.append(True)  # the disk is full from here on
            llm_bench(num_prompts=2, input_tokens=4, output_tokens=3)

        def test_third(llm_bench):
            llm_bench(num_prompts=2, input_tokens=4, output_tokens=3)
        """
    )
    result = echo_pytester.runpytest_inprocess(*ARGS, "--llm-json", "out/report.json")
    result.assert_outcomes(passed=3)  # the measurements themselves went fine
    assert result.ret == pytest.ExitCode.INTERNAL_ERROR  # but the report is stale: not green
    text = result.stdout.str()
    assert "INTERNALERROR" not in text and "Traceback" not in text
    assert (
        "llmbench: could not write the JSON report out/report.json: No space left on device; "
        "the previous file is kept unchanged"
    ) in text
    report = valid_report(echo_pytester.path / "out" / "report.json")
    assert result_ids(report) == ["test_first"]  # what was written before the disk filled
    assert report["complete"] is False
    leftovers = [p.name for p in (echo_pytester.path / "out").iterdir()]
    assert leftovers == ["report.json"]  # no half-written temporary files


def test_a_write_that_fails_once_is_recovered_by_the_next(
    echo_pytester: pytest.Pytester,
) -> None:
    conftest = echo_pytester.path / "conftest.py"
    conftest.write_text(conftest.read_text() + DISK)
    echo_pytester.makepyfile(
        test_bench="""
        def test_first(llm_bench, disk_full):
            disk_full.append(True)  # its result cannot be written
            llm_bench(num_prompts=2, input_tokens=4, output_tokens=3)

        def test_second(llm_bench, disk_full):
            disk_full.clear()  # space freed again
            llm_bench(num_prompts=2, input_tokens=4, output_tokens=3)
        """
    )
    result = echo_pytester.runpytest_inprocess(*ARGS, "--llm-json", "report.json")
    assert result.ret == pytest.ExitCode.OK
    report = valid_report(echo_pytester.path / "report.json")
    assert result_ids(report) == ["test_first", "test_second"] and report["complete"] is True
    assert os.strerror(errno.ENOSPC) in result.stdout.str()  # the failed write was reported
