"""Parameters of the camera node, declared once.

The catalog validates the graph description against :data:`CAMERA_NODE_PARAMETERS`; the
node declares :data:`CAMERA_SPECS` (its base class declares the shared instrument-node
parameters: simulated, autostart, connect_timeout_s, status_period_s, traffic_log_dir).
"""

from __future__ import annotations

from tablet_workcell.devices.node_parameters import DEVICE_NODE_PARAMETERS
from tablet_workcell.parameters import ParamSpec

CAMERA_SPECS: tuple[ParamSpec, ...] = (
    ParamSpec(
        "source",
        "str",
        "/dev/video0",
        "frame source: a video device (/dev/video0 or 0), a video file, a stream URL "
        "(http://…/stream.mjpg, rtsp://…) or a .url file holding one (the simulator's {ports}/camera.url)",
    ),
    ParamSpec(
        "calibration_path",
        "str",
        "config/camera_calibration.yaml",
        "camera calibration (image size, frame_id, pixel_size_m, intrinsics); relative to the package share",
        is_path=True,
    ),
    ParamSpec("loop", "bool", False, "replay a video file from its start when it ends"),
    ParamSpec(
        "realtime",
        "bool",
        True,
        "play a video file at its own frame rate (false: as fast as it decodes, for re-analysis)",
    ),
    ParamSpec(
        "frame_rate_hz",
        "float",
        0.0,
        "frame rate asked of a video device [Hz]; 0 keeps the device's default",
        minimum=0.0,
        maximum=1000.0,
    ),
    ParamSpec(
        "open_timeout_s",
        "float",
        5.0,
        "longest wait for a network stream to open [s]",
        minimum=0.1,
        maximum=60.0,
    ),
    ParamSpec(
        "read_timeout_s",
        "float",
        2.0,
        "a live source that sends no frame for this long is lost (diagnostics error, reconnect) [s]",
        minimum=0.05,
        maximum=60.0,
    ),
    ParamSpec(
        "reconnect_period_s",
        "float",
        1.0,
        "while configured, a lost source is reopened this often [s]",
        minimum=0.05,
        maximum=60.0,
    ),
)

CAMERA_NODE_PARAMETERS: tuple[ParamSpec, ...] = (*DEVICE_NODE_PARAMETERS, *CAMERA_SPECS)
