"""What ``--llm-model`` / ``model_name`` names, read from the text alone (no cache, no network).

The forms:

- a path to a model directory (``config.json`` and weights) or to a ``.gguf`` file;
- a Hugging Face id, ``org/name`` or ``org/name@REVISION`` (a branch, a tag or a commit hash),
  optionally followed by ``:FILE.gguf`` (that file of the repository, for llama.cpp) or
  ``:QUANT`` (the repository's one ``.gguf`` file whose name holds QUANT, e.g. ``Q4_K_M``, the
  way llama.cpp's ``-hf org/name:QUANT`` picks one).

A path that exists always wins over an id spelled the same way; the caller says so once.
Ids are checked with huggingface_hub's own validator, so what the Hub would refuse is refused here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pytest_llmbench.errors import ConfigError

FORMS = "a model directory, a .gguf file, or a Hugging Face id (org/name[@REVISION][:FILE.gguf])"


@dataclass(frozen=True)
class ModelRef:
    """A parsed model reference. ``path`` for a local one; the ``repo_id`` fields for an id."""

    text: str
    path: Path | None = None  # an existing directory or file
    repo_id: str | None = None
    revision: str | None = None  # None: the repository's default branch
    gguf_file: str | None = None  # ``:FILE.gguf``
    gguf_quant: str | None = None  # ``:QUANT``
    also_an_id: bool = False  # a local path that would also read as a Hugging Face id

    @property
    def local(self) -> bool:
        return self.path is not None

    @property
    def is_gguf_file(self) -> bool:
        return self.path is not None and self.path.is_file()


def _looks_like_path(text: str) -> bool:
    """Spellings no Hugging Face id has: absolute, relative to ``.``/``~``, or deeper than one
    ``/`` before any ``@revision`` (revisions such as ``refs/pr/1`` hold slashes)."""
    repo = text.split("@", 1)[0]
    return text.startswith(("/", ".", "~", "\\")) or repo.count("/") > 1 or "\\" in repo


def _split_id(text: str) -> tuple[str, str | None, str | None]:
    """``org/name@rev:file`` -> (``org/name``, ``rev``, ``file``). Git refs cannot hold ``:``, so
    the last ``:`` starts the file part wherever the revision is."""
    head, colon, tail = text.rpartition(":")
    if not colon:
        head, tail = text, ""
    repo, at, revision = head.partition("@")
    return repo, (revision if at else None), (tail if colon else None)


def parse_model_ref(text: str, field: str, source: str | None = None) -> ModelRef:
    """Read ``text``; ConfigError naming ``field`` (``--llm-model`` or ``model_name``) when it is
    neither an existing path nor a well-formed Hugging Face id."""
    given = text.strip()
    if not given:
        raise ConfigError(field, f"is empty; expected {FORMS}", source)
    path = Path(given).expanduser()
    if path.exists():
        if not (path.is_dir() or path.is_file()):
            raise ConfigError(field, f"{given!r} is neither a directory nor a file", source)
        if path.is_file() and path.suffix != ".gguf":
            raise ConfigError(
                field, f"{given!r} is a file but not a .gguf file; expected {FORMS}", source
            )
        return ModelRef(given, path=path, also_an_id=not _looks_like_path(given) and "/" in given)
    if _looks_like_path(given) or given.endswith(".gguf") and ":" not in given:
        raise ConfigError(field, f"{given!r}: no such file or directory", source)
    repo_id, revision, file_part = _split_id(given)
    problem = _id_problem(repo_id)
    if problem is None and revision is not None and not revision:
        problem = "nothing follows '@' (expected a branch, tag or commit hash)"
    if problem is None and file_part is not None and not file_part:
        problem = "nothing follows ':' (expected FILE.gguf or a quantization such as Q8_0)"
    if problem is not None:
        raise ConfigError(
            field,
            f"{given!r} is no local path (no such file or directory) and no Hugging Face id: "
            f"{problem}; expected {FORMS}",
            source,
        )
    gguf_file = gguf_quant = None
    if file_part is not None:
        if file_part.endswith(".gguf"):
            gguf_file = file_part
        else:
            gguf_quant = file_part
    return ModelRef(
        given, repo_id=repo_id, revision=revision, gguf_file=gguf_file, gguf_quant=gguf_quant
    )


def _id_problem(repo_id: str) -> str | None:
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as exc:
        return str(exc).rstrip(".")
    return None
