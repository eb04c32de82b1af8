"""A missing or incompatible SGLang is one line naming the package and version, never a traceback.

Installed stand-ins (``sglang_standin.py``: real files with a dist-info, on ``sys.path``) play the
broken installs: a torch other than the one sglang pins, sglang-kernel missing or of another
version, an engine module whose import fails.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from packaging.version import Version

from pytest_llmbench.backends.registry import Registry
from pytest_llmbench.backends.sglang.backend import SglangBackend
from pytest_llmbench.backends.sglang.install import (
    NOT_INSTALLED,
    import_engine,
    installed_version,
    sglang_problem,
)
from pytest_llmbench.errors import BackendUnavailable

from .sglang_standin import write_metadata, write_sglang

TORCH = installed_version("torch")


def matching_torch() -> tuple[str, ...]:
    """A torch requirement the installed torch meets (none where torch is absent)."""
    return (f"torch=={Version(TORCH).base_version}",) if TORCH else ()


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder first on sys.path; no ``sglang`` module stays imported after the test."""
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    yield folder
    for name in [m for m in sys.modules if m == "sglang" or m.startswith("sglang.")]:
        del sys.modules[name]


def test_absent_is_the_install_hint() -> None:
    assert sglang_problem() == NOT_INSTALLED


def test_a_torch_other_than_the_pinned_one_is_named_with_both_versions(site: Path) -> None:
    write_sglang(site, requires=("torch==2.11.0", "numpy"))
    if TORCH is None:
        expected = "sglang 0.5.16 needs torch==2.11.0, which is not installed: pip install "
        assert str(sglang_problem()).startswith(expected)
    else:
        expected = f"sglang 0.5.16 needs torch==2.11.0, but torch {TORCH} is installed"
        assert sglang_problem() == expected
    assert SglangBackend.check_available() == sglang_problem()
    assert Registry().unavailable_reason("sglang") == sglang_problem()


def test_a_missing_kernel_package_is_named_with_the_version_to_install(site: Path) -> None:
    write_sglang(site, requires=(*matching_torch(), "sglang-kernel==0.4.5"))
    assert sglang_problem() == (
        "sglang 0.5.16 needs sglang-kernel==0.4.5, which is not installed: "
        "pip install 'sglang-kernel==0.4.5'"
    )


def test_another_kernel_version_is_named(site: Path) -> None:
    write_sglang(site, requires=(*matching_torch(), "sglang-kernel==0.4.5"))
    write_metadata(site, "sglang-kernel", "0.4.4")
    assert sglang_problem() == (
        "sglang 0.5.16 needs sglang-kernel==0.4.5, but sglang-kernel 0.4.4 is installed"
    )


@pytest.mark.parametrize(
    ("torch", "problem"),
    [
        ("2.11.0+cu130", False),  # the PyPI CUDA build
        ("2.11.0a0+gitc0ffee.nv26.01", False),  # a vendor container's build of that release
        ("2.11.1", True),
        ("2.10.0+cu128", True),
    ],
)
def test_the_torch_pin_is_a_release_pin(site: Path, torch: str, problem: bool) -> None:
    write_sglang(site, requires=("torch==2.11.0",))
    write_metadata(site, "torch", torch)  # first on sys.path: this is the torch metadata finds
    expected = f"sglang 0.5.16 needs torch==2.11.0, but torch {torch} is installed"
    assert sglang_problem() == (expected if problem else None)


def test_a_newer_kernel_package_is_accepted_as_sglang_itself_accepts_it(site: Path) -> None:
    write_sglang(site, requires=(*matching_torch(), "sglang-kernel==0.4.5"))
    write_metadata(site, "sglang-kernel", "0.4.6")
    assert sglang_problem() is None


def test_older_releases_name_their_kernel_package_sgl_kernel(site: Path) -> None:
    write_sglang(site, version="0.4.10", requires=("sgl-kernel==0.3.5",))
    write_metadata(site, "sgl-kernel", "0.3.5")
    assert sglang_problem() is None


