"""Launch the tablet_workcell node graph with ROS 2's launch tooling.

    ros2 launch tablet_workcell workcell.launch.py                 # simulated cell
    ros2 launch tablet_workcell workcell.launch.py sim:=false      # real instruments
    ros2 launch tablet_workcell workcell.launch.py real_time_factor:=100.0

The nodes and their parameters come from config/workcell.yaml through the same loader
as the ``workcell up`` command (tablet_workcell.bringup.description.load_graph), so the
two ways of starting the cell cannot drift apart.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from launch.actions import DeclareLaunchArgument, ExecuteProcess, OpaqueFunction, SetEnvironmentVariable
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from launch import LaunchContext, LaunchDescription
from tablet_workcell.bringup.description import load_graph
from tablet_workcell.bringup.paths import default_graph_path
from tablet_workcell.bringup.processes import with_ports
from tablet_workcell.errors import ConfigError

TRUE_WORDS = ("true", "1", "yes", "on")
FALSE_WORDS = ("false", "0", "no", "off")


def _as_bool(name: str, text: str) -> bool:
    if text.lower() in TRUE_WORDS:
        return True
    if text.lower() in FALSE_WORDS:
        return False
    raise ConfigError(
        f"launch argument {name}:={text!r} is not a boolean; use {name}:=true or {name}:=false."
    )


def _graph_actions(context: LaunchContext) -> list[object]:
    sim = _as_bool("sim", LaunchConfiguration("sim").perform(context))
    config = LaunchConfiguration("config").perform(context)
    factor = LaunchConfiguration("real_time_factor").perform(context)
    overrides: dict[str, dict[str, object]] = {}
    if factor:
        try:
            overrides["sim_clock"] = {"real_time_factor": float(factor)}
        except ValueError:
            raise ConfigError(f"launch argument real_time_factor:={factor!r} is not a number.") from None
    graph = load_graph(
        Path(config) if config else default_graph_path(), sim=sim, parameter_overrides=overrides
    )
    actions: list[object] = [
        SetEnvironmentVariable(key, value) for key, value in sorted(graph.environment.items())
    ]
    # Simulated instruments (sim:=true only) serve ptys linked in a fresh folder; the
    # instrument nodes' port parameters point there through the {ports} placeholder.
    ports = Path(tempfile.mkdtemp(prefix="tablet_workcell_ports_"))
    for simulator in graph.simulators:
        actions.append(
            ExecuteProcess(
                cmd=[sys.executable, *simulator.argv(ports)], name=f"sim_{simulator.name}", output="screen"
            )
        )
    for node in graph.nodes:
        actions.append(
            Node(
                package="tablet_workcell",
                executable=node.executable,
                name=node.name,
                namespace=node.namespace,
                parameters=[with_ports(node.ros_parameters(), ports)],
                output="screen",
                emulate_tty=True,
            )
        )
    return actions


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription(
        [
            DeclareLaunchArgument(
                "sim",
                default_value="true",
                description="true: simulated instruments and clock; false: real instruments",
            ),
            DeclareLaunchArgument(
                "config",
                default_value="",
                description="graph description (default: share/tablet_workcell/config/workcell.yaml)",
            ),
            DeclareLaunchArgument(
                "real_time_factor",
                default_value="",
                description="simulated clock speed (default: value in the config)",
            ),
            OpaqueFunction(function=_graph_actions),
        ]
    )
