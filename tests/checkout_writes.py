"""The plugin's own tests write only under tmp paths: what they wrote into the checkout's out/.

``out/`` is where users keep reports (the README's ``--llm-json out/report.json``); a test that
writes there overwrites a user's files. The session's own ``--llm-json``/``--llm-html`` targets
are the user's request and are allowed.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

WATCHED = "out"


def snapshot(root: Path, watched: str = WATCHED) -> dict[str, int]:
    """Path relative to ``root`` -> mtime in ns, of every file under ``root/watched``."""
    files: dict[str, int] = {}
    for folder, _, names in os.walk(root / watched):
        for name in names:
            path = Path(folder, name)
            try:
                files[path.relative_to(root).as_posix()] = path.stat().st_mtime_ns
            except OSError:  # removed meanwhile
                continue
    return files


def written_since(
    before: dict[str, int], after: dict[str, int], root: Path, allowed: Iterable[str]
) -> list[str]:
    """Files created or changed between the snapshots, except the ``allowed`` paths (as typed:
    relative to the current folder, or absolute)."""
    own = {os.path.realpath(p) for p in allowed if p}
    return sorted(
        path
        for path, mtime in after.items()
        if before.get(path) != mtime and os.path.realpath(root / path) not in own
    )
