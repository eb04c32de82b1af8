"""Goodput arithmetic: which requests meet the SLO, and requests per second."""

from __future__ import annotations

import pytest

from pytest_llmbench.backends.base import Completion
from pytest_llmbench.errors import ConfigError
from pytest_llmbench.goodput import SLO, goodput, meets_slo, parse_slo, span_s, tpot_s


def comp(
    start: float, ttft: float | None, e2e: float, out: int = 11, error: str | None = None
) -> Completion:
    first = None if ttft is None else start + ttft
    return Completion("r", 4, out, start, start + e2e, first_token_s=first, error=error)


def test_tpot_excludes_the_first_token() -> None:
    assert tpot_s(comp(0, 0.2, 1.2, out=11)) == pytest.approx(0.1)
    assert tpot_s(comp(0, 0.2, 1.2, out=1)) == 0.0  # as vLLM: one token has no TPOT
    assert tpot_s(comp(0, None, 1.2)) is None


def test_each_threshold_is_checked() -> None:
    c = comp(0, 0.2, 1.2)  # ttft 0.2, tpot 0.1, e2e 1.2
    assert meets_slo(c, SLO())
    assert meets_slo(c, SLO(ttft_s=0.2, tpot_s=0.1, e2e_s=1.2))  # bounds are inclusive
    assert not meets_slo(c, SLO(ttft_s=0.19))
    assert not meets_slo(c, SLO(tpot_s=0.09))
    assert not meets_slo(c, SLO(e2e_s=1.1))
    assert not meets_slo(comp(0, 0.2, 1.2, error="HTTP 500"), SLO())
    assert not meets_slo(comp(0, None, 1.2), SLO(ttft_s=10))  # no streaming: cannot show it
    assert meets_slo(comp(0, None, 1.2), SLO(e2e_s=10))


def test_goodput_is_good_requests_per_second() -> None:
    completions = [
        comp(0.0, 0.1, 1.0),  # good
        comp(1.0, 0.5, 1.5),  # ttft too slow
        comp(2.0, 0.1, 2.0),  # good (ends at 4.0)
        comp(2.5, 0.1, 1.0, error="timeout"),  # failed
    ]
    slo = SLO(ttft_s=0.3)
    assert span_s(completions) == 4.0
    assert goodput(completions, slo) == pytest.approx(2 / 4.0)
    assert goodput(completions, slo, duration_s=10.0) == pytest.approx(0.2)
    assert goodput(completions, SLO()) == pytest.approx(3 / 4.0)  # successful throughput
    assert goodput([], slo) == 0.0


def test_parse_slo() -> None:
    assert parse_slo("ttft:0.2, tpot:0.05,e2e:2") == SLO(0.2, 0.05, 2.0)
    with pytest.raises(ConfigError, match="'itl:1' is not KEY:SECONDS"):
        parse_slo("itl:1")
    with pytest.raises(ConfigError, match="'fast' is not a number"):
        parse_slo("ttft:fast")
    with pytest.raises(ConfigError, match=r"slo.e2e: 0.0 is not > 0"):
        parse_slo("e2e:0")
