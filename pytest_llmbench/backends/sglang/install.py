"""Whether the installed SGLang can run here: its metadata checked, then its engine imported.

SGLang pins the torch its compiled kernels were built against and its kernel package
(``sglang-kernel``; ``sgl-kernel`` before 0.5) to exact versions. Another torch fails deep inside
the engine process (undefined symbols in ``sgl_kernel``), a missing or older kernel package at
``Engine`` start (SGLang's own version assertion); an incomplete install fails at import with
a ModuleNotFoundError from one of the engine's many modules. Each becomes one line naming the
package and its version, so that tests skip with it instead of failing with a traceback.

:func:`sglang_problem` reads package metadata only (cheap, nothing imported: it runs in the pytest
process); :func:`import_engine` imports the engine module, in the engine's own process.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
from collections.abc import Iterator
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from pytest_llmbench.errors import BackendUnavailable

NOT_INSTALLED = "sglang is not installed: pip install pytest-llmbench[sglang]"
# Requirements of sglang its compiled parts were built against (checked as in _close_enough).
BINARY_PINS = frozenset({"torch", "sglang-kernel", "sgl-kernel"})
ENGINE_MODULE = "sglang.srt.entrypoints.engine"


def installed_version(name: str) -> str | None:
    """The version of distribution ``name`` importable here, or None."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def sglang_problem() -> str | None:
    """Why the installed SGLang cannot run here (one line), or None as far as metadata tells."""
    if importlib.util.find_spec("sglang") is None:
        return NOT_INSTALLED
    try:
        dist = importlib.metadata.distribution("sglang")
    except importlib.metadata.PackageNotFoundError:
        return None  # a source tree on sys.path: no metadata to compare; the import decides
    version = dist.version
    for req, name, found, met in _requirements(dist, only=BINARY_PINS):
        wanted = f"{name}{req.specifier}"
        if found is None:
            hint = f"pip install '{wanted}'"
            return f"sglang {version} needs {wanted}, which is not installed: {hint}"
        if met is False:
            return f"sglang {version} needs {wanted}, but {name} {found} is installed"
    return None


def _requirements(
    dist: importlib.metadata.Distribution, only: frozenset[str] | None = None
) -> Iterator[tuple[Requirement, str, str | None, bool | None]]:
    """Each requirement of ``dist`` that applies here (another platform's or an extra's is left
    out), restricted to the names in ``only``: the requirement, its canonical name, the installed
    version (None: not installed) and whether that version meets it (None: not comparable)."""
    for line in dist.requires or ():
        try:
            req = Requirement(line)
        except InvalidRequirement:
            continue
        name = canonicalize_name(req.name)
        if only is not None and name not in only:
            continue
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        found = installed_version(name)
        met: bool | None = None
        if found is not None:
            try:
                met = req.specifier.contains(found, prereleases=True) or (
                    name in BINARY_PINS and _close_enough(req, found)
                )
            except InvalidVersion:
                met = None
        yield req, name, found, met


def _close_enough(req: Requirement, found: str) -> bool:
    """An exact pin met the way SGLang itself checks it: torch by release (a vendor container's
    ``2.11.0a0+git1234`` is a build of 2.11.0), the kernel package as a minimum (``Engine`` start
    asserts ``sglang-kernel >= 0.4.5``, not equality)."""
    pins = [s.version for s in req.specifier if s.operator == "=="]
    if len(pins) != 1 or "*" in pins[0]:
        return False
    pinned, have = Version(pins[0]), Version(found)
    if canonicalize_name(req.name) == "torch":
        return have.release == pinned.release
    return have >= pinned


def import_engine() -> Any:
    """``sglang.Engine``, with its module imported now; BackendUnavailable (one line) if it fails.

    Any exception counts: a broken install raises ImportError, OSError (a shared library) or
    RuntimeError (a version check) from third-party code, none of it ours.
    """
    version = installed_version("sglang") or "(version unknown)"
    try:
        import sglang

        try:
            module = importlib.import_module(ENGINE_MODULE)
        except ModuleNotFoundError as exc:
            if exc.name is None or not f"{ENGINE_MODULE}.".startswith(f"{exc.name}."):
                raise
            return sglang.Engine  # a release that keeps the engine elsewhere
        return module.Engine
    except Exception as exc:
        unmet = unmet_requirements()
        note = f"; its requirements not met here: {', '.join(unmet)}" if unmet else ""
        raise BackendUnavailable(
            f"sglang {version} is installed but cannot be imported: {_first_line(exc)}{note}"
        ) from exc


def unmet_requirements() -> list[str]:
    """sglang's declared requirements that the installed packages do not meet, e.g.
    ``transformers==5.12.1 (5.17.0 installed)``: the likely cause when its import fails.

    Only installed packages are compared (a missing one shows up in the import error itself).
    sglang 0.5.16 under transformers 5.17 fails at import: it registers a config name that newer
    transformers already has.
    """
    try:
        dist = importlib.metadata.distribution("sglang")
    except importlib.metadata.PackageNotFoundError:
        return []
    unmet = [
        f"{req.name}{req.specifier} ({found} installed)"
        for req, _, found, met in _requirements(dist)
        if met is False
    ]
    return unmet


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[0] if lines else "(no message)"
    if len(text) > 300:
        text = text[:297] + "..."
    return f"{type(exc).__name__}: {text}"
