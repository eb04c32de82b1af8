"""Test data: a Hugging Face cache folder written by hand, and a fake Hub on 127.0.0.1.

The cache follows the documented layout (``models--org--name/{blobs,refs,snapshots}``: blobs
named by their hash, each snapshot a folder of links to blobs, each ref a file holding a
commit), so huggingface_hub reads it as one it had filled itself. This is test data only: the
plugin never writes or parses this layout, it asks huggingface_hub.

The fake Hub answers the one call ``snapshot_download`` makes first (``repo_info``) with the
status and ``X-Error-Code`` header the real Hub sends for a gated repository, a missing or
private one, or an unknown revision, and counts the requests, so tests can also prove that none
was made.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

LFS_SUFFIXES = (".safetensors", ".gguf")  # stored with git-lfs on the Hub: blob = sha256


def blob_name(name: str, data: bytes) -> str:
    """The name the cache gives a file's blob: sha256 for LFS files, the git blob id else."""
    if name.endswith(LFS_SUFFIXES):
        return hashlib.sha256(data).hexdigest()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def commit_hash(label: str) -> str:
    return hashlib.sha1(label.encode()).hexdigest()


def add_revision(
    cache: Path, repo_id: str, commit: str, files: Mapping[str, bytes], refs: tuple[str, ...] = ()
) -> Path:
    """Write one commit of ``repo_id`` into ``cache``; the snapshot folder."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True, exist_ok=True)
    (repo / "blobs").mkdir(exist_ok=True)
    for name, data in files.items():
        blob = repo / "blobs" / blob_name(name, data)
        if not blob.exists():
            blob.write_bytes(data)
        (snapshot / name).symlink_to(os.path.relpath(blob, snapshot))
    for ref in refs:
        (repo / "refs").mkdir(exist_ok=True)
        (repo / "refs" / ref).write_text(commit)
    return snapshot


def model_files(model_dir: Path, **config_changes: object) -> dict[str, bytes]:
    """The files of a model directory, with ``config.json`` keys changed."""
    files = {p.name: p.read_bytes() for p in model_dir.iterdir() if p.is_file()}
    if config_changes:
        config = json.loads(files["config.json"])
        config.update(config_changes)
        files["config.json"] = json.dumps(config, indent=2).encode()
    return files


@dataclass
class FakeHub:
    """A Hub on 127.0.0.1 whose ``repo_info`` fails as configured; counts every request."""

    answer: str = "gated"  # gated | missing | no-revision
    requests: list[str] = field(default_factory=list)

    def start(self) -> str:
        hub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _reply(self) -> None:
                hub.requests.append(f"{self.command} {self.path}")
                status, code = {
                    "gated": (401, "GatedRepo"),
                    "missing": (401, "RepoNotFound"),
                    "no-revision": (404, "RevisionNotFound"),
                }[hub.answer]
                body = json.dumps({"error": code}).encode()
                self.send_response(status)
                self.send_header("X-Error-Code", code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_HEAD = _reply  # noqa: N815

            def log_message(self, *args: object) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
