"""The pytorch backend's measuring parts: step clock, reused static caches, harness overhead."""

from __future__ import annotations

import time
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from pytest_llmbench import compat  # noqa: E402
from pytest_llmbench.backends.base import BackendSpec, GenerationRequest  # noqa: E402
from pytest_llmbench.backends.overhead import compare_paths  # noqa: E402
from pytest_llmbench.backends.pytorch.backend import PytorchBackend  # noqa: E402
from pytest_llmbench.backends.pytorch.cache import (  # noqa: E402
    StaticCaches,
    cache_geometry,
    cuda_graph_state,
)
from pytest_llmbench.backends.pytorch.timing import TIMING_CPU, TIMING_CUDA, StepClock  # noqa: E402
from pytest_llmbench.config.load import parse_override, resolve_config  # noqa: E402
from pytest_llmbench.workload.tinymodel import ensure_tiny_model  # noqa: E402


def make_backend(*overrides: str) -> PytorchBackend:
    config = resolve_config(overrides=[parse_override(o) for o in overrides])
    spec = BackendSpec(str(ensure_tiny_model()), config, compat.translate(config, "pytorch"), "cpu")
    backend = PytorchBackend(spec)
    backend.start()
    return backend


def reqs(n: int, prompt: int = 12, out: int = 8) -> list[GenerationRequest]:
    return [
        GenerationRequest(f"r{i}", tuple(range(5 + i, 5 + i + prompt)), out, out) for i in range(n)
    ]


# -- the step clock --------------------------------------------------------------------------------
def test_cpu_clock_stamps_each_step_inside_the_call_and_reuses_one_tensor() -> None:
    clock = StepClock(torch.device("cpu"))
    ids = torch.zeros((3, 4), dtype=torch.long)
    clock.start()
    t0 = time.perf_counter()
    answers = [clock(ids, None) for _ in range(5)]
    t1 = time.perf_counter()
    times = clock.times_s()
    assert len(times) == 5 and times == sorted(times) and t0 <= times[0] and times[-1] <= t1
    assert all(a is answers[0] for a in answers) and not answers[0].any()
    assert answers[0].shape == (3,) and clock.method == TIMING_CPU
    assert clock(torch.zeros((2, 4), dtype=torch.long), None).shape == (2,)  # a new batch shape


class Ticks:
    """Stands in for the ``time`` module: wall and CPU clocks that move only when a test says so,
    so that timing code is checked exactly, whatever else the machine is doing."""

    def __init__(self) -> None:
        self.wall_s, self.cpu_s = 100.0, 5.0

    def perf_counter(self) -> float:
        return self.wall_s

    def thread_time(self) -> float:
        return self.cpu_s

    def spend(self, wall_s: float, cpu_s: float = 0.0) -> None:
        self.wall_s += wall_s
        self.cpu_s += cpu_s


class FakeEvent:
    """torch.cuda.Event at the hardware boundary. An event recorded on an idle GPU (right after a
    synchronise) completes at once; later ones complete ``lag_s`` after the host queued them (the
    host never waits), as on an asynchronous stream."""

    lag_s = 0.004
    idle = True
    clock = staticmethod(time.perf_counter)  # the host's clock, on the perf_counter scale

    def __init__(self, enable_timing: bool = False) -> None:
        assert enable_timing
        self.at_s = 0.0

    def record(self) -> None:
        self.at_s = self.clock() + (0.0 if FakeEvent.idle else self.lag_s)
        FakeEvent.idle = False

    def elapsed_time(self, other: FakeEvent) -> float:
        return (other.at_s - self.at_s) * 1e3  # milliseconds, as torch reports

    def synchronize(self) -> None:
        pass


