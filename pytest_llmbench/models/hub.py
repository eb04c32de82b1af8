"""A Hugging Face id -> a local snapshot folder and its commit, through huggingface_hub itself.

``snapshot_download`` does the work: it reads the cache that ``HF_HOME`` / ``HF_HUB_CACHE``
choose, honours ``HF_HUB_OFFLINE`` and finds tokens where ``hf auth login`` and ``HF_TOKEN`` put
them. By default it runs with ``local_files_only=True``: the cache is the only source and nothing
is downloaded. ``allow_download`` lets it ask the Hub (``HF_ENDPOINT``) for what the cache lacks.
Only the files a benchmark needs are asked for (:func:`file_patterns`): configs, tokenizer files
and safetensors weights, or the one GGUF named.

What goes wrong becomes one line that says what to do: fetch the model, allow downloads, log in,
pick another revision. The cache is listed (``scan_cache_dir``) only to explain a miss.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from pytest_llmbench.models.reference import ModelRef

ALLOW_DOWNLOAD_OPTION = "--llm-allow-download"
_TOKENIZER_FILES = ("*.json", "*.model", "*.txt", "*.tiktoken")  # configs, vocabularies, merges
_COMMIT = re.compile(r"[0-9a-f]{40}")
_SHORT_COMMIT = re.compile(r"[0-9a-f]{7,39}")


class HubError(Exception):
    """The model cannot be had from the cache or the Hub; the message says why and what to do."""


@dataclass(frozen=True)
class Snapshot:
    """A repository's files at one commit, in the local cache."""

    repo_id: str
    revision: str  # as asked for; the default branch when none was
    commit: str
    path: Path


def file_patterns(ref: ModelRef) -> list[str]:
    """The files of the repository a benchmark needs (``allow_patterns`` of snapshot_download)."""
    if ref.gguf_file:
        return [ref.gguf_file, *_TOKENIZER_FILES]
    if ref.gguf_quant:
        q = ref.gguf_quant
        return sorted({f"*{q}*.gguf", f"*{q.upper()}*.gguf", f"*{q.lower()}*.gguf"}) + list(
            _TOKENIZER_FILES
        )
    return [*_TOKENIZER_FILES, "*.safetensors"]


def fetch_snapshot(ref: ModelRef, *, allow_download: bool) -> Snapshot:
    """The snapshot of ``ref`` (an id, not a path); HubError with the reason and the remedy."""
    from huggingface_hub import constants, snapshot_download

    assert ref.repo_id is not None
    revision = ref.revision or constants.DEFAULT_REVISION
    cache = constants.HF_HUB_CACHE  # read now: HF_HOME / HF_HUB_CACHE as huggingface_hub saw them
    patterns = file_patterns(ref)
    try:
        folder = snapshot_download(
            ref.repo_id,
            revision=revision,
            cache_dir=cache,
            local_files_only=not allow_download,
            allow_patterns=patterns,
        )
    except Exception as exc:
        full = _full_commit(ref.repo_id, revision, cache)
        if full is None:
            raise HubError(explain(exc, ref, revision, cache, allow_download)) from None
        folder = snapshot_download(
            ref.repo_id, revision=full, cache_dir=cache, local_files_only=True
        )
    path = Path(str(folder))
    # The cache keeps each commit in snapshots/<commit hash>: the folder's name is the commit.
    commit = path.name if _COMMIT.fullmatch(path.name) else revision
    return Snapshot(ref.repo_id, revision, commit, path)


def _full_commit(repo_id: str, revision: str, cache: str) -> str | None:
    """The one cached commit that ``revision`` abbreviates (``@1a2b3c4``), if it is one."""
    if not _SHORT_COMMIT.fullmatch(revision):
        return None
    matches = [c for c, _refs in cached_revisions(repo_id, cache) or [] if c.startswith(revision)]
    return matches[0] if len(matches) == 1 else None