def test_met_pins_other_platforms_and_extras_are_not_problems(site: Path) -> None:
    write_sglang(
        site,
        requires=(
            *matching_torch(),
            "sglang-kernel==0.4.5",
            'torch==1.0; sys_platform == "nonexistent"',  # another platform's pin
            'sgl-kernel==9.9; extra == "test"',  # an optional extra
            "transformers==0.0.1",  # pure Python: not a binary pin, left to the import
        ),
    )
    write_metadata(site, "sglang-kernel", "0.4.5")
    assert sglang_problem() is None


def test_a_tree_without_metadata_is_left_to_the_import(site: Path) -> None:
    (site / "sglang").mkdir()
    (site / "sglang" / "__init__.py").write_text("")
    assert sglang_problem() is None


def test_an_import_error_is_one_line_with_the_version(site: Path) -> None:
    broken = "raise ImportError('libcudart.so.12: cannot open shared object file')\n"
    write_sglang(site, engine=broken)
    with pytest.raises(BackendUnavailable) as info:
        import_engine()
    assert str(info.value) == (
        "sglang 0.5.16 is installed but cannot be imported: "
        "ImportError: libcudart.so.12: cannot open shared object file"
    )


def test_a_multi_line_failure_in_the_package_keeps_its_first_line(site: Path) -> None:
    # sgl_kernel's own message starts with a newline and runs for twenty lines.
    message = "\\n[sgl_kernel] CRITICAL: Could not load any common_ops library!\\n\\nAttempted"
    init = f"raise RuntimeError('{message}')"
    write_sglang(site, init=init)
    with pytest.raises(BackendUnavailable) as info:
        import_engine()
    message = str(info.value)
    assert "\n" not in message
    assert message.endswith(
        "RuntimeError: [sgl_kernel] CRITICAL: Could not load any common_ops library!"
    )


def test_a_missing_dependency_of_the_engine_is_named(site: Path) -> None:
    write_sglang(site, engine="import xgrammar_not_installed_here\n")
    with pytest.raises(BackendUnavailable, match="ModuleNotFoundError: No module named 'xgrammar"):
        import_engine()


def test_the_engine_comes_from_its_0_5_module(site: Path) -> None:
    write_sglang(site, init="Engine = 'the lazy alias'")
    assert import_engine().__module__ == "sglang.srt.entrypoints.engine"


def test_a_release_without_that_module_uses_sglang_engine(site: Path) -> None:
    write_sglang(site, init="class Engine: pass", engine=None)
    assert import_engine().__module__ == "sglang"


def test_a_managed_sglang_server_is_refused_with_the_same_line(site: Path) -> None:
    from pytest_llmbench.backends.openai.servers import missing_server

    write_sglang(site, requires=("torch==0.0.1",))
    found = f"but torch {TORCH} is installed" if TORCH else "which is not installed"
    message = str(missing_server("sglang"))
    assert message.startswith(f"--llm-server sglang: sglang 0.5.16 needs torch==0.0.1, {found}")
    assert message.endswith("; or pass --llm-server-url")


def test_a_failed_import_names_the_requirements_the_installed_packages_do_not_meet(
    site: Path,
) -> None:
    # As seen on a GPU image with transformers 5.17: sglang 0.5.16 pins 5.12.1 and fails at
    # import, registering a config name that the newer transformers already has.
    write_metadata(site, "transformers-standin", "5.17.0")
    write_metadata(site, "met-standin", "1.0")
    broken = "raise ValueError(\"'qwen3_asr' is already used by a Transformers config\")\n"
    write_sglang(
        site,
        engine=broken,
        requires=(
            "transformers-standin==5.12.1",
            "met-standin>=1",
            "absent-standin==2.0",
            "transformers-standin==1; extra == 'other'",
        ),
    )
    with pytest.raises(BackendUnavailable) as info:
        import_engine()
    assert str(info.value) == (
        "sglang 0.5.16 is installed but cannot be imported: "
        "ValueError: 'qwen3_asr' is already used by a Transformers config; "
        "its requirements not met here: transformers-standin==5.12.1 (5.17.0 installed)"
    )
