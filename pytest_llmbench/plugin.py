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

SESSION_KEY = pytest.StashKey["LLMBenchSession"]()
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
        if workerinput is not None and options.gpus_per_worker:
            from pytest_llmbench.workers import pin_current_worker

            pin_current_worker(workerinput["workerid"], options.gpus_per_worker)
        registry = Registry.discover(config.hook.pytest_llmbench_register_backends())
        meters = MeterRegistry.discover(config.hook.pytest_llmbench_register_energy_meters())
        config.stash[SESSION_KEY] = LLMBenchSession.create(options, registry, meters)
    except ConfigError as exc:
        raise pytest.UsageError(str(exc)) from None
    if not hasattr(config, "workerinput"):  # the xdist controller or a plain session
        from pytest_llmbench.baseline import BaselinePlan
        from pytest_llmbench.collector import ResultCollector
        from pytest_llmbench.errors import LLMBenchError

        b = options.baseline
        try:
            # Before any benchmark runs: a bad rule or a missing/corrupt baseline fails now.
            plan = BaselinePlan.create(
                compare=b.compare,
                fail_on=list(b.fail_on) or None,
                allow_mixed=b.allow_mixed,
                save=b.save,
                autosave=b.autosave,
                storage_root=b.storage,
            )
        except LLMBenchError as exc:
            raise pytest.UsageError(str(exc)) from None
        config.pluginmanager.register(
            ResultCollector(options.json_path, plan, html_path=options.html_path),
            ResultCollector.PLUGIN_NAME,
        )


def pytest_unconfigure(config: pytest.Config) -> None:
    session = config.stash.get(SESSION_KEY, None)
    if session is not None:
        session.close()


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
    """The universal parameters the test's ``llm_requires`` markers name."""
    return tuple(p for marker in request.node.iter_markers("llm_requires") for p in marker.args)


@pytest.fixture
def llm_backend(request: pytest.FixtureRequest) -> EngineHandle:
    """The started engine of the backend this test instance is parametrised with."""
    session = _session(request.config)
    name: str = request.param
    required = _required_parameters(request)
    try:
        # A missing engine is the first thing to say: it explains every test of that backend.
        reason = session.registry.unavailable_reason(name) or session.check_parameters(
            name, required
        )
        if reason:
            pytest.skip(reason)
        return session.engine(name)
    except BackendUnavailable as exc:
        pytest.skip(str(exc))
    except UnsupportedParameter as exc:
        pytest.fail(str(exc), pytrace=False)
    except EngineError as exc:
        pytest.fail(str(exc), pytrace=False)
    except ConfigError as exc:
        pytest.fail(str(exc), pytrace=False)


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
    except UnsupportedParameter as exc:
        pytest.fail(str(exc), pytrace=False)
    if reason:
        pytest.skip(reason)
    return name


@pytest.fixture
def llm_bench(request: pytest.FixtureRequest, llm_backend: EngineHandle) -> Iterator[LLMBench]:
    """Call with a workload (or overrides of the default one) to measure and record a result."""
    from pytest_llmbench.fixture import LLMBench

    config = request.config

    def record(result: BenchmarkResult) -> None:
        request.node.user_properties.append((USER_PROPERTY, result.to_dict()))
        config.hook.pytest_llmbench_result(result=result)

    yield LLMBench(_session(config), llm_backend, request.node.nodeid, record)


@pytest.fixture
def energy(request: pytest.FixtureRequest) -> EnergyProbe:
    """Measure energy around any code: ``with energy.measure() as m: ...; m.joules``.

    ``energy.require()`` skips the test, with the reason, where no meter is readable; reading
    ``m.joules`` without a meter raises EnergyUnavailableError (never a made-up number).
    """
    from pytest_llmbench.energy.probe import EnergyProbe

    session = _session(request.config)
    try:
        meter, note = session.fixture_meter()
    except ConfigError as exc:
        pytest.fail(str(exc), pytrace=False)
    return EnergyProbe(meter, note)
