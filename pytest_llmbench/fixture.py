"""``llm_bench``: the object a benchmark test calls to measure one workload on its backend."""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timezone
from typing import Any

import pytest

from pytest_llmbench.backends.base import Schedule
from pytest_llmbench.errors import ConfigError, EngineError
from pytest_llmbench.goodput import slo_to_dict
from pytest_llmbench.progress import TerminalProgress
from pytest_llmbench.results import BenchmarkResult, Repetition
from pytest_llmbench.runner import RunSettings, Warmup, run_benchmark
from pytest_llmbench.session import EngineHandle, LLMBenchSession
from pytest_llmbench.speculative import SpeculativeCounters
from pytest_llmbench.workload.conversations import ConversationSpec
from pytest_llmbench.workload.prompts import Workload, build_requests
from pytest_llmbench.workload.tokenizer import load_tokenizer

# What ``llm_bench(...)`` and ``llm_bench.workload(...)`` take besides the workload's fields.
CALL_KEYWORDS = ("workload", "schedule", "label")
WORKLOAD_FIELDS = tuple(f.name for f in dataclasses.fields(Workload))
CONVERSATION_FIELDS = tuple(f.name for f in dataclasses.fields(ConversationSpec))


class UnknownArgument(TypeError):
    """A keyword ``llm_bench`` does not take; the message lists the ones it does."""


class ScheduleMismatch(ValueError):
    """A schedule of arrival offsets built for another number of requests than the workload's."""


def check_schedule(schedule: Schedule, workload: Workload) -> None:
    """ScheduleMismatch unless ``schedule`` has one arrival offset per request of ``workload``
    (or none: offline and fixed-concurrency schedules fit any workload)."""
    __tracebackhide__ = True  # the user's call is the line to show
    offsets = schedule.arrival_offsets_s
    if offsets is None or len(offsets) == workload.num_prompts:
        return
    n, m = len(offsets), workload.num_prompts
    raise ScheduleMismatch(
        f"llm_bench(): the schedule has {n} arrival offsets, one per request, but the workload "
        f"sends {m} requests (num_prompts={m}); build the schedule for {m} requests (e.g. "
        f"poisson_schedule({m}, rate)) or set num_prompts={n}"
    )


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def check_keywords(where: str, given: Iterable[str], allowed: tuple[str, ...]) -> None:
    """UnknownArgument naming the first keyword not in ``allowed``, its closest match, and, for a
    config key (a sampling parameter), where to set it instead."""
    __tracebackhide__ = True  # the user's call is the line to show
    for name in given:
        if name in allowed:
            continue
        close = difflib.get_close_matches(name, allowed, n=1, cutoff=0.75)
        hint = f" (did you mean {close[0]}?)" if close else ""
        message = f"{where}: unknown keyword argument {name!r}{hint}; it takes {', '.join(allowed)}"
        key = _config_key(name)
        if key:
            message += (
                f". {key} is a config key, set for the whole session: in the YAML config or "
                f"with --llm-set {key}=VALUE (docs/configuration.md)"
            )
        raise UnknownArgument(message)


def _config_key(name: str) -> str | None:
    """The dotted config key whose last part is ``name`` (``min_p`` -> ``decoder.min_p``)."""
    from pytest_llmbench.config.fields import field_docs
    from pytest_llmbench.config.schema import ExperimentConfig

    keys = [row[0] for row in field_docs(ExperimentConfig)]
    matches = [k for k in keys if k == name or k.rsplit(".", 1)[-1] == name]
    return matches[0] if matches else None