def test_cuda_clock_maps_event_times_onto_perf_counter(monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[bool] = []

    def synchronize(*args: Any) -> None:
        synced.append(True)
        FakeEvent.idle = True

    ticks = Ticks()  # the host's clock, moved by hand: a busy machine cannot shift the stamps
    monkeypatch.setattr(torch.cuda, "Event", FakeEvent)
    monkeypatch.setattr(torch.cuda, "synchronize", synchronize)
    monkeypatch.setattr(FakeEvent, "clock", ticks.perf_counter)
    monkeypatch.setattr("pytest_llmbench.backends.pytorch.timing.time", ticks)
    clock = StepClock(torch.device("cuda"))
    ids = torch.zeros((1, 4), dtype=torch.long)
    clock.start()
    queued = []
    for _ in range(3):
        queued.append(ticks.perf_counter())
        clock(ids, None)
        ticks.spend(0.002)
    times = clock.times_s()
    assert synced == [True]  # once, before the batch: never inside the decoding loop
    # Each time is the event's, shifted onto perf_counter: the GPU's finish, not the host's queue.
    for host_s, step_s in zip(queued, times, strict=True):
        assert step_s - host_s == pytest.approx(FakeEvent.lag_s)
    assert clock.method == TIMING_CUDA


# -- static caches ---------------------------------------------------------------------------------
def test_static_caches_are_built_once_per_shape_and_reset_on_reuse() -> None:
    backend = make_backend("pytorch.cache_implementation=static", "batching.batch_size=2")
    caches = backend._static
    assert isinstance(caches, StaticCaches)
    with torch.inference_mode():
        a = caches.get(2, 20)
        assert caches.get(2, 20) is a
        b = caches.get(1, 20)
        assert caches.get(2, 20) is a  # used last: (1, 20) is now the oldest
        caches.get(2, 30)  # a third shape: the oldest goes
        assert caches.get(2, 20) is a
        assert caches.get(1, 20) is not b
    assert caches.early_initialised
    assert cache_geometry(backend._model) == (
        backend._model.config.num_key_value_heads,
        backend._model.config.hidden_size // backend._model.config.num_attention_heads,
    )


def test_reused_static_cache_gives_the_dynamic_caches_tokens() -> None:
    dynamic = make_backend("batching.batch_size=3")
    static = make_backend("pytorch.cache_implementation=static", "batching.batch_size=3")
    work = reqs(5)  # batches of 3 and 2: two cache shapes
    expected = [c.output_token_ids for c in dynamic.generate(work)]
    for _ in range(2):  # the second call runs on reset caches
        got = [c.output_token_ids for c in static.generate(work)]
        assert got == expected
    details = static.info().details
    assert details["static_cache"].startswith("built once per batch shape, early-initialised")
    assert details["token_timing"] == TIMING_CPU
    assert "cuda_graphs" not in details  # a CPU run says nothing about CUDA graphs


def test_cuda_graph_state_reads_torch_bookkeeping(monkeypatch: pytest.MonkeyPatch) -> None:
    from torch._dynamo.utils import counters
    from torch._inductor import cudagraph_trees

    class Manager:
        roots = {"f": ["graph"]}

    monkeypatch.setitem(counters["inductor"], "cudagraph_skips", 0)
    monkeypatch.setattr(cudagraph_trees, "get_manager", lambda *a, **k: None)
    assert cuda_graph_state().startswith("none recorded")
    monkeypatch.setitem(counters["inductor"], "cudagraph_skips", 3)
    assert cuda_graph_state().startswith("skipped 3 time(s)")
    monkeypatch.setattr(cudagraph_trees, "get_manager", lambda *a, **k: Manager())
    assert cuda_graph_state() == "applied, 3 graph(s) skipped"
    monkeypatch.setitem(counters["inductor"], "cudagraph_skips", 0)
    assert cuda_graph_state() == "applied"

    def moved(*a: Any, **k: Any) -> None:
        raise AttributeError("no get_manager")

    monkeypatch.setattr(cudagraph_trees, "get_manager", moved)
    assert cuda_graph_state() == "unknown (AttributeError: no get_manager)"


# -- harness overhead ------------------------------------------------------------------------------
def test_compare_paths_alternates_and_checks_token_counts() -> None:
    calls: list[str] = []

    def path(label: str, tokens: int) -> Any:
        def run() -> int:
            calls.append(label)
            return tokens

        return run

    result = compare_paths("x", path("d", 4), path("h", 4), 4, repetitions=3, warmup=False)
    assert calls == ["d", "h", "h", "d", "d", "h"]  # the leader alternates, direct first
    assert result.repetitions == 3 and result.output_tokens == 4 and result.ratio > 0
    with pytest.raises(AssertionError, match="the harness path produced 3 tokens, expected 4"):
        compare_paths("x", path("d", 4), path("h", 3), 4, repetitions=1, warmup=False)
    with pytest.raises(ValueError, match="repetitions must be >= 1"):
        compare_paths("x", path("d", 4), path("h", 4), 4, repetitions=0)


@pytest.mark.parametrize("cache", ["dynamic", "static"])
def test_harness_overhead_runs_both_paths_on_the_same_model(cache: str) -> None:
    backend = make_backend(f"pytorch.cache_implementation={cache}", "batching.batch_size=2")
    result = backend.harness_overhead(reqs(3), repetitions=2)
    assert result.engine == "generate" and result.output_tokens == 3 * 8
    assert result.direct_tok_s > 0 and result.harness_tok_s > 0


def test_added_host_time_counts_the_clock_per_step_and_per_batch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pytest_llmbench.backends.pytorch import overhead

    ticks = Ticks()
    calls = {"step": 0, "start": 0, "read": 0}

    class SlowClock(StepClock):  # each part takes a known time, the wall longer than the CPU
        def start(self) -> None:
            calls["start"] += 1
            ticks.spend(0.004, 0.003)
            super().start()

        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            calls["step"] += 1
            ticks.spend(0.001, 0.0005)
            return super().__call__(input_ids, scores)

        def times_s(self) -> list[float]:
            calls["read"] += 1
            ticks.spend(0.002, 0.001)
            return super().times_s()

    backend = make_backend()
    batch = reqs(3, out=20)
    made: list[int] = []  # Completions built per repetition, full length (no EOS in the rows)
    completions = backend._completions

    def counted(*args: Any) -> Any:
        out = completions(*args)
        made.append(sum(c.output_tokens for c in out))
        return out

    monkeypatch.setattr(backend, "_completions", counted)
    monkeypatch.setattr("pytest_llmbench.backends.pytorch.timing.StepClock", SlowClock)
    monkeypatch.setattr(overhead, "time", ticks)
    added = overhead.added_host_time(backend, batch, steps=20, repetitions=3)
    assert calls == {"step": 60, "start": 3, "read": 3}
    assert made == [60, 60, 60]
    assert added.per_step_s == pytest.approx(0.001) and added.per_batch_s == pytest.approx(0.006)
    assert added.per_step_cpu_s == pytest.approx(0.0005)
    assert added.per_batch_cpu_s == pytest.approx(0.004)
    assert added.per_run_cpu_s == pytest.approx(0.004 + 20 * 0.0005)
    assert added.per_run_s == pytest.approx(added.per_batch_s + 20 * added.per_step_s)
    with pytest.raises(ValueError, match="steps must be >= 1"):
        overhead.added_host_time(backend, batch[:1], steps=0)
    with pytest.raises(ValueError, match="rows and steps must be >= 1"):
        overhead.added_host_time(backend, [], steps=5)
