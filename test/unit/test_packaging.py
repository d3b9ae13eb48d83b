"""The installed package: interfaces, executables, share files, and launch/CLI agreement."""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import re
import sys
import types
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml
from rclpy.serialization import deserialize_message, serialize_message

from tablet_workcell.bringup.catalog import NODE_TYPES
from tablet_workcell.bringup.description import load_graph
from tablet_workcell.bringup.paths import default_graph_path
from tablet_workcell.bringup.processes import plan_processes

REPO = Path(__file__).resolve().parents[2]


def test_every_interface_file_is_importable_and_round_trips() -> None:
    for folder, suffix in (("msg", ".msg"), ("srv", ".srv"), ("action", ".action")):
        module = importlib.import_module(f"tablet_workcell.{folder}")
        for path in sorted((REPO / folder).glob(f"*{suffix}")):
            interface = getattr(module, path.stem)
            if folder == "msg":
                message = interface()
                assert deserialize_message(serialize_message(message), interface) == message
            else:
                assert hasattr(interface, "Request" if folder == "srv" else "Goal")


def test_recipe_message_carries_the_formulation_and_process() -> None:
    from tablet_workcell.msg import Component, Recipe  # noqa: PLC0415

    recipe = Recipe(
        experiment_id="e1",
        components=[Component(name="mcc", mass_fraction=0.7), Component(name="lactose", mass_fraction=0.3)],
        target_tablet_mass_kg=1e-4,
        compaction_pressure_pa=1.5e8,
        dwell_time_s=0.1,
    )
    again = deserialize_message(serialize_message(recipe), Recipe)
    assert [c.name for c in again.components] == ["mcc", "lactose"]
    assert again.compaction_pressure_pa == 1.5e8


def test_every_node_file_is_in_the_catalog_and_back() -> None:
    files = {p.stem for p in (REPO / "nodes").glob("*.py") if not p.stem.startswith("_")}
    assert files == set(NODE_TYPES)


@pytest.mark.parametrize("executable", sorted(NODE_TYPES))
def test_every_node_has_installed_entry_points(executable: str) -> None:
    scripts = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="console_scripts")}
    assert scripts[f"tablet_workcell_{executable}"] == f"tablet_workcell.nodes.{executable}:main"
    module = importlib.import_module(NODE_TYPES[executable].module)
    assert callable(module.main)
    wrapper = Path(sys.prefix) / "lib" / "tablet_workcell" / executable
    assert wrapper.is_file() and os.access(wrapper, os.X_OK), f"{wrapper} missing: ROS 2 launch needs it"


def test_shared_files_and_ament_index_are_installed() -> None:
    share = Path(sys.prefix) / "share"
    assert (share / "ament_index" / "resource_index" / "packages" / "tablet_workcell").is_file()
    assert (share / "tablet_workcell" / "package.xml").is_file()
    assert (share / "tablet_workcell" / "launch" / "workcell.launch.py").is_file()
    assert (share / "tablet_workcell" / "config" / "workcell.yaml").is_file()
    assert (share / "tablet_workcell" / "msg" / "Recipe.msg").is_file()
    assert list((Path(sys.prefix) / "lib").glob("libtablet_workcell__rosidl_typesupport_fastrtps_c.so"))


class _Recorder:
    """Stands in for a launch/launch_ros class and records how it was constructed."""

    created: ClassVar[list[tuple[str, tuple[Any, ...], dict[str, Any]]]] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args, self.kwargs = args, kwargs
        _Recorder.created.append((type(self).__name__, args, kwargs))


def _fake_launch_modules(arguments: dict[str, str]) -> dict[str, types.ModuleType]:
    """Minimal launch / launch_ros modules (not installable here) that record actions."""

    class LaunchConfiguration(_Recorder):
        def perform(self, context: object) -> str:
            return arguments[self.args[0]]

    recorders = {
        name: type(name, (_Recorder,), {})
        for name in (
            "LaunchDescription",
            "LaunchContext",
            "DeclareLaunchArgument",
            "OpaqueFunction",
            "SetEnvironmentVariable",
            "ExecuteProcess",
            "Node",
        )
    }
    modules = {
        name: types.ModuleType(name)
        for name in ("launch", "launch.actions", "launch.substitutions", "launch_ros", "launch_ros.actions")
    }
    modules["launch"].LaunchDescription = recorders["LaunchDescription"]  # type: ignore[attr-defined]
    modules["launch"].LaunchContext = recorders["LaunchContext"]  # type: ignore[attr-defined]
    for name in ("DeclareLaunchArgument", "OpaqueFunction", "SetEnvironmentVariable", "ExecuteProcess"):
        setattr(modules["launch.actions"], name, recorders[name])
    modules["launch.substitutions"].LaunchConfiguration = LaunchConfiguration  # type: ignore[attr-defined]
    modules["launch_ros.actions"].Node = recorders["Node"]  # type: ignore[attr-defined]
    return modules


def _unport(value: object, folder: Path) -> object:
    """Port links differ only in the folder each launcher made for them: compare the rest."""
    if not isinstance(value, str):
        return value
    return re.sub(r"\S*tablet_workcell_ports_\w+", "{ports}", value.replace(str(folder), "{ports}"))


@pytest.mark.parametrize("sim", [True, False])
def test_launch_file_and_workcell_command_start_the_same_graph(
    sim: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    arguments = {"sim": "true" if sim else "false", "config": "", "real_time_factor": "25" if sim else ""}
    for name, module in _fake_launch_modules(arguments).items():
        monkeypatch.setitem(sys.modules, name, module)
    _Recorder.created = []
    spec = importlib.util.spec_from_file_location("workcell_launch", REPO / "launch" / "workcell.launch.py")
    assert spec is not None and spec.loader is not None
    launch_file = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(launch_file)
    description = launch_file.generate_launch_description()
    opaque = next(a for a in description.args[0] if type(a).__name__ == "OpaqueFunction")
    opaque.kwargs["function"](object())

    launched = {kw["name"]: kw for kind, _, kw in _Recorder.created if kind in ("Node", "ExecuteProcess")}
    environment = {
        args[0]: args[1] for kind, args, _ in _Recorder.created if kind == "SetEnvironmentVariable"
    }

    overrides = {"sim_clock": {"real_time_factor": 25.0}} if sim else {}
    graph = load_graph(default_graph_path(), sim=sim, parameter_overrides=overrides)
    processes = plan_processes(graph, tmp_path, domain_id=0, base_environment={})
    assert set(launched) == {p.name for p in processes}
    for process in processes:
        node = launched[process.name]
        if process.parameter_file is None:  # a simulator process: same command, its own ports folder
            assert node["cmd"][:4] == list(process.argv[:4]) and "--link-dir" in node["cmd"]
            continue
        assert f"tablet_workcell.nodes.{node['executable']}" in process.argv
        assert node["package"] == "tablet_workcell"
        written = yaml.safe_load(process.parameter_file.read_text())["/**"]["ros__parameters"]
        ports = tmp_path / "ports"
        launched_parameters = {k: _unport(v, ports) for k, v in node["parameters"][0].items()}
        assert launched_parameters == {k: _unport(v, ports) for k, v in written.items()}
    assert {k: v for k, v in processes[0].environment.items() if k in environment} == environment
