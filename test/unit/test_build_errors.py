"""The build's own checks explain a missing tool or a wrong interpreter in one sentence."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import sys
import types
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def load_setup_module() -> types.ModuleType:
    spec = importlib.util.spec_from_file_location("tablet_workcell_setup", REPO / "setup.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # setup() itself only runs under __main__
    return module


def test_missing_build_tool_names_the_tool_and_the_fix() -> None:
    setup = load_setup_module()
    with pytest.raises(setup.BuildError) as error:
        setup.require_tool("cmake-that-does-not-exist", "install CMake (apt-get install cmake).")
    assert str(error.value) == (
        "'cmake-that-does-not-exist' was not found on PATH; it is needed to build the ROS 2 "
        "interfaces. Fix: install CMake (apt-get install cmake)."
    )


def test_wrong_interpreter_is_refused_with_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    setup = load_setup_module()
    monkeypatch.setattr(sys, "version_info", (3, 12, 0, "final", 0))
    with pytest.raises(setup.BuildError, match=r"needs CPython 3\.11.*python3\.11"):
        setup.check_python()


def test_installed_version_is_the_one_in_package_xml() -> None:
    setup = load_setup_module()
    assert importlib.metadata.version("tablet_workcell") == setup.package_version()
