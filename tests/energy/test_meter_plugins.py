"""Third-party energy meters: the hook, the entry-point group, and a session that uses one."""

from __future__ import annotations

import json
import textwrap

import pytest

from pytest_llmbench.energy.base import NotReadable
from pytest_llmbench.energy.plugins import BUILT_IN, MeterRegistry, MeterRequest
from pytest_llmbench.energy.select import CHOICES
from pytest_llmbench.errors import ConfigError, LLMBenchError

from ..conftest import ECHO_BACKEND_CONFTEST

# A meter whose counter advances one update (2 J) each time the runner asks: deterministic, no
# hardware. Windows need 3 updates, so every repetition repeats the workload 3 times.
FAKE_METER = textwrap.dedent(
    """
    from pytest_llmbench.energy.base import DeviceInfo, EnergyReading, NotReadable

    REQUESTS = []

    class FakeWindow:
        def __init__(self):
            self.seen = 0

        def elapsed_s(self):
            return self.seen * 0.1

        def updates(self):
            self.seen += 1
            return self.seen

        def stop(self):
            return EnergyReading("fake-counter", self.seen * 0.1, 2.0 * self.seen,
                                 {"FAKE-1": 2.0 * self.seen}, FakeMeter.devices, self.seen)

    class FakeMeter:
        method = "fake-counter"
        min_updates = 3
        devices = (DeviceInfo(0, "Fake meter", "FAKE-1"),)
        idle = None
        closed = 0

        def start(self):
            return FakeWindow()

        def describe(self):
            return "fake-counter on Fake meter"

        def close(self):
            type(self).closed += 1

    def fake(request):
        REQUESTS.append(request)
        return FakeMeter()

    def unreadable(request):
        raise NotReadable("the fake wall meter is unplugged")

    def pytest_llmbench_register_energy_meters():
        return {"fake": fake, "unplugged": unreadable}
    """
)


@pytest.fixture
def meter_pytester(echo_pytester: pytest.Pytester) -> pytest.Pytester:
    echo_pytester.makeconftest(ECHO_BACKEND_CONFTEST + FAKE_METER)
    return echo_pytester


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_inprocess(
        "--llm-backend", "echo", "--llm-repeat", "2", "--llm-warmup", "0",
        "--llm-energy-idle", "0", "--llm-json", "r.json", *args,
    )  # fmt: skip


def test_a_named_plugin_meter_measures_like_a_built_in(meter_pytester: pytest.Pytester) -> None:
    result = run(meter_pytester, "--llm-energy", "fake")
    result.assert_outcomes(passed=1)
    (res,) = json.loads((meter_pytester.path / "r.json").read_text())["results"]
    assert res["energy_method"] == "fake-counter"
    for rep in res["repetitions"]:
        assert rep["iterations"] == 3  # the minimum-window rule, driven by the plugin's updates
        assert rep["energy"]["energy_j"] == pytest.approx(6.0)
        assert rep["energy"]["devices"][0]["uuid"] == "FAKE-1"
    assert res["aggregate"]["energy_per_output_token"] == pytest.approx(6.0 / (3 * 20))
    summary = result.stdout.str().split("llmbench summary")[1].splitlines()
    # the echo backend scores no text: its quality line says so; energy must not
    assert "unavailable" not in "\n".join(s for s in summary if not s.startswith("quality:"))


def test_auto_never_picks_a_plugin_meter(meter_pytester: pytest.Pytester) -> None:
    run(meter_pytester).assert_outcomes(passed=1)
    (res,) = json.loads((meter_pytester.path / "r.json").read_text())["results"]
    assert res["energy_method"] != "fake-counter"


def test_unknown_meter_lists_built_ins_and_plugins(meter_pytester: pytest.Pytester) -> None:
    result = run(meter_pytester, "--llm-energy", "nosuch")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "*--llm-energy: 'nosuch' is not one of auto, nvml, nvml-power, rapl, none, "
            "fake, unplugged"
        ]
    )


def test_unreadable_plugin_meter_is_a_usage_error(meter_pytester: pytest.Pytester) -> None:
    result = run(meter_pytester, "--llm-energy", "unplugged")
    assert result.ret == pytest.ExitCode.USAGE_ERROR  # at configure, before any test runs
    assert (
        result.stderr.lines[0] == "ERROR: --llm-energy: unplugged: the fake wall meter is unplugged"
    )
    assert "test_bench.py" not in result.stdout.str()


def test_a_name_clash_is_a_usage_error(meter_pytester: pytest.Pytester) -> None:
    meter_pytester.makepyfile(
        clash="def pytest_llmbench_register_energy_meters():\n    return {'rapl': print}\n"
    )
    meter_pytester.syspathinsert()
    result = run(meter_pytester, "-p", "clash")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*meter name 'rapl' from hook in *clashes with the built-in*"])


def test_registry_rules() -> None:
    assert BUILT_IN == CHOICES  # one list of built-ins for the option and the selector
    registry = MeterRegistry.discover([{"a": lambda r: None}, None])  # type: ignore[dict-item]
    with pytest.raises(ConfigError, match="'a' is registered twice"):
        registry.add("a", lambda r: None, "another plugin")  # type: ignore[arg-type,return-value]
    registry.check_choice("a")
    registry.check_choice("nvml")
    with pytest.raises(ConfigError, match="'b' is not one of auto, .*, none, a$"):
        registry.check_choice("b")
    request = MeterRequest((0,), 0.05, None)
    with pytest.raises(LLMBenchError, match="returned NoneType, which does not implement"):
        registry.create("a", request)

    def unreadable(request: MeterRequest) -> None:
        raise NotReadable("no PDU")

    registry.add("pdu", unreadable, "test")  # type: ignore[arg-type]
    with pytest.raises(LLMBenchError, match="^--llm-energy pdu: no PDU$"):
        registry.create("pdu", request)


def test_entry_points_load_only_when_chosen(monkeypatch: pytest.MonkeyPatch) -> None:
    from importlib.metadata import EntryPoint

    from pytest_llmbench.energy import plugins

    broken = EntryPoint("ep", "no_such_module_anywhere:factory", plugins.ENTRY_POINT_GROUP)
    monkeypatch.setattr(plugins, "entry_points", lambda group: [broken])
    registry = MeterRegistry.discover()  # listing it imports nothing
    assert registry.names() == ["ep"]
    with pytest.raises(LLMBenchError, match="^--llm-energy ep: cannot load entry point no_such"):
        registry.create("ep", MeterRequest(None, 0.05, None))
