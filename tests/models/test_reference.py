"""Reading what --llm-model names, from the text alone."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_llmbench.errors import ConfigError
from pytest_llmbench.models.reference import parse_model_ref

NAME = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_]{0,20}", fullmatch=True)
REVISION = st.one_of(
    st.from_regex(r"[0-9a-f]{40}", fullmatch=True),
    st.from_regex(r"v?[0-9]\.[0-9]", fullmatch=True),
    st.sampled_from(["main", "refs/pr/1", "release-2024"]),
)
SUFFIX = st.one_of(
    st.none(), st.sampled_from(["Q4_K_M", "q8_0"]), NAME.map(lambda n: f"{n}-f16.gguf")
)


@given(org=NAME, name=NAME, revision=st.one_of(st.none(), REVISION), suffix=SUFFIX)
def test_ids_split_into_repo_revision_and_file(
    org: str, name: str, revision: str | None, suffix: str | None
) -> None:
    text = f"{org}/{name}" + (f"@{revision}" if revision else "") + (f":{suffix}" if suffix else "")
    ref = parse_model_ref(text, "--llm-model")
    assert (ref.repo_id, ref.revision, ref.path) == (f"{org}/{name}", revision, None)
    if suffix is None:
        assert ref.gguf_file is None and ref.gguf_quant is None
    elif suffix.endswith(".gguf"):
        assert ref.gguf_file == suffix and ref.gguf_quant is None
    else:
        assert ref.gguf_quant == suffix and ref.gguf_file is None


def test_existing_paths_are_local(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "m.gguf").write_bytes(b"GGUF")
    assert parse_model_ref(str(tmp_path / "m"), "model_name").path == tmp_path / "m"
    ref = parse_model_ref(str(tmp_path / "m.gguf"), "model_name")
    assert ref.is_gguf_file and ref.repo_id is None and not ref.also_an_id


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "--llm-model: is empty; expected a model directory, a .gguf file, or a Hugging Face"),
        ("/no/such/dir", "--llm-model: '/no/such/dir': no such file or directory"),
        ("model.gguf", "--llm-model: 'model.gguf': no such file or directory"),
        ("a/b/c", "--llm-model: 'a/b/c': no such file or directory"),
        ("org/name@", "nothing follows '@'"),
        ("org/name:", "nothing follows ':'"),
        ("org/na me", "no Hugging Face id: Repo id must use alphanumeric chars"),
    ],
)
def test_what_is_neither_is_named(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_model_ref(text, "--llm-model")
    assert message in str(info.value)


def test_a_file_that_is_no_gguf_is_refused(tmp_path: Path) -> None:
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(ConfigError, match="is a file but not a .gguf file"):
        parse_model_ref(str(tmp_path / "weights.bin"), "model_name")
