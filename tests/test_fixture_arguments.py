"""What a benchmark author types wrong gets one error naming it: llm_bench's keywords and the
``llm_requires`` marker's parameters."""

from __future__ import annotations

import textwrap

import pytest


def run(pytester: pytest.Pytester, source: str) -> pytest.RunResult:
    pytester.makepyfile(test_typos=textwrap.dedent(source))
    return pytester.runpytest_inprocess(
        "test_typos.py", "--llm-backend", "echo", "--llm-repeat", "1", "--llm-warmup", "0",
        "--llm-energy", "none",
    )  # fmt: skip


def test_a_sampling_parameter_as_keyword_names_the_config_key(
    echo_pytester: pytest.Pytester,
) -> None:
    result = run(echo_pytester, "def test_x(llm_bench):\n    llm_bench(min_p=0.1)\n")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert (
        "UnknownArgument: llm_bench(): unknown keyword argument 'min_p'; it takes workload, "
        "schedule, label, name, num_prompts, input_tokens, output_tokens" in out
    )
    assert "decoder.min_p is a config key" in out
    assert "--llm-set decoder.min_p=VALUE" in out
    assert "Workload.__init__" not in out


def test_a_misspelled_workload_field_gets_the_closest_name(echo_pytester: pytest.Pytester) -> None:
    result = run(echo_pytester, "def test_x(llm_bench):\n    llm_bench.workload(num_prompt=1)\n")
    result.assert_outcomes(failed=1)
    assert (
        "llm_bench.workload(): unknown keyword argument 'num_prompt' (did you mean num_prompts?)"
        in result.stdout.str()
    )


def test_a_schedule_for_another_number_of_requests_is_refused(
    echo_pytester: pytest.Pytester,
) -> None:
    result = run(
        echo_pytester,
        """
        from pytest_llmbench.workload.traffic import poisson_schedule

        def test_mismatch(llm_bench):
            llm_bench(num_prompts=4, schedule=poisson_schedule(10, rate=5.0))
        """,
    )
    result.assert_outcomes(failed=1)
    assert "does not accept timed arrivals" not in result.stdout.str()  # refused before serving
    assert (
        "ScheduleMismatch: llm_bench(): the schedule has 10 arrival offsets, one per request, "
        "but the workload sends 4 requests (num_prompts=4); build the schedule for 4 requests "
        "(e.g. poisson_schedule(4, rate)) or set num_prompts=10" in result.stdout.str()
    )


def test_overrides_apply_to_a_given_workload(echo_pytester: pytest.Pytester) -> None:
    result = run(
        echo_pytester,
        """
        def test_x(llm_bench):
            base = llm_bench.workload("w", num_prompts=2, input_tokens=4, output_tokens=3)
            result = llm_bench(base, output_tokens=5)
            assert result.workload["output_tokens"] == 5
            assert result.workload["num_prompts"] == 2
            assert result.repetitions[0].output_tokens == 2 * 5 * result.repetitions[0].iterations
        """,
    )
    result.assert_outcomes(passed=1)


def test_a_misspelled_llm_requires_parameter_is_one_error(echo_pytester: pytest.Pytester) -> None:
    result = run(
        echo_pytester,
        """
        import pytest

        @pytest.mark.llm_requires("decoder.minp")
        def test_x(llm_bench):
            pass

        @pytest.mark.llm_requires("decoder.minp")
        def test_y(llm_backend_name):
            pass
        """,
    )
    result.assert_outcomes(errors=2)
    out = result.stdout.str()
    message = (
        "@pytest.mark.llm_requires('decoder.minp'): decoder.minp is not a universal parameter; "
        "did you mean decoder.min_p? known: "
    )
    # The ERRORS section only: the short summary repeats it, untruncated when CI is set.
    errors = out.split("= ERRORS =", 1)[1].split("short test summary info", 1)[0]
    assert errors.count(message) == 2  # once per test, not twice around a chained exception
    assert "During handling" not in out


def test_a_schedule_fits_a_workload_with_one_offset_per_request() -> None:
    from pytest_llmbench.fixture import ScheduleMismatch, check_schedule
    from pytest_llmbench.workload.prompts import Workload
    from pytest_llmbench.workload.traffic import (
        concurrency_schedule,
        gamma_schedule,
        offline_schedule,
        poisson_schedule,
    )

    four = Workload("w", num_prompts=4, input_tokens=4, output_tokens=2)
    for fits in (poisson_schedule(4, 2.0), offline_schedule(), concurrency_schedule(2)):
        check_schedule(fits, four)
    for wrong in (poisson_schedule(10, 2.0), gamma_schedule(3, 2.0, 0.5)):
        with pytest.raises(ScheduleMismatch, match="but the workload sends 4 requests"):
            check_schedule(wrong, four)
