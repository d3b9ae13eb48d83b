"""Keep the import-linter contracts (pyproject.toml, run by `make lint`) complete."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import tablet_workcell

REPO = Path(__file__).resolve().parents[2]
ADAPTERS = {"ros", "nodes", "cli"}  # may import rclpy
GENERATED = {"msg", "srv", "action"}  # rosidl output


def contract(contract_id: str) -> dict[str, Any]:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    contracts = config["tool"]["importlinter"]["contracts"]
    return next(c for c in contracts if c["id"] == contract_id)


def test_every_library_module_is_bound_by_the_no_ros_contract() -> None:
    package = Path(tablet_workcell.__file__).parent
    modules = {p.stem for p in package.glob("*.py") if p.stem != "__init__"}
    modules |= {p.name for p in package.iterdir() if (p / "__init__.py").is_file()}
    library = modules - ADAPTERS - GENERATED
    listed = {
        name.removeprefix("tablet_workcell.") for name in contract("library-without-ros")["source_modules"]
    }
    assert library == listed, "add new library modules to the library-without-ros contract in pyproject.toml"
