"""Parameters of the arm node (declared here so the launcher checks them without ROS).

``ARM_NODE_SPECS`` are the arm's own (the node declares them on top of the shared
instrument-node parameters); ``ARM_NODE_PARAMETERS`` is everything the node declares,
what the catalog validates a graph description against.
"""

from __future__ import annotations

from tablet_workcell.devices.node_parameters import DEVICE_NODE_PARAMETERS, port_parameters
from tablet_workcell.parameters import ParamSpec

ARM_NODE_SPECS: tuple[ParamSpec, ...] = (
    *port_parameters("", baudrate=250000),  # Marlin's default BAUDRATE
    ParamSpec(
        "layout_path",
        "str",
        "config/cell_layout.yaml",
        "cell layout: station poses, safe travel height, press zone, work envelope (relative: to the "
        "package share directory)",
        is_path=True,
    ),
    ParamSpec(
        "frame_id",
        "str",
        "workcell",
        "fixed frame of the tool pose and every marker (RViz's Fixed Frame must be set to it)",
    ),
    ParamSpec(
        "require_zone",
        "bool",
        True,
        "hold the press zone (/safety/zone_access) for every leg through it; false only for bench tests "
        "without a safety node",
    ),
    ParamSpec(
        "zone_timeout_s",
        "float",
        2.0,
        "longest wait for the safety node's answer to a zone request [s]",
        minimum=0.1,
        maximum=30.0,
    ),
    ParamSpec(
        "joint_state_rate_hz",
        "float",
        20.0,
        "rate of joint states, tool pose, marker refreshes and position polls during a transfer [Hz]",
        minimum=1.0,
        maximum=200.0,
    ),
    ParamSpec(
        "idle_poll_period_s",
        "float",
        1.0,
        "period of position reads while no transfer runs (the arm only moves when told) [s]",
        minimum=0.05,
        maximum=60.0,
    ),
    ParamSpec(
        "settle_s",
        "float",
        0.2,
        "dwell after switching the suction, for the vacuum to build or collapse [s]",
        minimum=0.0,
        maximum=5.0,
    ),
    ParamSpec(
        "home_timeout_s",
        "float",
        120.0,
        "longest wait for homing (G28) [s]",
        minimum=1.0,
        maximum=600.0,
    ),
)

ARM_NODE_PARAMETERS: tuple[ParamSpec, ...] = (*DEVICE_NODE_PARAMETERS, *ARM_NODE_SPECS)
