"""The live progress line: shown on a terminal, silent under -q and when output is not a tty."""

from __future__ import annotations

import pytest

ARGS = ("--llm-backend", "echo", "--llm-repeat", "3", "--llm-warmup", "1", "-p", "no:randomly")


def test_progress_line_on_a_terminal(echo_pytester: pytest.Pytester) -> None:
    result = echo_pytester.runpytest(*ARGS, "--color=yes")  # markup on: what a tty gets
    result.assert_outcomes(passed=1)
    out = result.stdout.str()
    assert "warm-up 1/" in out
    for i in (1, 2, 3):
        assert f"repetition {i}/3" in out
    assert "s elapsed" in out and "tok/s" in out
    # pytester splits output at "\r" too: each rewrite of the one line is a "line" here
    updates = [ln for ln in result.stdout.lines if ln.startswith("llmbench test_bench.py")]
    assert len(updates) >= 4 and all(ln.endswith("\x1b[K") for ln in updates)
    assert any(ln.startswith("\x1b[K") for ln in result.stdout.lines)  # cleared at the end


@pytest.mark.parametrize("args", [("--color=yes", "-q"), ("--color=no",)])
def test_progress_is_silent_under_q_and_without_a_terminal(
    echo_pytester: pytest.Pytester, args: tuple[str, ...]
) -> None:
    result = echo_pytester.runpytest(*ARGS, *args)
    result.assert_outcomes(passed=1)
    assert "repetition 1/3" not in result.stdout.str()
