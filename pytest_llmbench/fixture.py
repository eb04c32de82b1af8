"""``llm_bench``: the object a benchmark test calls to measure one workload on its backend."""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from typing import Any

import pytest

from pytest_llmbench.backends.base import Schedule
from pytest_llmbench.errors import EngineError
from pytest_llmbench.goodput import slo_to_dict
from pytest_llmbench.progress import TerminalProgress
from pytest_llmbench.results import BenchmarkResult
from pytest_llmbench.runner import RunSettings, run_benchmark
from pytest_llmbench.session import EngineHandle, LLMBenchSession
from pytest_llmbench.speculative import SpeculativeCounters
from pytest_llmbench.workload.prompts import Workload, build_requests
from pytest_llmbench.workload.tokenizer import load_tokenizer

# What ``llm_bench(...)`` and ``llm_bench.workload(...)`` take besides the workload's fields.
CALL_KEYWORDS = ("workload", "schedule", "label")
WORKLOAD_FIELDS = tuple(f.name for f in dataclasses.fields(Workload))


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
        runner = self._session.config.runner
        quality = self._session.quality(self.engine)
        spec_before = self.engine.backend.speculative_counters()
        started = _now()
        live = self._progress(test_id) if self._progress is not None else None
        try:
            warmup, repetitions = run_benchmark(
                self.engine.backend,
                requests,
                schedule,
                self.engine.meter,
                RunSettings(
                    repetitions=runner.repetitions,
                    warmup=runner.warmup,
                    warmup_max=runner.warmup_max,
                    warmup_tolerance=runner.warmup_tolerance,
                    slo=self._session.options.slo,
                ),
                telemetry=self.engine.telemetry,
                progress=live,
            )
        except EngineError:
            self._session.discard(self.engine.name)
            raise
        finally:
            if live is not None:
                live.finish()
        # Details may describe the last run (e.g. how a server's tokens were counted): ask again.
        info = self.engine.backend.info()
        speculative = _speculative(spec_before, self.engine.backend.speculative_counters())
        result = BenchmarkResult(
            test_id=test_id,
            backend=info.backend,
            backend_version=info.version,
            model=self._model_name(info.model),
            device=info.device,
            config_hash=self._session.config_digest(),
            config=self._session.config.to_dict(),
            workload=workload.describe(),
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
            quality=quality.section(),
            speculative=speculative,
            model_source=self._session.model.section(self.engine.spec.model_path),
        )
        self.results.append(result)
        self._record(result)
        return result

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
