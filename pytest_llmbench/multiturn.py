"""Running multi-turn conversations (:mod:`pytest_llmbench.workload.conversations`) on a backend.

Two ways, because energy and realism pull apart:

- **lockstep** (every backend): turn *t* of every conversation is sent together, as one
  workload on the test's schedule, inside its own energy window; the next turn is built from
  the answers. Each turn index is then measured on its own: TTFT, latency, throughput and
  joules per output token of turn 1 against later turns (the prefix-cache effect), one result
  per turn index. Think time is a pause between turns, outside the windows.
- **sessions** (backends that are clients of a server: ``openai``): each conversation runs on
  its own, as a user would: a turn is sent when the answer to the previous one has arrived and
  its think time has passed; at most ``max_active`` conversations are open at once. The whole
  run is one energy window, one result; turns of different conversations overlap in it, so
  joules are not split by turn (the ``conversation.per_turn`` section says so), while each
  turn index still gets its own latency statistics.

Each repetition (and the warm-up) plays its own block of conversations, so no conversation is
sent twice to an engine that caches prefixes: turn 1 of a repetition never hits the cache
because of an earlier repetition.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import Any

from pytest_llmbench.backends.base import Backend, Completion, Schedule
from pytest_llmbench.energy.base import EnergyMeter, EnergyReading
from pytest_llmbench.results import Repetition
from pytest_llmbench.runner import RunSettings, Telemetry, Warmup, run_repetition
from pytest_llmbench.stats import percentile
from pytest_llmbench.workload.conversations import (
    Conversation,
    ConversationSpec,
    History,
    not_sent,
    record_turn,
    turn_of,
    turn_request,
)
from pytest_llmbench.workload.prompts import Tokenizer

MODES = ("lockstep", "sessions")


def play_lockstep(
    backend: Backend,
    spec: ConversationSpec,
    conversations: Sequence[Conversation],
    schedule: Schedule,
    tokenizer: Tokenizer,
    meter: EnergyMeter | None = None,
    settings: RunSettings | None = None,
    telemetry: Telemetry | None = None,
) -> tuple[list[Repetition], list[Completion]]:
    """One play of ``conversations``, turn by turn: a Repetition per turn (each its own energy
    window; none without a meter, for the warm-up) and every completion."""
    from pytest_llmbench.energy.base import UnavailableMeter

    meter = meter or UnavailableMeter("warm-up: not measured")
    histories = [History() for _ in conversations]
    repetitions: list[Repetition] = []
    everything: list[Completion] = []
    for turn in range(spec.turns):
        if turn and spec.think_time_s:
            time.sleep(spec.think_time_s)  # outside the windows: the users read and type
        live = [(c, h) for c, h in zip(conversations, histories, strict=True) if not h.failed]
        dropped = [
            not_sent(turn_request(spec, c, turn, h), str(h.failed), time.perf_counter())
            for c, h in zip(conversations, histories, strict=True)
            if h.failed
        ]
        got: list[Completion] = []
        if live:
            requests = [turn_request(spec, c, turn, h) for c, h in live]
            rep = run_repetition(
                backend,
                requests,
                schedule,
                meter,
                max_iterations=1,  # a turn cannot be repeated: its history moved on
                slo=settings.slo if settings else None,
                telemetry=telemetry,
                keep=got,
            )
            for (conversation, history), completion in zip(live, got, strict=True):
                record_turn(conversation, turn, history, completion, tokenizer)
            if dropped:  # turns not sent because an earlier turn failed count as errors
                rep = dataclasses.replace(rep, errors=rep.errors + len(dropped))
            repetitions.append(rep)
        everything += got + dropped
    return repetitions, everything


def run_lockstep(
    backend: Backend,
    spec: ConversationSpec,
    blocks: Sequence[Sequence[Conversation]],
    schedule: Schedule,
    meter: EnergyMeter,
    settings: RunSettings,
    tokenizer: Tokenizer,
    telemetry: Telemetry | None = None,
) -> tuple[Warmup, list[list[Repetition]], list[Completion]]:
    """Warm-up on ``blocks[0]`` (when ``settings.warmup``), then one play per further block:
    repetitions by turn index (``[turn][repetition]``) and the measured completions."""
    warm = _warm_up(settings, lambda: play_lockstep(backend, spec, blocks[0], schedule, tokenizer))
    by_turn: list[list[Repetition]] = [[] for _ in range(spec.turns)]
    completions: list[Completion] = []
    for block in blocks[1:]:
        reps, done = play_lockstep(
            backend, spec, block, schedule, tokenizer, meter, settings, telemetry
        )
        for turn, rep in enumerate(reps):
            by_turn[turn].append(rep)
        completions += done
    return warm, by_turn, completions


def run_sessions(
    backend: Backend,
    spec: ConversationSpec,
    blocks: Sequence[Sequence[Conversation]],
    max_active: int,
    meter: EnergyMeter,
    settings: RunSettings,
    telemetry: Telemetry | None = None,
) -> tuple[Warmup, list[Repetition], list[Completion]]:
    """Warm-up on ``blocks[0]``, then one free-running play per further block, each in one
    energy window: the repetitions and the measured completions."""
    from pytest_llmbench.energy.telemetry import window_telemetry

    converse = getattr(backend, "converse", None)
    if converse is None or not backend.capabilities.sessions:
        raise NotImplementedError(f"{backend.name} does not run free conversation sessions")
    warm = _warm_up(settings, lambda: converse(spec, blocks[0], max_active))
    repetitions = []
    completions: list[Completion] = []
    for block in blocks[1:]:
        before = telemetry.snapshot() if telemetry is not None else None
        probe = backend.window_probe()
        if probe is not None:
            probe.start()
        window = meter.start()
        started = time.perf_counter()
        try:
            done = converse(spec, block, max_active)
        finally:
            elapsed = time.perf_counter() - started
            reading = window.stop()
            server = probe.stop() if probe is not None else None
        state = None
        if telemetry is not None and before is not None:
            state = window_telemetry(before, telemetry.snapshot())
        rep = Repetition.from_completions(
            done, elapsed, 1, reading, settings.slo, state, backend.client_load()
        )
        repetitions.append(rep if server is None else dataclasses.replace(rep, server=server))
        completions += done
    return warm, repetitions, completions


def _warm_up(settings: RunSettings, play: Any) -> Warmup:
    """One unmeasured play (its own conversations) when warm-up is asked for."""
    if settings.warmup == 0:
        return Warmup((), False)
    started = time.perf_counter()
    play()
    return Warmup((time.perf_counter() - started,), True)


def per_turn(
    completions: Sequence[Completion], by_turn: Sequence[Sequence[Repetition]] | None = None
) -> list[dict[str, Any]]:
    """Statistics per turn index over all measured plays: requests, errors, mean prompt
    tokens, TTFT and end-to-end latency percentiles (seconds); with ``by_turn`` (lockstep) the
    joules per output token of each turn's windows, else why there are none."""
    turns: dict[int, list[Completion]] = {}
    for c in completions:
        turns.setdefault(turn_of(c.request_id), []).append(c)
    out = []
    for turn in sorted(turns):
        group = turns[turn]
        ok = [c for c in group if c.error is None]
        ttft = sorted(t for c in ok if (t := c.ttft_s) is not None)
        e2e = sorted(c.latency_s for c in ok)
        row: dict[str, Any] = {
            "turn": turn,
            "requests": len(ok),
            "errors": len(group) - len(ok),
            "input_tokens_mean": sum(c.input_tokens for c in ok) / len(ok) if ok else None,
            "output_tokens": sum(c.output_tokens for c in ok),
            "ttft_s_p50": percentile(ttft, 50) if ttft else None,
            "ttft_s_p90": percentile(ttft, 90) if ttft else None,
            "e2e_latency_s_p50": percentile(e2e, 50) if e2e else None,
        }
        if by_turn is not None and turn - 1 < len(by_turn):
            row.update(_turn_energy(by_turn[turn - 1]))
        else:
            row["energy_per_output_token"] = None
            row["energy_unavailable"] = (
                "turns of different conversations overlap in one energy window (sessions); "
                "lockstep measures each turn index in its own window"
            )
        out.append(row)
    return out


def _turn_energy(reps: Sequence[Repetition]) -> dict[str, Any]:
    readings = [r for r in reps if isinstance(r.energy, EnergyReading)]
    tokens = sum(r.output_tokens for r in reps)
    if len(readings) != len(reps) or not tokens:
        reason = next(
            (getattr(r.energy, "reason", "") for r in reps if r not in readings), "no tokens"
        )
        return {"energy_per_output_token": None, "energy_unavailable": reason}
    joules = sum(r.energy.energy_j for r in readings if isinstance(r.energy, EnergyReading))
    short = sum(
        1 for r in readings if isinstance(r.energy, EnergyReading) and r.energy.short_window
    )
    return {"energy_per_output_token": joules / tokens, "short_windows": short}
