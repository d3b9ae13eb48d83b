"""Parameters of the disintegration node, declared once (the catalog must not import ROS).

The catalog validates the graph description against :data:`DISINTEGRATION_PARAMETERS`;
the node declares :data:`DISINTEGRATION_SPECS` (its base class declares the shared
instrument-node parameters). Model paths are relative to the package share directory
(``models/`` is installed there) unless absolute; the launcher refuses a graph whose model
file is missing, and the node's configure fails with the reason when it is missing or does
not match its card.
"""

from __future__ import annotations

from tablet_workcell.devices.node_parameters import DEVICE_NODE_PARAMETERS
from tablet_workcell.parameters import ParamSpec

SEGMENTER_KINDS = ("onnx", "classical")
IMAGE_TOPIC = "/camera/image_raw"
CAMERA_INFO_TOPIC = "/camera/camera_info"
PIXEL_SIZE_TOPIC = "/camera/pixel_size_m"
PUMP_ACTION = "/syringe_pump/dispense_droplet"

DISINTEGRATION_SPECS: tuple[ParamSpec, ...] = (
    ParamSpec(
        "segmenter",
        "str",
        "onnx",
        "droplet segmentation: the ONNX U-Net (model_path) or the classical OpenCV baseline",
        choices=SEGMENTER_KINDS,
    ),
    ParamSpec(
        "model_path",
        "str",
        "models/droplet_segmentation.onnx",
        "segmentation model (ONNX, with its .card.json beside it), relative to the package share",
        is_path=True,
    ),
    ParamSpec(
        "regime_model_path",
        "str",
        "",
        "learned regime model (ONNX) relative to the package share; empty: the physics baseline",
        is_path=True,
    ),
    ParamSpec("analysis_threads", "int", 1, "onnxruntime threads of the segmentation", minimum=1, maximum=16),
    ParamSpec("image_topic", "str", IMAGE_TOPIC, "camera images (sensor_msgs/Image)"),
    ParamSpec(
        "camera_info_topic", "str", CAMERA_INFO_TOPIC, "camera info (sensor_msgs/CameraInfo: image size)"
    ),
    ParamSpec(
        "pixel_size_topic",
        "str",
        PIXEL_SIZE_TOPIC,
        "the camera's pixel size in the droplet plane (std_msgs/Float64, latched) [m]",
    ),
    ParamSpec(
        "pixel_size_m",
        "float",
        0.0,
        "pixel size [m] overriding the camera's topic; 0: take it from pixel_size_topic",
        minimum=0.0,
        maximum=1e-3,
    ),
    ParamSpec("pump_action", "str", PUMP_ACTION, "the syringe pump's DispenseDroplet action"),
    ParamSpec(
        "flow_rate_m3_per_s",
        "float",
        0.0,
        "droplet infusion rate [m^3/s]; 0: the pump node's default",
        minimum=0.0,
        maximum=1e-6,
    ),
    ParamSpec(
        "dispense_timeout_s",
        "float",
        60.0,
        "longest wait for the pump to place the droplet (wall clock) [s]",
        minimum=1.0,
        maximum=600.0,
    ),
    ParamSpec(
        "default_max_duration_s",
        "float",
        120.0,
        "test length after contact when a goal gives max_duration_s 0 [s]",
        minimum=0.1,
        maximum=7200.0,
    ),
    ParamSpec(
        "absorbed_margin_s",
        "float",
        1.0,
        "the test ends this long after the droplet disappeared (fully absorbed) [s]",
        minimum=0.0,
        maximum=60.0,
    ),
    ParamSpec(
        "default_tablet_thickness_m",
        "float",
        0.0,
        "tablet thickness when a goal gives 0 [m]; 0: none (the goal must give it)",
        minimum=0.0,
        maximum=0.02,
    ),
    ParamSpec(
        "default_tablet_diameter_m",
        "float",
        0.0,
        "tablet diameter when a goal gives 0 [m]; 0: unknown (no lateral cap on the wetted region)",
        minimum=0.0,
        maximum=0.05,
    ),
    ParamSpec(
        "default_tablet_porosity",
        "float",
        0.0,
        "tablet porosity when a goal gives 0; 0: none (the goal must give it)",
        minimum=0.0,
        maximum=0.99,
    ),
    ParamSpec(
        "default_tensile_strength_pa",
        "float",
        0.0,
        "tablet tensile strength when a goal gives 0 [Pa]; 0: unknown (no predicted disintegration time)",
        minimum=0.0,
        maximum=1e9,
    ),
    ParamSpec(
        "default_soluble_fraction",
        "float",
        0.0,
        "soluble mass fraction of the blend when a goal gives 0",
        minimum=0.0,
        maximum=1.0,
    ),
    ParamSpec(
        "max_pending_frames",
        "int",
        2,
        "camera frames waiting for the analysis; more arrive while it is behind: the oldest is skipped",
        minimum=1,
        maximum=30,
    ),
    ParamSpec(
        "overlay_rate_hz",
        "float",
        5.0,
        "overlay images per second on ~/overlay (0: none)",
        minimum=0.0,
        maximum=60.0,
    ),
    ParamSpec(
        "recording_dir",
        "str",
        "runs/disintegration",
        "where each test's lossless frame recording goes (workcell analyse-video re-analyses it); "
        "empty: no recording",
    ),
    ParamSpec(
        "time_scale",
        "float",
        1.0,
        "instrument seconds per wall second (simulated station); scales frame stamps only when this node "
        "runs on the wall clock: with use_sim_time the stamps are instrument time already",
        minimum=0.001,
        maximum=1000.0,
    ),
    ParamSpec(
        "frame_timeout_s",
        "float",
        5.0,
        "a goal fails when no camera frame arrives for this long (wall clock) [s]",
        minimum=0.1,
        maximum=120.0,
    ),
)

DISINTEGRATION_PARAMETERS: tuple[ParamSpec, ...] = (*DEVICE_NODE_PARAMETERS, *DISINTEGRATION_SPECS)
