"""Installed stand-ins for SGLang: a ``sglang`` package with its metadata, written into a folder.

Unlike the ``sys.modules`` stand-in of ``test_adapters.py``, these are real files on ``sys.path``
with a ``sglang-<version>.dist-info``, so that what the plugin reads from package metadata (in the
pytest process) and what it imports (in the engine's own, spawned process) both see them.

The engine module follows sglang 0.5.16's layout and output shapes
(``sglang/srt/entrypoints/engine.py``: ``Engine(**server_args)`` with ``loop``, ``generate``,
``async_generate(stream=True)``, ``shutdown``; dicts with ``output_ids`` and
``meta_info.completion_tokens`` / ``finish_reason``). Like SGLang it starts a scheduler process.
Faults come from ``$SGLANG_STANDIN_DIR``: the engine appends its pid to ``engines`` and its
scheduler's pid to ``schedulers``; a file ``next`` holding ``sigkill`` makes the next call kill
the engine's own process, as SGLang's watchdog does (SIGQUIT, then ``kill_process_tree`` of
itself) when its scheduler crashes.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

ENGINE = textwrap.dedent(
    """
    import asyncio, os, signal, subprocess, sys
    from pathlib import Path

    def _dir():
        return Path(os.environ["SGLANG_STANDIN_DIR"])

    def _fault():
        path = _dir() / "next"
        if path.exists():
            what = path.read_text()
            path.unlink()
            if what == "sigkill":
                os.kill(os.getpid(), signal.SIGKILL)

    def _finish(n):
        return {"type": "length", "length": n}

    class Engine:
        def __init__(self, **kwargs):
            self.server_args = kwargs
            sleeper = [sys.executable, "-c", "import time; time.sleep(600)"]
            self.scheduler = subprocess.Popen(sleeper)
            with (_dir() / "engines").open("a") as f:
                f.write(f"{os.getpid()}\\n")
            with (_dir() / "schedulers").open("a") as f:
                f.write(f"{self.scheduler.pid}\\n")
            try:
                self.loop = asyncio.get_running_loop()
            except RuntimeError:
                self.loop = asyncio.new_event_loop()
                asyncio.set_event_loop(self.loop)

        def generate(self, prompt=None, sampling_params=None, input_ids=None, **kwargs):
            _fault()
            out = []
            for params in sampling_params:
                n = params["max_new_tokens"]
                out.append({"text": "", "output_ids": list(range(n)),
                            "meta_info": {"completion_tokens": n, "finish_reason": _finish(n)}})
            return out

        async def async_generate(self, prompt=None, sampling_params=None, input_ids=None,
                                 stream=False, **kwargs):
            _fault()
            n = sampling_params["max_new_tokens"]

            async def chunks():
                ids = []  # cumulative, handed over live as SGLang does
                for i in range(n):
                    await asyncio.sleep(0)
                    ids.append(i)
                    done = _finish(n) if i == n - 1 else None
                    yield {"text": None, "output_ids": ids,
                           "meta_info": {"completion_tokens": i + 1, "finish_reason": done}}

            return chunks()

        def shutdown(self):
            self.scheduler.kill()
            self.scheduler.wait()
    """
)


def write_sglang(
    site: Path,
    *,
    version: str = "0.5.16",
    requires: tuple[str, ...] = (),
    init: str = "",
    engine: str | None = ENGINE,
) -> Path:
    """A ``sglang`` package and its dist-info under ``site``; ``init`` is prepended to
    ``sglang/__init__.py``, ``engine`` is ``sglang/srt/entrypoints/engine.py`` (None: absent)."""
    package = site / "sglang"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(f"{init}\n__version__ = {version!r}\n")
    if engine is not None:
        module = package / "srt" / "entrypoints"
        module.mkdir(parents=True)
        for folder in (package / "srt", module):
            (folder / "__init__.py").write_text("")
        (module / "engine.py").write_text(engine)
    write_metadata(site, "sglang", version, requires)
    return site


def write_metadata(site: Path, name: str, version: str, requires: tuple[str, ...] = ()) -> None:
    """A minimal ``<name>-<version>.dist-info`` (what importlib.metadata reads)."""
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    lines += [f"Requires-Dist: {r}" for r in requires]
    (info / "METADATA").write_text("\n".join(lines) + "\n")
