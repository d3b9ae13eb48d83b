"""Load and validate the declarative node-graph description (``config/workcell.yaml``).

The description is the one source of truth for which nodes run with which parameters.
Everything in it is checked before any process starts: unknown keys, unknown node
executables, duplicate node names, parameter types and ranges, files that parameters
point to. Each problem is reported as one sentence naming the file, the value and the fix.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tablet_workcell.bringup.catalog import NODE_TYPES, NodeType, RunsWhen
from tablet_workcell.devices.serve import SIMULATORS  # the registry only; no simulator is imported
from tablet_workcell.errors import ConfigError
from tablet_workcell.parameters import ParamValue, resolve_parameters

NODE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
NAMESPACE = re.compile(r"^(/[A-Za-z][A-Za-z0-9_]*)*$")
DISCOVERY_RANGES = ("LOCALHOST", "SUBNET", "SYSTEM_DEFAULT", "OFF")
TOP_LEVEL_KEYS = {"ros", "environment", "simulators", "nodes"}
SIMULATOR_KEYS = {"name", "options", "faults"}
#: placeholder in parameter values for the folder where simulators link their ports
PORTS_PLACEHOLDER = "{ports}"
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
ROS_KEYS = {"discovery_range", "fastdds_profile", "namespace"}
NODE_KEYS = {"name", "executable", "when", "namespace", "parameters", "sim_parameters"}
WHEN_VALUES: tuple[RunsWhen, ...] = ("always", "sim", "real")


@dataclass(frozen=True)
class NodeLaunch:
    """One node to start: what runs, under which name, with which parameters."""

    name: str
    executable: str
    namespace: str
    parameters: dict[str, ParamValue]

    @property
    def module(self) -> str:
        return NODE_TYPES[self.executable].module

    def ros_parameters(self) -> dict[str, ParamValue]:
        """Parameters as handed to ROS: empty lists are left out (the node's declared default
        applies), because a parameter file or launch argument cannot carry the type of an
        empty list and rclpy would see the parameter as not set."""
        return {name: value for name, value in self.parameters.items() if value != []}


@dataclass(frozen=True)
class SimulatorLaunch:
    """One simulator process (sim only): serves its instruments' ports as ptys."""

    name: str
    options: dict[str, str]
    faults: dict[str, str]
    time_scale: float = 1.0

    def argv(self, ports_directory: Path) -> list[str]:
        argv = ["-m", "tablet_workcell.devices.serve", self.name, "--link-dir", str(ports_directory)]
        for key, value in sorted(self.options.items()):
            argv += ["--option", f"{key}={value}"]
        for key, value in sorted(self.faults.items()):
            argv += ["--fault", f"{key}={value}"]
        return [*argv, "--time-scale", repr(self.time_scale)]


@dataclass(frozen=True)
class GraphDescription:
    """The validated graph for one bring-up (simulated or real)."""

    source: Path
    sim: bool
    nodes: tuple[NodeLaunch, ...]
    environment: dict[str, str] = field(default_factory=dict)
    simulators: tuple[SimulatorLaunch, ...] = ()

    def node(self, name: str) -> NodeLaunch:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)


def _unknown_keys(where: str, found: Mapping[str, Any], allowed: set[str]) -> None:
    for key in found:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise ConfigError(
                f"{where}: unknown key '{key}'.{hint} Allowed keys: {', '.join(sorted(allowed))}."
            )


def _mapping(value: object, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must be a mapping of key: value, not {type(value).__name__}.")
    return value


def read_yaml(path: Path) -> dict[str, Any]:
    """Parse a YAML file into a mapping, with errors that name the file and line."""
    if not path.is_file():
        raise ConfigError(f"graph description {path} does not exist; pass --config with an existing file.")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error)
        raise ConfigError(f"{path}{at}: not valid YAML ({problem}); fix the syntax there.") from None
    return _mapping(data, str(path))