class LLMBench:
    """Runs workloads on the test's backend and records each result on the test report."""

    def __init__(
        self,
        session: LLMBenchSession,
        engine: EngineHandle,
        test_id: str,
        record: Callable[[BenchmarkResult], None],
        progress: Callable[[str], TerminalProgress] | None = None,
    ) -> None:
        self._progress = progress  # a live line per call, given the test id
        self._session = session
        self.engine = engine
        self._test_id = test_id
        self._record = record
        self.results: list[BenchmarkResult] = []

    @property
    def backend(self) -> str:
        return self.engine.name

    def workload(self, name: str = "default", **overrides: Any) -> Workload:
        """The config's default workload with ``overrides`` of its fields (num_prompts, ...)."""
        check_keywords("llm_bench.workload()", overrides, WORKLOAD_FIELDS)
        cfg = self._session.config
        values: dict[str, Any] = {
            "name": name,
            "num_prompts": cfg.workload.num_prompts,
            "input_tokens": cfg.workload.input_tokens,
            "output_tokens": cfg.max_output_tokens,
            "min_output_tokens": cfg.min_output_tokens,
            "dataset": cfg.workload.dataset,
            "seed": cfg.random_seed,
        }
        values.update(overrides)
        return Workload(**values)

    def __call__(
        self,
        workload: Workload | None = None,
        *,
        schedule: Schedule | None = None,
        label: str | None = None,
        **overrides: Any,
    ) -> BenchmarkResult:
        """Warm up, measure the configured repetitions, record and return the result.

        ``overrides`` are Workload fields, applied to ``workload`` (or the config's default).
        """
        check_keywords("llm_bench()", overrides, (*CALL_KEYWORDS, *WORKLOAD_FIELDS))
        if workload is None:
            workload = self.workload(**overrides)
        elif overrides:
            workload = dataclasses.replace(workload, **overrides)
        schedule = schedule or Schedule()
        check_schedule(schedule, workload)
        test_id = self._test_id if label is None else f"{self._test_id}::{label}"
        tokenizer = load_tokenizer(self._session.model_path())  # one for every backend
        self._check_fits(workload, tokenizer, test_id, overrides)
        requests = build_requests(workload, tokenizer, tokenizer.vocab_ids())
        self._session.quality(self.engine)  # measured before the run, at the engine's first use
        spec_before = self.engine.backend.speculative_counters()
        started = _now()
        live = self._progress(test_id) if self._progress is not None else None
        try:
            warmup, repetitions = run_benchmark(
                self.engine.backend,
                requests,
                schedule,
                self.engine.meter,
                self._settings(),
                telemetry=self.engine.telemetry,
                progress=live,
            )
        except EngineError:
            self._session.discard(self.engine.name)
            raise
        finally:
            if live is not None:
                live.finish()
        result = self._result(
            test_id, workload.describe(), schedule, warmup, repetitions, started, spec_before
        )
        self._keep(result)
        return result

    def conversations(
        self,
        spec: ConversationSpec | None = None,
        *,
        mode: str | None = None,
        max_active: int | None = None,
        schedule: Schedule | None = None,
        label: str | None = None,
        **overrides: Any,
    ) -> list[BenchmarkResult]:
        """Measure multi-turn conversations (``pytest_llmbench.multiturn``); record and return
        the results: one per turn index (``::turn1``, ...) in ``lockstep`` mode, one
        (``::sessions``) in ``sessions`` mode (the default where the backend runs them, i.e.
        ``openai``; else lockstep). ``overrides`` are ConversationSpec fields; the defaults
        come from the config (``workload.num_prompts`` conversations, ``workload.input_tokens``
        per user message, ``max_output_tokens`` per answer, ``random_seed``). ``max_active``
        bounds the open sessions (default all); ``schedule`` is each lockstep turn's (default
        offline)."""
        from pytest_llmbench.multiturn import MODES, per_turn, run_lockstep, run_sessions
        from pytest_llmbench.workload.conversations import (
            FIELD,
            build_conversations,
            check_context,
        )

        check_keywords("llm_bench.conversations()", overrides, CONVERSATION_FIELDS)
        cfg = self._session.config
        if spec is None:
            values: dict[str, Any] = {
                "num_conversations": cfg.workload.num_prompts,
                "user_tokens": cfg.workload.input_tokens,
                "output_tokens": cfg.max_output_tokens,
                "seed": cfg.random_seed,
            }
            spec = ConversationSpec(**{**values, **overrides})
        elif overrides:
            spec = dataclasses.replace(spec, **overrides)
        backend = self.engine.backend
        mode = mode or ("sessions" if backend.capabilities.sessions else "lockstep")
        if mode not in MODES:
            raise ConfigError(f"{FIELD}.mode", f"{mode!r} is not one of {', '.join(MODES)}")
        if mode == "sessions" and not backend.capabilities.sessions:
            raise ConfigError(
                f"{FIELD}.mode",
                f"{backend.name} cannot run free sessions (only clients of a server: openai); "
                "use mode='lockstep'",
            )
        limit = self._context_limit()
        if limit is not None:
            check_context(spec, *limit)
        tokenizer = load_tokenizer(self.engine.spec.model_path)
        vocab = tokenizer.vocab_ids()
        settings = self._settings()
        blocks = [
            build_conversations(spec, tokenizer, vocab, block)
            for block in range(settings.repetitions + 1)
        ]
        self._session.quality(self.engine)
        spec_before = backend.speculative_counters()
        started = _now()
        base = self._test_id if label is None else f"{self._test_id}::{label}"
        described = spec.describe()
        try:
            if mode == "sessions":
                active = max_active or spec.num_conversations
                warmup, reps, done = run_sessions(
                    backend, spec, blocks, active, self.engine.meter, settings,
                    self.engine.telemetry,
                )  # fmt: skip
                section = {"mode": mode, "max_active": active, "per_turn": per_turn(done)}
                result = self._result(
                    f"{base}::sessions", described, Schedule(max_concurrency=active), warmup,
                    reps, started, spec_before, conversation=section,
                )  # fmt: skip
                self._keep(result)
                return [result]
            schedule = schedule or Schedule()
            warmup, by_turn, done = run_lockstep(
                backend, spec, blocks, schedule, self.engine.meter, settings, tokenizer,
                self.engine.telemetry,
            )  # fmt: skip
        except EngineError:
            self._session.discard(self.engine.name)
            raise
        table = per_turn(done, by_turn)
        results = []
        for turn, reps in enumerate(by_turn, start=1):
            if not reps:
                continue  # every conversation had failed before this turn
            section = {"mode": mode, "turn": turn, "turns": spec.turns, "per_turn": table}
            results.append(
                self._result(
                    f"{base}::turn{turn}",
                    {**described, "turn": turn},
                    schedule,
                    warmup,
                    reps,
                    started,
                    spec_before,
                    conversation=section,
                )  # fmt: skip
            )
        for result in results:
            self._keep(result)
        return results

    def peak_goodput(
        self,
        workload: Workload | None = None,
        *,
        over: str = "rate",
        start: float = 1.0,
        max_load: float | None = None,
        tolerance: float = 0.1,
        max_steps: int = 10,
        attainment: float | None = None,
        label: str | None = None,
        **overrides: Any,
    ) -> BenchmarkResult:
        """Search the highest request rate (Poisson arrivals, one seed for every rate) or
        concurrency that still meets ``--llm-slo`` (``pytest_llmbench.search``); record and
        return one result: the peak load's repetitions, the ``search`` section (every load
        tried, its attainment and goodput) and the gateable ``peak_goodput``. ``attainment``
        defaults to ``--llm-slo-attainment``."""
        from pytest_llmbench.backends.base import GenerationRequest
        from pytest_llmbench.search import SearchSettings, horizon_s, requests_at_rate, search
        from pytest_llmbench.workload.traffic import gamma_offsets

        check_keywords("llm_bench.peak_goodput()", overrides, WORKLOAD_FIELDS)
        slo = self._session.options.slo
        if slo is None:
            raise ConfigError(
                "--llm-slo", "a peak-goodput search needs an SLO, e.g. --llm-slo ttft:0.5,e2e:5"
            )
        backend = self.engine.backend
        if not backend.capabilities.timed_arrivals:
            raise ConfigError(
                "peak_goodput",
                f"{backend.name} does not accept timed arrivals (rates or concurrency)",
            )
        settings = SearchSettings(
            over=over,  # type: ignore[arg-type]  # checked by SearchSettings
            start=start,
            max_load=max_load,
            tolerance=tolerance,
            max_steps=max_steps,
            attainment=self._session.options.slo_attainment if attainment is None else attainment,
        )
        if workload is None:
            workload = self.workload("search", **overrides)
        elif overrides:
            workload = dataclasses.replace(workload, **overrides)
        tokenizer = load_tokenizer(self.engine.spec.model_path)
        run = self._settings()
        seed = self._session.config.traffic_simulation.seed
        horizon = horizon_s(slo.ttft_s, slo.tpot_s, slo.e2e_s, workload.output_tokens)
        built: dict[int, list[GenerationRequest]] = {}

        def requests_at(load: float) -> list[GenerationRequest]:
            n = workload.num_prompts
            if settings.over == "rate":  # enough arrivals to show an overload (search.py)
                n = requests_at_rate(load, n, horizon)
            if n not in built:
                sized = dataclasses.replace(workload, num_prompts=n)
                built[n] = build_requests(sized, tokenizer, tokenizer.vocab_ids())
            return built[n]

        def schedule_at(load: float) -> Schedule:
            if settings.over == "concurrency":
                return Schedule(max_concurrency=int(load))
            return Schedule(gamma_offsets(len(requests_at(load)), load, 1.0, seed))

        warmed: list[Warmup] = []

        def measure(load: float, count: int) -> list[Repetition]:
            warm = run.warmup if not warmed else 0  # warm the engine once, at the first load
            warmup, reps = run_benchmark(
                backend,
                requests_at(load),
                schedule_at(load),
                self.engine.meter,
                dataclasses.replace(run, repetitions=count, warmup=warm),
                telemetry=self.engine.telemetry,
            )
            warmed.append(warmup)
            return reps

        self._session.quality(self.engine)
        spec_before = backend.speculative_counters()
        started = _now()
        try:
            outcome = search(measure, settings, run.repetitions)
        except EngineError:
            self._session.discard(self.engine.name)
            raise
        chosen = outcome.peak or outcome.lowest
        test_id = self._test_id if label is None else f"{self._test_id}::{label}"
        result = self._result(
            f"{test_id}::peak-goodput",
            {**workload.describe(), "search_over": settings.over},
            schedule_at(chosen.load),
            warmed[0],
            chosen.repetitions,
            started,
            spec_before,
            search=outcome.to_dict(),
        )
        self._keep(result)
        return result

    def _settings(self) -> RunSettings:
        runner = self._session.config.runner
        return RunSettings(
            repetitions=runner.repetitions,
            warmup=runner.warmup,
            warmup_max=runner.warmup_max,
            warmup_tolerance=runner.warmup_tolerance,
            slo=self._session.options.slo,
            freeze_gc=runner.freeze_gc,
        )

    def _context_limit(self) -> tuple[int, str] | None:
        """The smallest context the engine will hold: the model's, or a configured one."""
        from pytest_llmbench.workload.conversations import model_context

        cfg = self._session.config
        limits = [model_context(self.engine.spec.model_path)]
        if self.backend in ("vllm", "openai") and cfg.vllm.max_model_len:
            limits.append((cfg.vllm.max_model_len, "vllm.max_model_len"))
        if self.backend in ("sglang", "openai") and cfg.sglang.context_length:
            limits.append((cfg.sglang.context_length, "sglang.context_length"))
        known = [limit for limit in limits if limit is not None]
        return min(known) if known else None

    def _result(
        self,
        test_id: str,
        workload: dict[str, Any],
        schedule: Schedule,
        warmup: Warmup,
        repetitions: Sequence[Repetition],
        started: str,
        spec_before: SpeculativeCounters | None,
        conversation: dict[str, Any] | None = None,
        search: dict[str, Any] | None = None,
    ) -> BenchmarkResult:
        # Details may describe the last run (e.g. how a server's tokens were counted): ask again.
        info = self.engine.backend.info()
        speculative = _speculative(spec_before, self.engine.backend.speculative_counters())
        return BenchmarkResult(
            test_id=test_id,
            backend=info.backend,
            backend_version=info.version,
            model=self._model_name(info.model),
            device=info.device,
            config_hash=self._session.config_digest(),
            config=self._session.config.to_dict(),
            workload=workload,
            traffic={
                "arrival_offsets_s": None
                if schedule.arrival_offsets_s is None
                else list(schedule.arrival_offsets_s),
                "max_concurrency": schedule.max_concurrency,
                "slo": slo_to_dict(self._session.options.slo),
            },
            repetitions=tuple(repetitions),
            energy_method=self.engine.meter.method,
            started_at=started,
            finished_at=_now(),
            engine_details=dict(info.details),
            warmup=warmup.to_dict(),
            quality=self._session.quality(self.engine).section(),
            speculative=speculative,
            model_source=self._session.model.section(self.engine.spec.model_path),
            conversation=conversation,
            search=search,
        )

    def _keep(self, result: BenchmarkResult) -> None:
        self.results.append(result)
        self._record(result)

    def _model_name(self, reported: str) -> str:
        """What the result calls the model: the engine's own name where it has one (an external
        server's), else the session's (the Hugging Face id rather than a snapshot path)."""
        return self._session.model.label if reported == self.engine.spec.model_path else reported

    def _check_fits(
        self, workload: Workload, tokenizer: Any, test_id: str, overrides: dict[str, Any]
    ) -> None:
        """Fail this test, in one line, when its lengths exceed the backend's context: an engine
        would otherwise run past the model's positions silently or crash in its own words."""
        from pytest_llmbench.models.fit import workload_problem

        limit = self._session.context_limit(self.backend)
        problem = workload_problem(workload, limit, self.backend, tokenizer)
        if problem is None:
            return
        given = ", ".join(f"{k}={v!r}" for k, v in overrides.items())
        call = f"llm_bench({given})" if given else f"llm_bench(workload {workload.name!r})"
        pytest.fail(f"{test_id}: {call}: {problem}", pytrace=False)


def _speculative(
    before: SpeculativeCounters | None, after: SpeculativeCounters | None
) -> dict[str, Any] | None:
    """The ``speculative`` section: counts over this call (warm-up and repetitions)."""
    if after is None:
        return None
    counts = after - before if before is not None else after
    return counts.to_dict()
