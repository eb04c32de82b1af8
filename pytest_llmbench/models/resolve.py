"""One resolution of the session's model, and what each engine receives from it.

``resolve_model`` runs once, at ``pytest_configure``: a local directory or ``.gguf`` file is
checked, a Hugging Face id becomes a snapshot folder of the cache and a commit
(:mod:`.hub`). Every backend is then fed from the same :class:`ResolvedModel`:

- pytorch, vLLM, SGLang and TensorRT-LLM a local model directory (an engine never resolves an id,
  or downloads, on its own);
- llama.cpp a GGUF: the ``.gguf`` file given, the repository's file picked by ``:FILE.gguf`` or
  ``:QUANT``, the only ``.gguf`` of a repository without safetensors weights, else the model
  directory, which the llamacpp backend converts (:mod:`pytest_llmbench.backends.llamacpp`);
- the openai backend the model directory for its tokenizer (and, for a managed server, what that
  engine needs); the model name it sends is the server's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pytest_llmbench.errors import ConfigError
from pytest_llmbench.models.context import ContextLimit, model_context
from pytest_llmbench.models.hub import HubError, fetch_snapshot
from pytest_llmbench.models.reference import ModelRef, parse_model_ref

Kind = Literal["embedded", "local", "hub"]
GGUF_BACKENDS = ("llamacpp",)  # in process; the openai backend's llamacpp server counts too


@dataclass(frozen=True)
class ResolvedModel:
    """Where the session's model lives and what it is called.

    ``directory``: the model directory (config.json, tokenizer, weights), None for a GGUF on its
    own; ``gguf``: the GGUF file llama.cpp loads, None where it converts ``directory``.
    """

    kind: Kind
    given: str | None  # as the user typed it; None for the embedded model
    directory: str | None
    gguf: str | None = None
    repo_id: str | None = None
    revision: str | None = None
    commit: str | None = None
    context: ContextLimit | None = None
    field: str = "model_name"  # what errors about it name: --llm-model or model_name
    source: str | None = None  # the file (or "command line") that set model_name, for errors
    notes: tuple[str, ...] = ()  # said once, as a warning, at session start

    @property
    def label(self) -> str:
        """What results call the model: the Hugging Face id, or the path as given."""
        if self.repo_id is not None:
            return self.repo_id
        return self.given or self.directory or ""

    @property
    def identity(self) -> str | None:
        """What pins the weights for the config hash, beyond the text typed: ``id@commit`` (and
        the GGUF picked) for a Hub model, so that two commits are two configs; None otherwise."""
        if self.repo_id is None:
            return None
        picked = f":{Path(self.gguf).name}" if self.gguf else ""
        return f"{self.repo_id}@{self.commit}{picked}"

    def engine_path(self, backend: str, server_kind: str | None = None) -> str:
        """The path ``backend`` loads (``server_kind``: the openai backend's managed server);
        ConfigError naming the model option when this model cannot run there."""
        wants_gguf = backend in GGUF_BACKENDS or (backend == "openai" and server_kind == "llamacpp")
        if wants_gguf and self.gguf is not None:
            return self.gguf
        if self.directory is not None:
            return self.directory
        engine = f"the openai backend's {server_kind} server" if backend == "openai" else backend
        what = (
            f"{self.given!r} is a GGUF file"
            if self.repo_id is None
            else (f"{self.label} has no config.json and safetensors weights, only GGUF files")
        )
        raise ConfigError(
            self.field,
            f"{what}, which only llama.cpp loads (--llm-backend llamacpp, or --llm-server "
            f"llamacpp); {engine} needs a model directory or a Hugging Face id with weights",
            self.source,
        )

    def tokenizer_path(self) -> str:
        """Where the harness's tokenizer loads from: the directory, else the GGUF file."""
        path = self.directory or self.gguf
        assert path is not None  # the embedded model's directory is set once built
        return path

    def section(self, engine_path: str) -> dict[str, Any]:
        """A result's ``model_source``: where the measured model came from (``engine_path``:
        what the engine loaded)."""
        return {
            "kind": self.kind,
            "name": self.label,
            "id": self.repo_id,
            "revision": self.revision,
            "commit": self.commit,
            "path": engine_path,
            "context": None if self.context is None else self.context.to_dict(),
        }


def embedded_model(directory: str | None, context: ContextLimit) -> ResolvedModel:
    """The embedded tiny model (``directory``: None until it is built, on first use)."""
    return ResolvedModel("embedded", None, directory, context=context)


def resolve_model(
    text: str, *, field: str, source: str | None = None, allow_download: bool = False
) -> ResolvedModel:
    """``text`` (``--llm-model`` / ``model_name``) resolved; ConfigError naming ``field`` (and
    the file that set it, ``source``) with one line that says what to do."""
    ref = parse_model_ref(text, field, source)
    if ref.path is not None:
        return _local(ref, field, source)
    try:
        snapshot = fetch_snapshot(ref, allow_download=allow_download)
    except HubError as exc:
        raise ConfigError(field, str(exc), source) from None
    directory: str | None = str(snapshot.path)
    if not (snapshot.path / "config.json").is_file():
        directory = None
    gguf = _pick_gguf(ref, snapshot.path, field, source, has_weights=directory is not None)
    if directory is None and gguf is None:
        raise ConfigError(
            field,
            f"{ref.text}: the snapshot {snapshot.path} has no config.json and no .gguf file; "
            "expected a transformers model repository or a GGUF one",
            source,
        )
    context = model_context(Path(directory)) if directory else None
    if context is None and gguf is not None:
        context = model_context(Path(gguf))
    return ResolvedModel(
        "hub",
        ref.text,
        directory,
        gguf,
        repo_id=snapshot.repo_id,
        revision=snapshot.revision,
        commit=snapshot.commit,
        context=context,
        field=field,
        source=source,
    )


def _local(ref: ModelRef, field: str, source: str | None) -> ResolvedModel:
    assert ref.path is not None
    notes: tuple[str, ...] = ()
    if ref.also_an_id:
        notes = (
            f"{field}: {ref.text!r} is a local folder and also reads as a Hugging Face id; the "
            "local folder is used (write ./" + ref.text + " to silence this, or move the folder)",
        )
    if ref.is_gguf_file:
        return ResolvedModel(
            "local", ref.text, None, ref.text, context=model_context(ref.path), field=field,
            source=source, notes=notes,
        )  # fmt: skip
    if not (ref.path / "config.json").is_file():
        raise ConfigError(
            field,
            f"{ref.text!r} has no config.json; expected a Hugging Face model directory (or a "
            ".gguf file, or a Hugging Face id)",
            source,
        )
    return ResolvedModel(
        "local",
        ref.text,
        ref.text,
        context=model_context(ref.path),
        field=field,
        source=source,
        notes=notes,
    )


def _pick_gguf(
    ref: ModelRef, snapshot: Path, field: str, source: str | None, has_weights: bool
) -> str | None:
    """The GGUF of the snapshot llama.cpp loads, as ``ref`` asks; None: convert the weights."""
    files = sorted(p.name for p in snapshot.glob("*.gguf"))
    if ref.gguf_file:
        if not (snapshot / ref.gguf_file).is_file():
            raise ConfigError(
                field,
                f"{ref.text}: the snapshot has no {ref.gguf_file} ({_listing(files)})",
                source,
            )
        return str(snapshot / ref.gguf_file)
    if ref.gguf_quant:
        wanted = ref.gguf_quant.lower()
        matches = [f for f in files if wanted in f.lower()]
        if len(matches) != 1:
            problem = "no .gguf file matches" if not matches else f"{len(matches)} files match"
            raise ConfigError(
                field,
                f"{ref.text}: {problem} {ref.gguf_quant!r} in the snapshot "
                f"({_listing(files)}); name one with :FILE.gguf",
                source,
            )
        return str(snapshot / matches[0])
    if not has_weights and len(files) > 1:
        raise ConfigError(
            field,
            f"{ref.text}: the snapshot holds several .gguf files ({_listing(files)}); pick one "
            f"with {ref.repo_id}:FILE.gguf or :QUANT (e.g. :Q8_0)",
            source,
        )
    if not has_weights and files:
        return str(snapshot / files[0])
    return None


def _listing(files: list[str]) -> str:
    return "its .gguf files: " + ", ".join(files) if files else "it has no .gguf file"
