"""Parameters of the press node (declared here so the launch catalog can check them without ROS).

``PRESS_NODE_SPECS`` are the press's own (the node declares them on top of the shared
instrument-node parameters); ``PRESS_NODE_PARAMETERS`` is everything the node declares,
what the catalog validates a graph description against.
"""

from __future__ import annotations

from tablet_workcell.devices.node_parameters import DEVICE_NODE_PARAMETERS, port_parameters
from tablet_workcell.devices.press.driver import BAUDRATE
from tablet_workcell.parameters import ParamSpec

PRESS_NODE_SPECS: tuple[ParamSpec, ...] = (
    *port_parameters("", BAUDRATE),
    ParamSpec(
        "sample_rate_hz",
        "int",
        250,
        "rate the press streams force and travel at during a cycle: 50, 100 or 250 Hz (set at configure)",
        minimum=50,
        maximum=250,
    ),
    ParamSpec(
        "require_zone",
        "bool",
        True,
        "hold the press zone (/safety/zone_access) for every cycle, so the press never closes on the arm",
    ),
    ParamSpec(
        "zone_timeout_s",
        "float",
        5.0,
        "longest wait for the safety node to grant or refuse the press zone [s]",
        minimum=0.1,
        maximum=60.0,
    ),
    ParamSpec(
        "cycle_timeout_s",
        "float",
        180.0,
        "a cycle still streaming after this long is stopped (STP) and fails [s]",
        minimum=1.0,
        maximum=3600.0,
    ),
    ParamSpec(
        "stream_timeout_s",
        "float",
        2.0,
        "longest silence inside a cycle's sample stream before the driver stops the press [s]",
        minimum=0.1,
        maximum=30.0,
    ),
    ParamSpec(
        "feedback_rate_hz",
        "float",
        20.0,
        "most action feedback messages per second (each carries the latest sample)",
        minimum=0.1,
        maximum=250.0,
    ),
    ParamSpec(
        "force_rate_hz",
        "float",
        250.0,
        "most /press/force messages per second (250: every sample at the press's top rate)",
        minimum=0.1,
        maximum=1000.0,
    ),
    ParamSpec(
        "punch_frame_id",
        "str",
        "press_upper_punch",
        "frame of /press/force while compacting (z along the punch axis, compression positive)",
    ),
    ParamSpec(
        "platen_frame_id",
        "str",
        "press_breaking_platen",
        "frame of /press/force during a breaking test (z along the platen's travel, compression positive)",
    ),
)

PRESS_NODE_PARAMETERS: tuple[ParamSpec, ...] = (*DEVICE_NODE_PARAMETERS, *PRESS_NODE_SPECS)