def load_graph(
    path: Path,
    sim: bool,
    parameter_overrides: Mapping[str, Mapping[str, object]] | None = None,
) -> GraphDescription:
    """Read ``path`` and return the nodes to start for ``sim`` (True) or real hardware.

    ``parameter_overrides`` maps node name -> {parameter: value}; they are validated
    like values from the file (command-line overrides use this).
    """
    data = read_yaml(path)
    _unknown_keys(str(path), data, TOP_LEVEL_KEYS)
    ros = _mapping(data.get("ros"), f"{path}: 'ros'")
    _unknown_keys(f"{path}: ros", ros, ROS_KEYS)
    raw_nodes = data.get("nodes")
    if not isinstance(raw_nodes, list) or not raw_nodes:
        raise ConfigError(f"{path}: 'nodes' must be a non-empty list of nodes to start.")

    overrides = {name: dict(values) for name, values in (parameter_overrides or {}).items()}
    default_namespace = _namespace(ros.get("namespace", ""), f"{path}: ros.namespace")
    nodes: list[NodeLaunch] = []
    seen: set[tuple[str, str]] = set()
    for index, raw in enumerate(raw_nodes):
        where = f"{path}: nodes[{index}]"
        entry = _mapping(raw, where)
        _unknown_keys(where, entry, NODE_KEYS)
        node_type = _node_type(entry.get("executable"), where)
        name = entry.get("name", node_type.executable)
        if not isinstance(name, str) or not NODE_NAME.match(name):
            raise ConfigError(
                f"{where}: node name {name!r} is not a valid ROS name; use letters, digits, '_'."
            )
        where = f"{path}: node '{name}'"
        when = entry.get("when", "always")
        if when not in WHEN_VALUES:
            raise ConfigError(f"{where}: when: {when!r} is not one of {', '.join(WHEN_VALUES)}.")
        if (when == "sim" and not sim) or (when == "real" and sim):
            continue
        namespace = _namespace(entry.get("namespace", default_namespace), f"{where}: namespace")
        if (namespace, name) in seen:
            raise ConfigError(
                f"{where}: a second node named '{namespace}/{name}'; node names must be unique."
            )
        seen.add((namespace, name))
        values = _mapping(entry.get("parameters"), f"{where}: parameters")
        sim_values = _mapping(entry.get("sim_parameters"), f"{where}: sim_parameters")
        if sim:  # the one switch: simulated ports (and other sim settings) replace the real ones
            values.update(sim_values)
        values.update(overrides.pop(name, {}))
        parameters = resolve_parameters(node_type.parameters, values, where)
        _check_paths(node_type, parameters, path.parent.parent, where)
        if sim and node_type.uses_sim_time:
            parameters["use_sim_time"] = True
        nodes.append(NodeLaunch(name, node_type.executable, namespace, parameters))

    if overrides:
        unknown = ", ".join(sorted(overrides))
        known = ", ".join(node.name for node in nodes)
        raise ConfigError(
            f"parameter override for node(s) {unknown} not started in this graph; nodes started: {known}."
        )
    environment = _environment(ros, path)
    environment.update(_extra_environment(data.get("environment"), path))
    simulators = _simulators(data.get("simulators"), path, nodes) if sim else ()
    if simulators:
        nodes = [_with_instrument_time(node, simulators[0].time_scale) for node in nodes]
    return GraphDescription(path, sim, tuple(nodes), environment, simulators)


def _with_instrument_time(node: NodeLaunch, time_scale: float) -> NodeLaunch:
    """Nodes that pace themselves in instrument time (``time_scale``) follow the simulators' clock.

    The simulators run ``time_scale`` instrument seconds per wall second (the simulated
    clock's real-time factor); a node with its own ``time_scale`` parameter gets the same
    value, so ``workcell up --rtf 100`` cannot leave a dispenser timing doses at 1x.
    """
    if "time_scale" not in node.parameters:
        return node
    return NodeLaunch(
        node.name, node.executable, node.namespace, {**node.parameters, "time_scale": time_scale}
    )


