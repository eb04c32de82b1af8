"""Third-party energy meters: named factories from our hook or from an entry-point group.

A plugin (a conftest, or a package) adds a meter with ``pytest_llmbench_register_energy_meters``
returning ``{name: factory}``, or an entry point in the group ``pytest_llmbench.energy_meters``
(``name = "package.module:factory"``, loaded only when that name is chosen). The factory gets a
:class:`MeterRequest` and returns a meter that implements :class:`~.base.DeviceMeter`, or raises
:class:`~.base.NotReadable` with the reason.

A plugin meter is used only when named (``--llm-energy NAME``): ``auto`` keeps the built-in
order, so no session starts measuring with code the user did not ask for.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points

from pytest_llmbench.energy.base import DeviceMeter, NotReadable
from pytest_llmbench.energy.select import CHOICES as BUILT_IN
from pytest_llmbench.energy.select import OPTION
from pytest_llmbench.errors import ConfigError, LLMBenchError

ENTRY_POINT_GROUP = "pytest_llmbench.energy_meters"


@dataclass(frozen=True)
class MeterRequest:
    """What the session knows when it needs a meter, as the built-in meters get it."""

    cuda_devices: tuple[int, ...] | None  # CUDA ordinals; () a CPU backend; None every device
    sample_interval_s: float  # --llm-energy-interval
    min_updates: int | None  # --llm-min-energy-window; None: the meter's own default


MeterFactory = Callable[[MeterRequest], DeviceMeter]


class MeterRegistry:
    """Plugin meters by name; a name taken twice (or a built-in's) is a usage error."""

    def __init__(self) -> None:
        self._targets: dict[str, MeterFactory | EntryPoint] = {}
        self._origins: dict[str, str] = {}

    @classmethod
    def discover(
        cls, hook_results: Iterable[Mapping[str, MeterFactory] | None] = ()
    ) -> MeterRegistry:
        registry = cls()
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            registry.add(ep.name, ep, f"entry point {ep.value}")
        for mapping in hook_results:
            for name, factory in (mapping or {}).items():
                origin = getattr(factory, "__module__", None) or repr(factory)
                registry.add(name, factory, f"hook in {origin}")
        return registry

    def add(self, name: str, target: MeterFactory | EntryPoint, origin: str) -> None:
        if name in BUILT_IN:
            raise ConfigError(
                OPTION, f"meter name {name!r} from {origin} clashes with the built-in {name!r}"
            )
        if name in self._targets:
            raise ConfigError(
                OPTION,
                f"meter name {name!r} is registered twice: by {self._origins[name]} and {origin}",
            )
        self._targets[name] = target
        self._origins[name] = origin

    def names(self) -> list[str]:
        return list(self._targets)

    def check_choice(self, choice: str) -> None:
        """ConfigError listing every meter when ``choice`` names none."""
        if choice not in BUILT_IN and choice not in self._targets:
            known = ", ".join([*BUILT_IN, *self._targets])
            raise ConfigError(OPTION, f"{choice!r} is not one of {known}")

    def create(self, name: str, request: MeterRequest) -> tuple[DeviceMeter, str]:
        """The plugin's meter and the summary's line; LLMBenchError when it cannot read."""
        target = self._targets[name]
        try:
            factory: MeterFactory = target.load() if isinstance(target, EntryPoint) else target
        except Exception as exc:  # an entry point that does not import is the plugin's bug
            raise LLMBenchError(
                f"{OPTION} {name}: cannot load {self._origins[name]}: {exc}"
            ) from exc
        try:
            meter = factory(request)
        except NotReadable as exc:
            raise LLMBenchError(f"{OPTION} {name}: {exc.reason}") from exc
        if not isinstance(meter, DeviceMeter):
            raise LLMBenchError(
                f"{OPTION} {name}: {self._origins[name]} returned {type(meter).__name__}, "
                "which does not implement DeviceMeter (method, min_updates, start, describe, "
                "idle, devices, close)"
            )
        return meter, f"{OPTION} {name}: {meter.describe()}"
