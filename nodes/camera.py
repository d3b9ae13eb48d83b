"""camera: the disintegration station's camera as ROS images (station ``camera``).

* ``~/image_raw`` (sensor_msgs/Image, ``bgr8``, header.frame_id from the calibration, e.g.
  ``camera_optical_frame``): every frame while active, published serialized through
  :mod:`tablet_workcell.image_wire` (one copy of the pixels, docs/image_transport.md).
* ``~/camera_info`` (sensor_msgs/CameraInfo): with every image, same stamp; K, D, R, P from
  the calibration file (K all zeros: intrinsics not calibrated).
* ``~/pixel_size_m`` (std_msgs/Float64, latched): the object-side size of one pixel in
  metres (x 1e3 for mm/px), which CameraInfo has no field for; the disintegration
  analysis turns droplet pixels into mm^2 with it.
* Station status ``camera`` and diagnostics (connection, fps, frames published / failed /
  dropped, last error) from the base class.

Lifecycle: configure loads the calibration, opens the source (retrying up to
``connect_timeout_s`` while a device or stream is not there yet) and checks the first
frame's size against the calibration; activate starts publishing; deactivate stops it;
cleanup releases the source. While configured, a lost live source is reopened every
``reconnect_period_s``. The camera does not move, so the e-stop leaves it filming.
"""

from __future__ import annotations

from pathlib import Path

from rclpy.lifecycle import LifecycleState, TransitionCallbackReturn
from sensor_msgs.msg import CameraInfo, Image, RegionOfInterest
from std_msgs.msg import Float64

from tablet_workcell.bringup.paths import share_directory
from tablet_workcell.devices.camera.calibration import CalibrationError, CameraCalibration, load_calibration
from tablet_workcell.devices.camera.capture import FrameGrabber
from tablet_workcell.devices.camera.driver import CameraFrame, CameraSource
from tablet_workcell.devices.camera.health import CameraHealth
from tablet_workcell.devices.camera.node_parameters import CAMERA_SPECS
from tablet_workcell.devices.errors import DeviceError
from tablet_workcell.devices.health import DeviceHealth
from tablet_workcell.image_wire import encode_image
from tablet_workcell.ros.device_node import DeviceNode
from tablet_workcell.ros.qos import IMAGES, LATCHED
from tablet_workcell.ros.runner import run_node

ENCODING = "bgr8"


class CameraNode(DeviceNode):
    station = "camera"

    def __init__(self) -> None:
        super().__init__("camera", CAMERA_SPECS)
        self._health = CameraHealth("camera")
        self._grabber: FrameGrabber | None = None
        self._calibration: CameraCalibration | None = None
        self._info = CameraInfo()
        self._image_pub = self.create_publisher(Image, "~/image_raw", IMAGES)
        self._info_pub = self.create_publisher(CameraInfo, "~/camera_info", IMAGES)
        self._scale_pub = self.create_publisher(Float64, "~/pixel_size_m", LATCHED)

    # ------------------------------------------------------------------ instrument
    def connect(self) -> list[DeviceHealth]:
        calibration = self._calibration = self._load_calibration()
        values = self.values
        source = CameraSource(
            values.get_str("source"),
            loop=values.get_bool("loop"),
            realtime=values.get_bool("realtime"),
            open_timeout_s=values.get_float("open_timeout_s"),
            read_timeout_s=values.get_float("read_timeout_s"),
            frame_rate_hz=values.get_float("frame_rate_hz"),
            width=calibration.image_width,
            height=calibration.image_height,
        )
        try:
            source.open()
            first = source.read()
        except DeviceError:
            source.close()
            raise
        mismatch = calibration.size_mismatch(first.width, first.height)
        if mismatch:
            source.close()
            raise DeviceError("camera", mismatch, "size")
        self._info = _camera_info(calibration)
        self._health.connected_to(
            values.get_str("source"),
            f"{source.identity}, {first.width}x{first.height}, {calibration.pixel_size_mm:.4g} mm/px",
        )
        self._scale_pub.publish(Float64(data=calibration.pixel_size_m))
        self._grabber = FrameGrabber(
            source,
            self._health,
            self._publish,
            expected_size=(calibration.image_width, calibration.image_height),
            reconnect_period_s=values.get_float("reconnect_period_s"),
            on_error=lambda error: self.record_error(self._health, error),
        )
        self._grabber.start(first)
        return [self._health]

    def _load_calibration(self) -> CameraCalibration:
        path = Path(self.values.get_str("calibration_path"))
        if not path.is_absolute():
            path = share_directory() / path
        try:
            return load_calibration(path)
        except CalibrationError as error:
            raise DeviceError("camera", str(error), "calibration") from error

    def disconnect(self) -> None:
        grabber, self._grabber = self._grabber, None
        if grabber is not None:
            values = self.values
            grabber.stop(values.get_float("open_timeout_s") + values.get_float("read_timeout_s") + 1.0)
        self._health.disconnected()
        self.health = []

    def halt(self) -> None:
        """Nothing moves: the e-stop leaves the camera filming (the record of what happened)."""

    # ------------------------------------------------------------------ lifecycle
    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        result = super().on_activate(state)
        if self._grabber is not None:
            self._grabber.set_streaming(True)
        return result

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        if self._grabber is not None:
            self._grabber.set_streaming(False)
        return super().on_deactivate(state)

    # ------------------------------------------------------------------ frames
    def _publish(self, frame: CameraFrame) -> None:
        """Called on the capture thread: image (serialized, one copy) and its CameraInfo."""
        calibration = self._calibration
        assert calibration is not None  # set before the grabber starts
        now = self.get_clock().now()
        self._image_pub.publish(encode_image(frame.image, ENCODING, now.nanoseconds, calibration.frame_id))
        info = self._info
        info.header.stamp = now.to_msg()
        self._info_pub.publish(info)


def _camera_info(calibration: CameraCalibration) -> CameraInfo:
    info = CameraInfo(
        height=calibration.image_height,
        width=calibration.image_width,
        distortion_model=calibration.distortion_model,
        d=list(calibration.distortion_coefficients),
        k=list(calibration.camera_matrix),
        r=list(calibration.rectification_matrix),
        p=list(calibration.projection_matrix),
        binning_x=0,
        binning_y=0,
        roi=RegionOfInterest(),
    )
    info.header.frame_id = calibration.frame_id
    return info


def main() -> int:
    return run_node(CameraNode, threads=4)


if __name__ == "__main__":
    raise SystemExit(main())
