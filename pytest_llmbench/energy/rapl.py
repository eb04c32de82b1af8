"""Intel RAPL through /sys/class/powercap: CPU package and DRAM energy, for backends on the CPU.

Counted: every ``package-N`` domain (cores, uncore, integrated GPU) and every ``dram`` domain.
Not counted: ``core``/``uncore`` subdomains (inside the package already) and ``psys`` (the whole
SoC on client parts: it would count the package twice). ``energy_uj`` wraps at
``max_energy_range_uj`` (tens of minutes at server power), which the counter window unwraps. Since
the 2020 advisory (CVE-2020-8694, "Platypus") ``energy_uj`` is readable by root only.

RAPL counters change about every millisecond, so every poll sees an update: the window's power
trace (:mod:`pytest_llmbench.energy.trace`) is the energy between polls over the time between them.
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pytest_llmbench.energy.base import DeviceInfo, NotReadable, min_polls
from pytest_llmbench.energy.counter import CounterMeter

METHOD = "rapl"
POWERCAP = Path("/sys/class/powercap")
DEFAULT_POLL_INTERVAL_S = 0.1
_ZONE = re.compile(r"^intel-rapl:(\d+)(?::(\d+))?$")

ReadText = Callable[[Path], str]


def _read_sysfs(path: Path) -> str:
    return path.read_text()


def _read(read_text: ReadText, path: Path) -> str:
    try:
        return read_text(path).strip()
    except PermissionError as exc:
        raise NotReadable(
            f"permission denied on {path} (root-only since the 2020 RAPL advisory, "
            "CVE-2020-8694; run as root or grant read access to energy_uj)"
        ) from exc
    except OSError as exc:
        raise NotReadable(f"cannot read {path}: {exc.strerror or exc}") from exc


@dataclass(frozen=True)
class RaplChannel:
    """One RAPL domain's ``energy_uj`` (microjoules), wrapping at ``max_energy_range_uj``."""

    path: Path  # the zone directory, e.g. /sys/class/powercap/intel-rapl:0
    device: DeviceInfo
    wrap: int | None
    read_text: ReadText = _read_sysfs
    unit_j: float = 1e-6

    def read(self) -> int:
        text = _read(self.read_text, self.path / "energy_uj")
        try:
            return int(text)
        except ValueError as exc:
            raise NotReadable(f"{self.path / 'energy_uj'} holds {text!r}, not microjoules") from exc


def rapl_channels(root: Path = POWERCAP, *, read_text: ReadText = _read_sysfs) -> list[RaplChannel]:
    """The package and DRAM domains under ``root``, each read once; NotReadable says why not."""
    zones = []
    if root.is_dir():
        for entry in root.iterdir():
            match = _ZONE.match(entry.name)
            if match:
                zones.append((int(match[1]), -1 if match[2] is None else int(match[2]), entry))
    if not zones:
        raise NotReadable(
            f"no intel-rapl zones under {root} (no RAPL driver, a VM, or a container "
            "without /sys/class/powercap)"
        )
    host = socket.gethostname()
    channels = []
    for package, sub, path in sorted(zones):
        name = _read(read_text, path / "name")
        if not (name.startswith("package") or name == "dram"):
            continue  # core/uncore lie inside the package; psys would count it twice
        label = name if sub < 0 else f"package-{package}/{name}"
        max_range = _read(read_text, path / "max_energy_range_uj")
        channel = RaplChannel(
            path,
            DeviceInfo(package, label, f"rapl:{host}:{path.name}"),
            int(max_range) + 1 if max_range.isdigit() else None,
            read_text,
        )
        channel.read()  # permission problems surface now, not inside the first window
        channels.append(channel)
    if not channels:
        raise NotReadable(f"no package or dram RAPL domain under {root}")
    return channels


def rapl_meter(
    root: Path = POWERCAP,
    *,
    poll_interval_s: float = DEFAULT_POLL_INTERVAL_S,
    min_updates: int | None = None,
    read_text: ReadText = _read_sysfs,
    clock: Callable[[], float] = time.perf_counter,
    background: bool = True,
) -> CounterMeter:
    """A counter meter over RAPL package + DRAM energy; ``min_updates`` counts changed polls.

    RAPL counters change every ~1 ms, so the minimum window is about time: by default
    base.MIN_WINDOW_S worth of polls.
    """
    return CounterMeter(
        METHOD,
        rapl_channels(root, read_text=read_text),
        min_updates=min_polls(poll_interval_s) if min_updates is None else min_updates,
        interval_s=poll_interval_s,
        clock=clock,
        background=background,
    )