def cached_revisions(repo_id: str, cache: str) -> list[tuple[str, tuple[str, ...]]] | None:
    """(commit, refs) of every cached snapshot of the model ``repo_id``; None when the cache has
    none of it."""
    from huggingface_hub import scan_cache_dir
    from huggingface_hub.errors import CacheNotFound

    try:
        info = scan_cache_dir(cache)
    except (CacheNotFound, OSError, ValueError):
        return None
    for repo in info.repos:
        if repo.repo_type == "model" and repo.repo_id == repo_id:
            found = [(r.commit_hash, tuple(sorted(r.refs))) for r in repo.revisions]
            return sorted(found, key=lambda c: (not c[1], c[1], c[0]))  # named ones first
    return None


def explain(
    exc: BaseException, ref: ModelRef, revision: str, cache: str, allow_download: bool
) -> str:
    """One line for a failed snapshot_download: what happened and what the user can do."""
    from huggingface_hub import constants, get_token
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    repo_id = ref.repo_id
    page = f"{constants.ENDPOINT}/{repo_id}"
    login = "log in with `hf auth login` or set HF_TOKEN"
    if isinstance(exc, GatedRepoError):
        if get_token() is None:
            return (
                f"{repo_id} is gated on the Hugging Face Hub and no token was found: accept its "
                f"terms at {page}, then {login}"
            )
        return (
            f"{repo_id} is gated on the Hugging Face Hub and your token has no access: accept "
            f"its terms at {page}"
        )
    if isinstance(exc, RepositoryNotFoundError):
        if get_token() is None:
            return (
                f"{repo_id} is not on the Hugging Face Hub, or it is private and no token was "
                f"found: check the id, or {login}"
            )
        return (
            f"{repo_id} is not on the Hugging Face Hub, or your token cannot see it: check the "
            "id and the token's access"
        )
    if isinstance(exc, RevisionNotFoundError):
        return f"{repo_id} has no revision {revision!r} on the Hugging Face Hub"
    incomplete = type(exc).__name__ == "IncompleteSnapshotError"  # huggingface_hub >= 1.x
    if isinstance(exc, LocalEntryNotFoundError) and not incomplete:
        cause = exc.__cause__ or exc.__context__
        return _cache_miss(ref, revision, cache, allow_download, cause, constants.HF_HUB_OFFLINE)
    if isinstance(exc, OfflineModeIsEnabled):
        return _cache_miss(ref, revision, cache, allow_download, exc, True)
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    if isinstance(exc, HfHubHTTPError):
        return f"{repo_id}@{revision}: the Hugging Face Hub answered: {first}"
    return f"{repo_id}@{revision}: {first}"


def _cache_miss(
    ref: ModelRef,
    revision: str,
    cache: str,
    allow_download: bool,
    cause: BaseException | None,
    offline: bool,
) -> str:
    repo_id = ref.repo_id
    assert repo_id is not None
    cached = cached_revisions(repo_id, cache)
    if cached:
        listed = ", ".join(
            f"{'/'.join(refs)} = {commit[:12]}" if refs else commit[:12] for commit, refs in cached
        )
        what = (
            f"{repo_id} has no revision {revision!r} in the Hugging Face cache {cache} "
            f"(it holds {listed})"
        )
    elif "/" in repo_id:
        what = f"{repo_id} is not in the Hugging Face cache {cache}"
    else:  # a bare name may be a mistyped local path as well
        what = (
            f"{repo_id!r} is no local file or directory, and no model of that id is in the "
            f"Hugging Face cache {cache}"
        )
    fetch = f"hf download {repo_id}"
    if ref.gguf_file:
        fetch += f" {ref.gguf_file}"
    if ref.revision:
        fetch += f" --revision {revision}"
    fetch_hint = f"fetch it with `{fetch}` (HF_HOME or HF_HUB_CACHE choose the cache)"
    if not allow_download:
        return (
            f"{what}; downloads are off: {fetch_hint}, or allow them with {ALLOW_DOWNLOAD_OPTION}"
        )
    if offline:
        return (
            f"{what}, and HF_HUB_OFFLINE is set, so nothing is downloaded: {fetch_hint} on a "
            "machine online, or unset HF_HUB_OFFLINE"
        )
    from huggingface_hub import constants

    reason = f" ({type(cause).__name__})" if cause is not None else ""
    return (
        f"{what}, and the Hugging Face Hub at {constants.ENDPOINT} cannot be reached{reason}: "
        f"check the network, or {fetch_hint} where it can be reached"
    )
