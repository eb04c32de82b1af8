"""A Hugging Face cache with the embedded model at two revisions, chosen as users choose one.

Every test here runs with the Hub pointed at a closed port of 127.0.0.1 and no token, so no
test can reach the network, whatever the code under test does.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.models.hf_cache import add_revision, commit_hash, model_files

REPO = "llmbench/tiny-llama"
V1 = commit_hash("v1")  # the embedded model as built (context 2048), ref "v1"
MAIN = commit_hash("main")  # the same weights with max_position_embeddings 1024, ref "main"
CLOSED_HUB = "http://127.0.0.1:1"  # nothing listens: a download attempt fails at once, locally


@pytest.fixture(scope="session")
def hub_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("transformers")
    from pytest_llmbench.workload.tinymodel import ensure_tiny_model

    tiny = ensure_tiny_model()
    cache = tmp_path_factory.mktemp("hf-home") / "hub"
    add_revision(cache, REPO, V1, model_files(tiny), refs=("v1",))
    add_revision(cache, REPO, MAIN, model_files(tiny, max_position_embeddings=1024), ("main",))
    return cache


@pytest.fixture
def hf_cache(hub_cache_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """``HF_HUB_CACHE`` names the cache above (for subprocesses, and for this process, where
    huggingface_hub read its environment at import), the Hub is unreachable, no token is set."""
    from huggingface_hub import constants

    for name, value in (
        ("HF_HUB_CACHE", str(hub_cache_dir)),
        ("ENDPOINT", CLOSED_HUB),
        ("HF_HUB_OFFLINE", False),
        ("HF_TOKEN_PATH", str(tmp_path / "no-token")),
    ):
        monkeypatch.setattr(constants, name, value)
    monkeypatch.setenv("HF_HUB_CACHE", str(hub_cache_dir))
    monkeypatch.setenv("HF_ENDPOINT", CLOSED_HUB)
    for name in ("HF_HUB_OFFLINE", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    return hub_cache_dir
