"""Token agreement between two backends of one session that ran the same weights.

``token_agreement`` is the mean over probe prompts of (length of the common prefix of the two
greedy continuations) / (continuation length): 1 when every token matches, 0 when the first token
of every prompt differs. After the first divergence two greedy decodes see different contexts,
so later tokens say nothing more: the prefix is what counts.

Pairs are formed only between backends of the same session (never pooled across sessions); each
pair is a comparison of two engines, not an aggregate of them.
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Iterable, Sequence
from typing import Any

from pytest_llmbench.quality.probe import ProbeOutput


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """Number of leading positions where ``a`` and ``b`` hold the same token."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def token_agreement(a: Sequence[Sequence[int]], b: Sequence[Sequence[int]]) -> float:
    """Mean over prompts of common prefix / length (the longer of the two); in [0, 1]."""
    if len(a) != len(b) or not a:
        raise ValueError(f"need the same non-zero number of prompts, got {len(a)} and {len(b)}")
    fractions = []
    for x, y in zip(a, b, strict=True):
        length = max(len(x), len(y))
        fractions.append(common_prefix(x, y) / length if length else 1.0)
    return statistics.fmean(fractions)


def first_divergence(
    a: Sequence[Sequence[int]], b: Sequence[Sequence[int]]
) -> dict[str, Any] | None:
    """The first prompt (in probe order) whose continuations differ: its index, the position of
    the first differing token, and the two tokens (None past the end of a shorter one)."""
    for prompt, (x, y) in enumerate(zip(a, b, strict=True)):
        position = common_prefix(x, y)
        if position < max(len(x), len(y)):
            return {
                "prompt": prompt,
                "position": position,
                "tokens": [_at(x, position), _at(y, position)],
            }
    return None


def _at(seq: Sequence[int], i: int) -> int | None:
    return seq[i] if i < len(seq) else None


def compare_probes(a: ProbeOutput, b: ProbeOutput) -> dict[str, Any]:
    """One entry of the report's ``agreement`` section."""
    entry: dict[str, Any] = {
        "backends": [a.backend, b.backend],
        "model": a.model,
        "probe": a.probe,
        "dtypes": {a.backend: a.dtype, b.backend: b.dtype},
        "token_agreement": None,
        "prompts": 0,
        "first_divergence": None,
        "unavailable": None,
    }
    missing = [p for p in (a, b) if p.outputs is None]
    if missing:
        entry["unavailable"] = "; ".join(f"{p.backend}: {p.reason}" for p in missing)
    elif a.probe != b.probe:
        entry["unavailable"] = f"different probes: {a.probe} and {b.probe}"
    else:
        assert a.outputs is not None and b.outputs is not None
        entry["token_agreement"] = token_agreement(a.outputs, b.outputs)
        entry["prompts"] = len(a.outputs)
        entry["first_divergence"] = first_divergence(a.outputs, b.outputs)
    return entry


def agreement_section(probes: Iterable[ProbeOutput]) -> list[dict[str, Any]]:
    """Every pair of backends of one session, by name; the first probe of each backend wins
    (later ones come from other xdist workers or a restarted engine of the same backend)."""
    first: dict[str, ProbeOutput] = {}
    for probe in probes:
        first.setdefault(probe.backend, probe)
    ordered = [first[name] for name in sorted(first)]
    return [compare_probes(a, b) for a, b in itertools.combinations(ordered, 2)]


def pair_name(entry: dict[str, Any]) -> str:
    """``pytorch~vllm``: how a pair is named in tables and gate rows."""
    return "~".join(str(b) for b in entry["backends"])
