"""The node executables this package provides, with their declared parameters.

A node listed in ``config/workcell.yaml`` must name one of these executables; each has
a module ``tablet_workcell.nodes.<executable>`` (source: ``nodes/<executable>.py``) with
a ``main()``, installed as ``lib/tablet_workcell/<executable>`` for ROS 2 launch and as
the console script ``tablet_workcell_<executable>``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from tablet_workcell.cell_status import CELL_STATUS_PARAMETERS
from tablet_workcell.data.recording_config import RECORDER_PARAMETERS
from tablet_workcell.devices.arm.node_parameters import ARM_NODE_PARAMETERS
from tablet_workcell.devices.camera.node_parameters import CAMERA_NODE_PARAMETERS
from tablet_workcell.devices.dosing.node_parameters import DISPENSER_PARAMETERS
from tablet_workcell.devices.press.node_parameters import PRESS_NODE_PARAMETERS
from tablet_workcell.devices.syringe_pump.node_parameters import SYRINGE_PUMP_PARAMETERS
from tablet_workcell.interlocks import INTERLOCK_PARAMETERS
from tablet_workcell.optim.parameters import OPTIMISER_PARAMETERS
from tablet_workcell.parameters import ParamSpec
from tablet_workcell.safety import SAFETY_PARAMETERS
from tablet_workcell.simtime import CLOCK_PARAMETERS
from tablet_workcell.vision.node_parameters import DISINTEGRATION_PARAMETERS

RunsWhen = Literal["always", "sim", "real"]


@dataclass(frozen=True)
class NodeType:
    executable: str
    summary: str
    parameters: tuple[ParamSpec, ...]
    uses_sim_time: bool = True  # follows /clock in simulation

    @property
    def module(self) -> str:
        return f"tablet_workcell.nodes.{self.executable}"


NODE_TYPES: dict[str, NodeType] = {
    node.executable: node
    for node in (
        NodeType(
            "sim_clock",
            "publishes /clock at a configurable real-time factor (simulation only)",
            CLOCK_PARAMETERS,
            uses_sim_time=False,
        ),
        NodeType(
            "safety",
            "latched emergency stop, zone interlocks between stations, heartbeat watchdog",
            (*SAFETY_PARAMETERS, *INTERLOCK_PARAMETERS),
        ),
        NodeType(
            "cell_status",
            "aggregates station status and the e-stop into /workcell/status",
            CELL_STATUS_PARAMETERS,
        ),
        NodeType(
            "recorder",
            "records every topic to MCAP and registers the files in the store",
            RECORDER_PARAMETERS,
        ),
        NodeType(
            "optimiser",
            "suggests experiments and learns from results (ask/tell services), history from the store",
            OPTIMISER_PARAMETERS,
        ),
        NodeType(
            "dispenser",
            "dispensing station: gravimetric dosing of a recipe from one dosing head per powder onto the "
            "balance (action), balance readings",
            DISPENSER_PARAMETERS,
        ),
        NodeType(
            "syringe_pump",
            "syringe pump (NE-1000): places the water droplet of the disintegration test (action)",
            SYRINGE_PUMP_PARAMETERS,
        ),
        NodeType(
            "camera",
            "disintegration station camera: sensor_msgs/Image + CameraInfo from a video device, file or "
            "network stream (the simulated station's MJPEG stream), pixel scale from the calibration",
            CAMERA_NODE_PARAMETERS,
        ),
        NodeType(
            "disintegration",
            "sessile-drop disintegration test (action): droplet through the syringe pump, live droplet "
            "segmentation and measurement, regimes, fits and figures; overlay image and area curve",
            DISINTEGRATION_PARAMETERS,
        ),
        NodeType(
            "arm",
            "robot arm (Marlin G-code): station transfers (action) under the press-zone interlock, "
            "joint states, tool pose and RViz markers of the cell",
            ARM_NODE_PARAMETERS,
        ),
        NodeType(
            "press",
            "tablet press: compaction to a target pressure with in-die analysis, breaking test (actions), "
            "live force, press-zone interlock",
            PRESS_NODE_PARAMETERS,
        ),
    )
}
