"""pytest hooks only: options, configuration, fixtures, parametrisation and collecting results.

Everything heavy (torch, engines) is imported inside fixtures, so ``pytest --help`` and sessions
that select no backend stay fast.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from pytest_llmbench import hookspecs
from pytest_llmbench.errors import (
    BackendUnavailable,
    ConfigError,
    EngineError,
    UnsupportedParameter,
)
from pytest_llmbench.options import add_options, read_options
from pytest_llmbench.results import USER_PROPERTY, BenchmarkResult

if TYPE_CHECKING:
    from pytest_llmbench.config.schema import ExperimentConfig
    from pytest_llmbench.energy.probe import EnergyProbe
    from pytest_llmbench.fixture import LLMBench
    from pytest_llmbench.session import EngineHandle, LLMBenchSession
    from pytest_llmbench.workers import EarlyPin

SESSION_KEY = pytest.StashKey["LLMBenchSession"]()
EARLY_PIN_KEY: pytest.StashKey[EarlyPin] = pytest.StashKey()
BACKEND_FIXTURE = "llm_backend"
NAME_FIXTURE = "llm_backend_name"  # the backend's name only: no engine, runs where it is absent


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hookspecs)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "llm_requires(*parameters): skip on backends that do not support these universal "
        "parameters (dotted config keys, e.g. 'decoder.min_p').",
    )
    if config.option.help:
        return
    from pytest_llmbench.backends.registry import Registry
    from pytest_llmbench.energy.plugins import MeterRegistry
    from pytest_llmbench.session import LLMBenchSession

    try:
        options = read_options(config)
        workerinput = getattr(config, "workerinput", None)
        per_worker = _pin_or_check_workers(config, workerinput, options.gpus_per_worker)
        registry = Registry.discover(config.hook.pytest_llmbench_register_backends())
        meters = MeterRegistry.discover(config.hook.pytest_llmbench_register_energy_meters())
        session = LLMBenchSession.create(options, registry, meters)
        if workerinput is None:  # workers inherit the controller's verdicts
            session.check_gpus(per_worker)
            session.check_energy_choice()
        config.stash[SESSION_KEY] = session
    except ConfigError as exc:
        raise pytest.UsageError(str(exc)) from None
    if workerinput is None:  # said once, by the controller
        from pytest_llmbench.session import ModelWarning

        for note in session.model.notes:
            config.issue_config_time_warning(ModelWarning(note), stacklevel=2)
    from pytest_llmbench import interrupt

    interrupt.install()  # a CI runner's SIGTERM: partial report written, engines stopped
    if not hasattr(config, "workerinput"):  # the xdist controller or a plain session
        from pytest_llmbench.collector import ResultCollector, check_writable
        from pytest_llmbench.errors import LLMBenchError
        from pytest_llmbench.gate.baseline import BaselinePlan

        b = options.baseline
        try:
            for option, path in (
                ("--llm-json", options.json_path),
                ("--llm-html", options.html_path),
            ):
                if path:
                    check_writable(path, option)
            if options.html_path:  # its plotting library, before any benchmark runs
                from pytest_llmbench.report.draw import require

                require("--llm-html")
            # Before any benchmark runs: a bad rule or a missing/corrupt baseline fails now.
            plan = BaselinePlan.create(
                compare=b.compare,
                fail_on=list(b.fail_on) or None,
                allow_mixed=b.allow_mixed,
                save=b.save,
                autosave=b.autosave,
                storage_root=b.storage,
                history_runs=b.history_runs,
                false_alarm_rate=b.false_alarm_rate,
                allow_unmeasured=b.allow_unmeasured,
            )
        except LLMBenchError as exc:
            raise pytest.UsageError(str(exc)) from None
        config.pluginmanager.register(
            ResultCollector(options.json_path, plan, html_path=options.html_path),
            ResultCollector.PLUGIN_NAME,
        )


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config) -> None:
    """An xdist worker takes its GPUs (``--llm-gpus-per-worker``) before conftest files load:
    CUDA reads CUDA_VISIBLE_DEVICES once, at its first initialisation, which a conftest may do."""
    import os

    if "PYTEST_XDIST_WORKER" not in os.environ:
        return
    from pytest_llmbench.workers import DEST, pin_current_worker_early

    cli = getattr(early_config.known_args_namespace, DEST, None)
    pin = pin_current_worker_early(cli, early_config.getini(DEST))
    if pin is not None:
        early_config.stash[EARLY_PIN_KEY] = pin


def _pin_or_check_workers(
    config: pytest.Config, workerinput: dict[str, object] | None, per_worker: int | None
) -> int | None:
    from pytest_llmbench.workers import settle_workers

    return settle_workers(
        config.stash.get(EARLY_PIN_KEY, None),
        None if workerinput is None else str(workerinput["workerid"]),
        per_worker,
        getattr(config.option, "numprocesses", None),
    )


@pytest.hookimpl(optionalhook=True, tryfirst=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """``-n auto`` with ``--llm-gpus-per-worker K``: one worker per K GPUs, not one per core."""
    import os

    from pytest_llmbench import workers

    try:
        per_worker = workers.early_gpus_per_worker(
            config.getoption(workers.DEST), config.getini(workers.DEST)
        )
    except ConfigError as exc:
        raise pytest.UsageError(str(exc)) from None
    if not per_worker:
        return None
    return workers.auto_workers(os.environ, per_worker, workers.nvml_device_count())


def pytest_unconfigure(config: pytest.Config) -> None:
    session = config.stash.get(SESSION_KEY, None)
    if session is not None:
        session.close()
    from pytest_llmbench import interrupt

    interrupt.uninstall()


def _session(config: pytest.Config) -> LLMBenchSession:
    return config.stash[SESSION_KEY]


# -- parametrisation -------------------------------------------------------------------------------
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # One parametrisation per test: a test with both fixtures gets the name from the engine's.
    for fixture in (BACKEND_FIXTURE, NAME_FIXTURE):
        if fixture in metafunc.fixturenames:
            backends = list(_session(metafunc.config).backends)
            metafunc.parametrize(fixture, backends, indirect=True, ids=backends)
            return


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run each backend's tests together (engines load once) and keep them on one xdist worker."""
    order = {name: i for i, name in enumerate(_session(config).backends)}

    def backend_of(item: pytest.Item) -> str | None:
        callspec = getattr(item, "callspec", None)
        if callspec is None:
            return None
        return callspec.params.get(BACKEND_FIXTURE) or callspec.params.get(NAME_FIXTURE)

    for item in items:
        name = backend_of(item)
        if name is not None:
            item.add_marker(pytest.mark.xdist_group(f"llmbench-{name}"))
    items.sort(key=lambda item: order.get(backend_of(item) or "", -1))


