"""Saved runs: numbering per machine id, atomic files, resolving --llm-compare values."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from pytest_llmbench.errors import StorageError
from pytest_llmbench.gate.storage import Storage, autosave_name, safe_name
from pytest_llmbench.results import load_report
from tests.results.factories import make_report, make_result


@pytest.fixture
def storage(tmp_path: Path) -> Storage:
    return Storage(tmp_path / ".llmbench", "Linux-x86_64-cpu")


def test_save_numbers_runs_per_machine(storage: Storage, tmp_path: Path) -> None:
    text = make_report([make_result()]).to_json()
    first = storage.save(text, "before")
    second = storage.save(text, "after fix/2")
    other = Storage(storage.root, "Linux-x86_64-NVIDIA_H100x1").save(text, "gpu")
    assert first == storage.root / "Linux-x86_64-cpu" / "0001_before.json"
    assert second.name == "0002_after_fix_2.json"
    assert other.name == "0001_gpu.json"
    assert load_report(second).results == make_report([make_result()]).results
    assert sorted(p.name for p in first.parent.iterdir()) == [
        "0001_before.json",
        "0002_after_fix_2.json",
    ]


def test_resolve_latest_number_name_and_path(storage: Storage, tmp_path: Path) -> None:
    text = make_report([]).to_json()
    one = storage.save(text, "base")
    two = storage.save(text, "feature")
    three = storage.save(text, "base")
    assert storage.resolve(None) == three
    assert storage.resolve("") == three
    assert storage.resolve("2") == two
    assert storage.resolve("0001") == one
    assert storage.resolve("base") == three  # the latest of that name
    assert storage.resolve("0001_base") == one
    assert storage.resolve(str(two)) == two
    outside = tmp_path / "baseline.json"
    outside.write_text(text)
    assert storage.resolve(str(outside)) == outside


def test_resolve_errors_say_what_exists(storage: Storage, tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="no saved runs in .*Linux-x86_64-cpu .*--llm-save"):
        storage.resolve(None)
    storage.save(make_report([]).to_json(), "base")
    with pytest.raises(
        StorageError, match="no file or folder 'nope', and no saved run 'nope' .*latest: 0001_base"
    ):
        storage.resolve("nope")
    with pytest.raises(StorageError, match="no saved run '7'"):
        storage.resolve("7")
    with pytest.raises(StorageError, match="missing.json: no such file"):
        storage.resolve(str(tmp_path / "missing.json"))


def test_names() -> None:
    when = datetime(2025, 3, 1, 12, 30, tzinfo=timezone.utc)
    assert (
        autosave_name({"git": {"commit": "0123456789abcdef"}}, when) == "20250301T123000Z_01234567"
    )
    assert autosave_name({}, when) == "20250301T123000Z"
    assert safe_name("my run: v2") == "my_run_v2"
    with pytest.raises(StorageError, match="--llm-save"):
        safe_name("///")
