"""Turn a validated graph description into the processes that run it.

Each node runs as ``python -m tablet_workcell.nodes.<executable> --ros-args ...`` with
its own parameter file, the standard ROS 2 way of passing typed parameters.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from tablet_workcell.bringup.description import PORTS_PLACEHOLDER, GraphDescription, NodeLaunch
from tablet_workcell.parameters import ParamValue


@dataclass(frozen=True)
class ProcessSpec:
    name: str
    argv: tuple[str, ...]
    environment: dict[str, str]
    parameter_file: Path | None  # None for a simulator process (not a ROS node)


def with_ports(parameters: Mapping[str, ParamValue], ports_directory: Path) -> dict[str, ParamValue]:
    """``{ports}`` in string parameters -> the folder where the simulators link their ptys."""
    return {
        name: value.replace(PORTS_PLACEHOLDER, str(ports_directory)) if isinstance(value, str) else value
        for name, value in parameters.items()
    }


def parameter_file_content(node: NodeLaunch, ports_directory: Path | None = None) -> dict[str, object]:
    """ROS 2 parameter-file content for one node (``/**`` matches it, the file is its own)."""
    parameters = node.ros_parameters()
    if ports_directory is not None:
        parameters = with_ports(parameters, ports_directory)
    return {"/**": {"ros__parameters": parameters}}


def plan_processes(
    graph: GraphDescription,
    run_directory: Path,
    domain_id: int,
    base_environment: Mapping[str, str] | None = None,
) -> list[ProcessSpec]:
    """Write each node's parameter file into ``run_directory`` and return the commands."""
    run_directory.mkdir(parents=True, exist_ok=True)
    environment = dict(os.environ if base_environment is None else base_environment)
    environment.update(graph.environment)
    environment["ROS_DOMAIN_ID"] = str(domain_id)
    environment["PYTHONUNBUFFERED"] = "1"
    specs = []
    ports = run_directory / "ports"
    for simulator in graph.simulators:  # first: instrument nodes wait for their ports anyway
        command = (sys.executable, *simulator.argv(ports))
        specs.append(ProcessSpec(f"sim_{simulator.name}", command, environment, None))
    for node in graph.nodes:
        parameter_file = run_directory / f"{node.name}.params.yaml"
        parameter_file.write_text(yaml.safe_dump(parameter_file_content(node, ports), sort_keys=True))
        argv = [sys.executable, "-m", node.module, "--ros-args", "-r", f"__node:={node.name}"]
        if node.namespace:
            argv += ["-r", f"__ns:={node.namespace}"]
        argv += ["--params-file", str(parameter_file)]
        specs.append(ProcessSpec(node.name, tuple(argv), environment, parameter_file))
    return specs


def node_process(
    name: str,
    executable: str,
    parameters: Mapping[str, object] | None = None,
    extra_args: tuple[str, ...] = (),
) -> ProcessSpec:
    """One node of this package as a process with ``-p name:=value`` parameters (tests, tools).

    Run it with :class:`~tablet_workcell.bringup.supervisor.GraphSupervisor`, which relays
    its output to logging and always stops it.
    """
    argv = [
        sys.executable,
        "-m",
        f"tablet_workcell.nodes.{executable}",
        "--ros-args",
        "-r",
        f"__node:={name}",
    ]
    for key, value in (parameters or {}).items():
        text = str(value).lower() if isinstance(value, bool) else str(value)
        argv += ["-p", f"{key}:={text}"]
    environment = dict(os.environ, PYTHONUNBUFFERED="1")
    return ProcessSpec(name, tuple(argv), environment, None)