# -- fixtures --------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def llm_config(request: pytest.FixtureRequest) -> ExperimentConfig:
    """The session's validated ExperimentConfig."""
    return _session(request.config).config


def _required_parameters(request: pytest.FixtureRequest) -> tuple[str, ...]:
    """The universal parameters the test's ``llm_requires`` markers name; a name that is not one
    fails the test with the closest valid names."""
    from pytest_llmbench import compat

    required = tuple(p for marker in request.node.iter_markers("llm_requires") for p in marker.args)
    for parameter in required:
        problem = compat.unknown_parameter(parameter)
        if problem:
            message = f"@pytest.mark.llm_requires({parameter!r}): {parameter} {problem}"
            pytest.fail(message, pytrace=False)
    return required


@pytest.fixture
def llm_backend(request: pytest.FixtureRequest) -> EngineHandle:
    """The started engine of the backend this test instance is parametrised with."""
    session = _session(request.config)
    name: str = request.param
    required = _required_parameters(request)
    # Skip or fail after the except block: inside it, pytest prints the message twice, chained.
    try:
        # A missing engine is the first thing to say: it explains every test of that backend.
        reason = session.registry.unavailable_reason(name) or session.check_parameters(
            name, required
        )
        if not reason:
            handle = session.engine(name)
            _record_probe(request, session, handle)
            return handle
        failure = None
    except BackendUnavailable as exc:
        reason, failure = str(exc), None
    except (UnsupportedParameter, EngineError, ConfigError) as exc:
        failure = str(exc)
    if failure is not None:
        pytest.fail(failure, pytrace=False)
    pytest.skip(reason or "")


def _record_probe(
    request: pytest.FixtureRequest, session: LLMBenchSession, handle: EngineHandle
) -> None:
    """Measure the engine's quality once and put its probe on this test's report, which pytest
    and pytest-xdist carry to the collector (``agreement`` is computed there, at session end)."""
    from pytest_llmbench.quality.probe import PROBE_PROPERTY

    quality = session.quality(handle)
    if not handle.probe_recorded:
        handle.probe_recorded = True
        request.node.user_properties.append((PROBE_PROPERTY, quality.probe.to_dict()))


@pytest.fixture
def llm_backend_name(request: pytest.FixtureRequest) -> str:
    """The backend this test instance is parametrised with, without starting (or importing) it.

    For tests of declarations and translations, which hold whether or not the engine is
    installed. ``llm_requires`` markers and the ``--llm-unsupported`` policy apply as for
    ``llm_backend``.
    """
    name: str = getattr(request, "param", None) or request.node.callspec.params[BACKEND_FIXTURE]
    required = _required_parameters(request)
    try:
        reason = _session(request.config).check_parameters(name, required)
        failure = None
    except UnsupportedParameter as exc:
        reason, failure = None, str(exc)
    if failure is not None:
        pytest.fail(failure, pytrace=False)
    if reason:
        pytest.skip(reason)
    return name


@pytest.fixture
def llm_bench(request: pytest.FixtureRequest, llm_backend: EngineHandle) -> Iterator[LLMBench]:
    """Call with a workload (or overrides of the default one) to measure and record a result."""
    from pytest_llmbench.fixture import LLMBench

    config = request.config
    keep_samples = _session(config).options.keep_samples

    def record(result: BenchmarkResult) -> None:
        # The report keeps summaries (exact percentiles, histograms) unless samples were asked
        # for: its size, and what travels from xdist workers, must not grow with tokens measured.
        kept = result if keep_samples else result.without_samples()
        request.node.user_properties.append((USER_PROPERTY, kept.to_dict()))
        config.hook.pytest_llmbench_result(result=result)

    from pytest_llmbench.progress import TerminalProgress

    def progress(test_id: str) -> TerminalProgress:
        return TerminalProgress(config, test_id)

    yield LLMBench(_session(config), llm_backend, request.node.nodeid, record, progress)


@pytest.fixture
def energy(request: pytest.FixtureRequest) -> EnergyProbe:
    """Measure energy around any code: ``with energy.measure() as m: ...``, then ``m.joules``
    where ``m.available`` (``m.reason`` otherwise).

    ``energy.available`` / ``energy.reason`` tell before measuring; ``energy.require()`` skips the
    test, with the reason, where no meter is readable; reading ``m.joules`` without a reading
    raises EnergyUnavailableError (never a made-up number). See docs/writing-benchmarks.md.
    """
    from pytest_llmbench.energy.probe import EnergyProbe

    session = _session(request.config)
    try:
        meter, note = session.fixture_meter()
        return EnergyProbe(meter, note)
    except ConfigError as exc:
        failure = str(exc)
    pytest.fail(failure, pytrace=False)  # outside the except block: said once, not chained
