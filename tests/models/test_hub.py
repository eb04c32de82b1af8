"""Hugging Face ids resolved through huggingface_hub: the cache by default, the Hub only when
allowed; every failure one line that says what to do. No test reaches the network."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_llmbench.errors import ConfigError
from pytest_llmbench.models import resolve_model
from tests.models.conftest import MAIN, REPO, V1
from tests.models.hf_cache import FakeHub


@pytest.fixture
def fake_hub(hf_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    from huggingface_hub import constants

    hub = FakeHub()
    monkeypatch.setattr(constants, "ENDPOINT", hub.start())
    yield hub
    hub.stop()


def error(text: str, **kwargs: object) -> str:
    with pytest.raises(ConfigError) as info:
        resolve_model(text, field="--llm-model", **kwargs)  # type: ignore[arg-type]
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    ("text", "commit", "revision"),
    [
        (REPO, MAIN, "main"),
        (f"{REPO}@main", MAIN, "main"),
        (f"{REPO}@v1", V1, "v1"),
        (f"{REPO}@{V1}", V1, V1),
        (f"{REPO}@{V1[:7]}", V1, V1[:7]),  # a short commit hash, as people paste them
    ],
)
def test_an_id_resolves_from_the_cache(
    hf_cache: Path, text: str, commit: str, revision: str
) -> None:
    model = resolve_model(text, field="--llm-model")
    assert (model.kind, model.repo_id, model.commit, model.revision) == (
        "hub",
        REPO,
        commit,
        revision,
    )
    assert model.directory == str(hf_cache / "models--llmbench--tiny-llama" / "snapshots" / commit)
    assert model.engine_path("pytorch") == model.engine_path("vllm") == model.directory
    assert model.identity == f"{REPO}@{commit}"
    expected = 2048 if commit == V1 else 1024  # each revision's own config.json
    assert model.context is not None and model.context.tokens == expected


def test_cache_only_never_asks_the_hub(fake_hub: FakeHub) -> None:
    """The default: a hit and a miss alike make no request, even with a Hub that answers."""
    resolve_model(REPO, field="--llm-model")
    message = error("llmbench/not-cached")
    assert fake_hub.requests == []
    assert message == (
        "--llm-model: llmbench/not-cached is not in the Hugging Face cache "
        f"{fake_hub_cache()}; downloads are off: fetch it with `hf download llmbench/not-cached` "
        "(HF_HOME or HF_HUB_CACHE choose the cache), or allow them with --llm-allow-download"
    )


def fake_hub_cache() -> str:
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def test_an_unknown_revision_lists_the_cached_ones(hf_cache: Path) -> None:
    message = error(f"{REPO}@v9")
    assert message.startswith(
        f"--llm-model: {REPO} has no revision 'v9' in the Hugging Face cache {hf_cache} "
        f"(it holds main = {MAIN[:12]}, v1 = {V1[:12]}); downloads are off: fetch it with "
        f"`hf download {REPO} --revision v9`"
    )


def test_a_bare_name_may_be_a_mistyped_path(hf_cache: Path) -> None:
    assert "'tiny-lama' is no local file or directory, and no model of that id" in error(
        "tiny-lama"
    )


def test_malformed_ids_and_missing_paths_are_named(hf_cache: Path) -> None:
    assert error("./models/absent") == "--llm-model: './models/absent': no such file or directory"
    assert error("org/x--y").startswith(
        "--llm-model: 'org/x--y' is no local path (no such file or directory) and no Hugging "
        "Face id: Cannot have -- or .. in repo_id"
    )
    assert "nothing follows '@'" in error(f"{REPO}@")


def test_yaml_errors_name_the_key_and_the_file(hf_cache: Path) -> None:
    with pytest.raises(ConfigError) as info:
        resolve_model("llmbench/absent", field="model_name", source="bench.yaml")
    assert str(info.value).startswith("bench.yaml: model_name: llmbench/absent is not in the")


def test_gated_without_a_token_says_how_to_get_access(fake_hub: FakeHub) -> None:
    message = error("org/gated", allow_download=True)
    from huggingface_hub import constants

    assert message == (
        "--llm-model: org/gated is gated on the Hugging Face Hub and no token was found: accept "
        f"its terms at {constants.ENDPOINT}/org/gated, then log in with `hf auth login` or set "
        "HF_TOKEN"
    )
    assert fake_hub.requests  # the download path was taken, against the local fake


def test_gated_with_a_token_without_access(
    fake_hub: FakeHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_not_a_real_token")
    assert "your token has no access: accept its terms" in error("org/gated", allow_download=True)


def test_private_or_missing_on_the_hub(fake_hub: FakeHub) -> None:
    fake_hub.answer = "missing"
    assert error("org/private", allow_download=True) == (
        "--llm-model: org/private is not on the Hugging Face Hub, or it is private and no token "
        "was found: check the id, or log in with `hf auth login` or set HF_TOKEN"
    )


def test_unknown_revision_on_the_hub(fake_hub: FakeHub) -> None:
    fake_hub.answer = "no-revision"
    assert error("org/model@v9", allow_download=True) == (
        "--llm-model: org/model has no revision 'v9' on the Hugging Face Hub"
    )


def test_unreachable_hub_with_downloads_allowed(hf_cache: Path) -> None:
    message = error("llmbench/not-cached", allow_download=True)
    assert "and the Hugging Face Hub at http://127.0.0.1:1 cannot be reached" in message
    assert "check the network, or fetch it with `hf download llmbench/not-cached`" in message


def test_a_cached_model_needs_no_hub_even_when_downloads_are_allowed(
    fake_hub: FakeHub,
) -> None:
    """The Hub refuses (as for a gated model seen without a token): the cache answers."""
    fake_hub.answer = "no-revision"
    with pytest.raises(ConfigError):
        resolve_model(f"{REPO}@v1", field="--llm-model", allow_download=True)
    fake_hub.answer = "missing"
    model = resolve_model(f"{REPO}@{V1}", field="--llm-model", allow_download=True)
    assert model.commit == V1


def test_offline_mode_wins_over_allowing_downloads(
    hf_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    message = error("llmbench/not-cached", allow_download=True)
    assert "HF_HUB_OFFLINE is set, so nothing is downloaded" in message
    assert resolve_model(REPO, field="--llm-model", allow_download=True).commit == MAIN


def test_a_local_folder_wins_over_an_id_and_says_so(
    hf_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.models.hf_cache import model_files

    folder = tmp_path / "llmbench" / "tiny-llama"
    folder.mkdir(parents=True)
    for name, data in model_files(
        hf_cache / "models--llmbench--tiny-llama" / "snapshots" / V1
    ).items():
        (folder / name).write_bytes(data)
    monkeypatch.chdir(tmp_path)
    model = resolve_model(REPO, field="--llm-model")
    assert (model.kind, model.directory, model.commit) == ("local", REPO, None)
    (note,) = model.notes
    assert note == (
        "--llm-model: 'llmbench/tiny-llama' is a local folder and also reads as a Hugging Face "
        "id; the local folder is used (write ./llmbench/tiny-llama to silence this, or move the "
        "folder)"
    )
    assert resolve_model(f"./{REPO}", field="--llm-model").notes == ()