def _simulators(value: object, path: Path, nodes: list[NodeLaunch]) -> tuple[SimulatorLaunch, ...]:
    """Simulator processes; their clock runs as fast as the simulated ROS clock."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ConfigError(f"{path}: 'simulators' must be a list of simulators to start in simulation.")
    clock = next((n for n in nodes if n.executable == "sim_clock"), None)
    factor = clock.parameters.get("real_time_factor", 1.0) if clock else 1.0
    time_scale = float(factor) if isinstance(factor, int | float) else 1.0
    launches = []
    for index, raw in enumerate(value):
        where = f"{path}: simulators[{index}]"
        entry = _mapping(raw, where)
        _unknown_keys(where, entry, SIMULATOR_KEYS)
        name = entry.get("name")
        if name not in SIMULATORS:
            close = difflib.get_close_matches(str(name), SIMULATORS, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise ConfigError(
                f"{where}: unknown simulator {name!r}.{hint} Known: {', '.join(sorted(SIMULATORS))}."
            )
        options = {str(k): str(v) for k, v in _mapping(entry.get("options"), f"{where}: options").items()}
        faults = {str(k): str(v) for k, v in _mapping(entry.get("faults"), f"{where}: faults").items()}
        launches.append(SimulatorLaunch(str(name), options, faults, time_scale))
    return tuple(launches)


def _node_type(executable: object, where: str) -> NodeType:
    if not isinstance(executable, str) or executable not in NODE_TYPES:
        close = difflib.get_close_matches(str(executable), NODE_TYPES, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise ConfigError(
            f"{where}: unknown node executable {executable!r}.{hint} "
            f"This package provides: {', '.join(sorted(NODE_TYPES))}."
        )
    return NODE_TYPES[executable]


def _namespace(value: object, where: str) -> str:
    if not isinstance(value, str) or not NAMESPACE.match(value):
        raise ConfigError(f"{where}: {value!r} is not a ROS namespace; use '' or e.g. '/cell1'.")
    return value


def _check_paths(node_type: NodeType, parameters: Mapping[str, object], share: Path, where: str) -> None:
    for spec in node_type.parameters:
        value = parameters.get(spec.name)
        if spec.is_path and isinstance(value, str) and value:
            candidate = Path(value) if Path(value).is_absolute() else share / value
            if not candidate.is_file():
                raise ConfigError(
                    f"{where}: parameter '{spec.name}' names {value}, which does not exist "
                    f"(looked for {candidate}); restore the file or point '{spec.name}' at an existing one."
                )


def _extra_environment(value: object, path: Path) -> dict[str, str]:
    extra = _mapping(value, f"{path}: 'environment'")
    for name, setting in extra.items():
        if not isinstance(name, str) or not ENV_NAME.match(name):
            raise ConfigError(f"{path}: environment: {name!r} is not a valid environment variable name.")
        if not isinstance(setting, str | int | float) or isinstance(setting, bool):
            raise ConfigError(f"{path}: environment: {name} must be a string, not {type(setting).__name__}.")
    return {name: str(setting) for name, setting in extra.items()}


def _environment(ros: Mapping[str, Any], path: Path) -> dict[str, str]:
    env: dict[str, str] = {}
    discovery = ros.get("discovery_range", "LOCALHOST")
    if discovery not in DISCOVERY_RANGES:
        raise ConfigError(
            f"{path}: ros.discovery_range {discovery!r} is not one of {', '.join(DISCOVERY_RANGES)}."
        )
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = discovery
    profile = ros.get("fastdds_profile")
    if profile:
        profile_path = (path.parent / str(profile)).resolve()
        if not profile_path.is_file():
            raise ConfigError(
                f"{path}: ros.fastdds_profile {profile} does not exist (looked for {profile_path}); "
                "restore it or remove the key to use Fast DDS defaults."
            )
        env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(profile_path)
    return env
