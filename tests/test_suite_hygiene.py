"""The plugin's own tests hold on a busy machine and leave the user's files alone."""

from __future__ import annotations

import os
from pathlib import Path

from tests.checkout_writes import snapshot, written_since


def test_hypothesis_examples_have_no_deadline_on_a_busy_machine() -> None:
    from hypothesis import HealthCheck, settings

    assert settings.default.deadline is None
    assert HealthCheck.too_slow in settings.default.suppress_health_check


def test_files_written_into_out_are_found_except_the_sessions_own_reports(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "old.json").write_text("{}")
    (tmp_path / "elsewhere.txt").write_text("")
    before = snapshot(tmp_path)
    assert list(before) == ["out/old.json"]
    (tmp_path / "out" / "html-report.png").write_bytes(b"png")  # what a test once left there
    (tmp_path / "out" / "report.json").write_text("{}")  # this session's --llm-json
    (tmp_path / "elsewhere.txt").write_text("changed")  # not watched
    after = snapshot(tmp_path)
    own = [str(tmp_path / "out" / "report.json"), ""]
    assert written_since(before, after, tmp_path, own) == ["out/html-report.png"]
    old = tmp_path / "out" / "old.json"
    old.write_text('{"changed": true}')
    os.utime(old, ns=(0, before["out/old.json"] + 10**9))  # a coarse clock may not move it
    assert written_since(before, snapshot(tmp_path), tmp_path, own) == [
        "out/html-report.png",
        "out/old.json",
    ]
