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

from tablet_workcell.bringup.description import GraphDescription, NodeLaunch


@dataclass(frozen=True)
class ProcessSpec:
    name: str
    argv: tuple[str, ...]
    environment: dict[str, str]
    parameter_file: Path


def parameter_file_content(node: NodeLaunch) -> dict[str, object]:
    """ROS 2 parameter-file content for one node (``/**`` matches it, the file is its own)."""
    return {"/**": {"ros__parameters": node.ros_parameters()}}


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
    for node in graph.nodes:
        parameter_file = run_directory / f"{node.name}.params.yaml"
        parameter_file.write_text(yaml.safe_dump(parameter_file_content(node), sort_keys=True))
        argv = [sys.executable, "-m", node.module, "--ros-args", "-r", f"__node:={node.name}"]
        if node.namespace:
            argv += ["-r", f"__ns:={node.namespace}"]
        argv += ["--params-file", str(parameter_file)]
        specs.append(ProcessSpec(node.name, tuple(argv), environment, parameter_file))
    return specs
