"""disintegration: the sessile-drop test, live (station ``disintegration``).

* ``~/test`` (tablet_workcell/action/DisintegrationTest): asks the syringe pump
  (``pump_action``, DispenseDroplet) for the droplet, analyses the camera's frames live
  from droplet contact (t = 0: the first frame with a droplet) until the droplet is fully
  absorbed plus ``absorbed_margin_s``, or ``max_duration_s``, and returns the series,
  regimes, fits, absorption time and predicted disintegration time. Feedback per analysed
  frame (at most 10 Hz): time since contact, area, contact angle, tablet height, regime,
  the frame's status and the analysed/skipped counts. Cancel and e-stop cancel the pump's
  goal (the pump node stops the plunger) and end the test with what was measured.
* ``~/overlay`` (sensor_msgs/Image bgr8, at most ``overlay_rate_hz``): the frame with the
  droplet contour, baseline and numbers.
* ``~/droplet_area`` (geometry_msgs/PointStamped, every analysed frame after contact):
  the live area curve, x = time since contact [s], y = droplet area [m^2], z = tablet
  height [m], stamped with the frame's camera stamp (plot y against x).
* Subscribes to ``image_topic`` (raw: decoded in place, no copies), ``camera_info_topic``
  (image size) and ``pixel_size_topic`` (latched pixel scale), unless ``pixel_size_m`` is set.
* Every test's analysed frames go to a lossless recording in ``recording_dir``
  (``workcell analyse-video`` re-analyses it to the same numbers).

Configure loads the segmentation model (``segmenter`` onnx: ``model_path`` checked against
its card, or the classical baseline) and the regime model: a missing or mismatched model
fails configure with the reason, in the log and in diagnostics (ERROR). The analysis runs
in a worker thread; when it falls behind the camera, frames are skipped and counted,
never queued without bound. Bad frames (black, wrong size or encoding, no droplet) are
statuses in the feedback and diagnostics, never a crash.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from geometry_msgs.msg import PointStamped
from rclpy.action import ActionServer, CancelResponse
from rclpy.action.server import ServerGoalHandle
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Float64

from tablet_workcell.action import DisintegrationTest
from tablet_workcell.bringup.paths import share_directory
from tablet_workcell.devices.errors import DeviceError
from tablet_workcell.devices.health import DeviceHealth
from tablet_workcell.image_wire import ImageWireError, decode_image, encode_image
from tablet_workcell.ros.device_node import DeviceNode
from tablet_workcell.ros.disintegration_messages import (
    FeedbackThrottle,
    area_point,
    failure_result,
    result_message,
    tablet_from_goal,
)
from tablet_workcell.ros.goal_outcome import end_goal
from tablet_workcell.ros.pump_client import PumpClient, PumpError
from tablet_workcell.ros.qos import IMAGES, LATCHED
from tablet_workcell.ros.runner import run_node
from tablet_workcell.vision.live import LiveSession
from tablet_workcell.vision.node_parameters import DISINTEGRATION_SPECS
from tablet_workcell.vision.pipeline import FrameAnalyser, draw_overlay
from tablet_workcell.vision.reanalysis import describe, load_regime_model, load_segmenter, recording_settings
from tablet_workcell.vision.recording import FrameRecordingWriter
from tablet_workcell.vision.session import DisintegrationSession, LiveSample, SessionSettings, TabletInfo
from tablet_workcell.vision.types import FrameStatus, Segmenter, VisionError

GoalHandle = ServerGoalHandle[Any, Any, Any]
FEEDBACK_PERIOD_S = 0.1
LOOP_S = 0.02


@dataclass
class _Camera:
    """What the camera topics told us last (written by subscription callbacks)."""

    pixel_size_m: float = math.nan
    shape: tuple[int, int] | None = None  # (rows, columns) from CameraInfo
    last_frame_s: float = 0.0  # time.monotonic() of the latest frame


class DisintegrationNode(DeviceNode):
    station = "disintegration"

    def __init__(self) -> None:
        super().__init__("disintegration", DISINTEGRATION_SPECS)
        values = self.values
        self._segmenter: Segmenter | None = None
        self._regime_model: Any = None
        self._model_health = DeviceHealth("segmenter")
        self._camera_health = DeviceHealth("camera")
        self._camera = _Camera()
        self._live: LiveSession | None = None
        self._live_lock = threading.Lock()
        self._latest: LiveSample | None = None
        self._next_overlay_s = 0.0
        self._reported: set[str] = set()
        self._goal: GoalHandle | None = None
        use_sim_time = bool(self.get_parameter("use_sim_time").value)
        self._stamp_scale = 1.0 if use_sim_time else values.get_float("time_scale")
        camera_group = MutuallyExclusiveCallbackGroup()
        self.create_subscription(
            Image,
            values.get_str("image_topic"),
            self._on_image,
            IMAGES,
            callback_group=camera_group,
            raw=True,
        )
        self.create_subscription(
            CameraInfo,
            values.get_str("camera_info_topic"),
            self._on_info,
            IMAGES,
            callback_group=camera_group,
        )
        self.create_subscription(
            Float64,
            values.get_str("pixel_size_topic"),
            self._on_pixel_size,
            LATCHED,
            callback_group=MutuallyExclusiveCallbackGroup(),  # never waits behind a burst of images
        )
        self._overlay_pub = self.create_publisher(Image, "~/overlay", IMAGES)
        self._area_pub = self.create_publisher(PointStamped, "~/droplet_area", 50)
        self._pump = PumpClient(self, values.get_str("pump_action"), self.actions_group)
        self._action: ActionServer[Any, Any, Any] = ActionServer(
            self,
            DisintegrationTest,
            "~/test",
            self._execute,
            callback_group=self.actions_group,
            cancel_callback=self._on_cancel,
        )

    # ------------------------------------------------------------------ "instrument": the models
    def connect(self) -> list[DeviceHealth]:
        values = self.values
        kind = values.get_str("segmenter")
        model_path = self._share_path(values.get_str("model_path")) if kind == "onnx" else None
        try:
            segmenter = load_segmenter(kind, model_path, values.get_int("analysis_threads"))
            regime_path = values.get_str("regime_model_path")
            regime_model = load_regime_model(self._share_path(regime_path) if regime_path else None)
        except VisionError as error:
            raise DeviceError("disintegration", f"{error} (segmenter: {kind})", "model") from error
        self._segmenter, self._regime_model = segmenter, regime_model
        where = str(model_path) if model_path is not None else "built in"
        self._model_health.connected_to(
            where, f"{describe(segmenter)}; regimes: {describe(regime_model) or 'physics baseline'}"
        )
        self._camera_health.connected_to(values.get_str("image_topic"), "camera topic")
        return [self._model_health, self._camera_health]

    def _share_path(self, value: str) -> Path:
        path = Path(value)
        return path if path.is_absolute() else share_directory() / path

    def disconnect(self) -> None:
        self._segmenter = self._regime_model = None
        self._model_health.disconnected()
        self._camera_health.disconnected()
        self.health = []

    def halt(self) -> None:
        """Stop the droplet: cancel the pump's goal (the pump node stops its plunger)."""
        self._pump.cancel()

    # ------------------------------------------------------------------ camera topics
    def _on_info(self, message: CameraInfo) -> None:
        if message.height > 0 and message.width > 0:
            self._camera.shape = (int(message.height), int(message.width))

    def _on_pixel_size(self, message: Float64) -> None:
        self._camera.pixel_size_m = float(message.data)

    def _on_image(self, message: bytes) -> None:
        self._camera.last_frame_s = time.monotonic()
        with self._live_lock:
            live = self._live
        if live is None:
            return
        try:
            image = decode_image(message)
        except ImageWireError as error:
            stamp_ns = self.get_clock().now().nanoseconds
            live.submit_rejected(stamp_ns, FrameStatus.WRONG_ENCODING, str(error))
            return
        live.submit(image.pixels, image.stamp_ns, image.encoding)

    def _on_sample(self, sample: LiveSample, image: Any) -> None:
        """Worker thread, after each analysed frame: area curve, overlay, problems to diagnostics."""
        self._latest = sample
        status = sample.analysis.measurement.status
        if not math.isnan(sample.elapsed_s):
            self._area_pub.publish(area_point(sample))
        if status not in (FrameStatus.OK, FrameStatus.NO_DROPLET) and status.value not in self._reported:
            self._reported.add(status.value)  # once per kind and test: a bad stream must not flood the log
            message = sample.analysis.measurement.message
            self.record_error(self._camera_health, DeviceError("camera", message, status.value))
        rate = self.values.get_float("overlay_rate_hz")
        now = time.monotonic()
        if image is not None and rate > 0 and now >= self._next_overlay_s:
            self._next_overlay_s = now + 1.0 / rate
            try:
                overlay = draw_overlay(image, sample.analysis)
                self._overlay_pub.publish(encode_image(overlay, "bgr8", sample.stamp_ns, "disintegration"))
            except (VisionError, ImageWireError, ValueError) as error:
                self.get_logger().warning(f"overlay not drawn: {error}")

    # ------------------------------------------------------------------ the action
    def _on_cancel(self, goal_handle: Any) -> CancelResponse:
        if goal_handle is self._goal:
            self.stop_requested.set()
            self.halt()
        return CancelResponse.ACCEPT

    def _execute(self, goal_handle: GoalHandle) -> Any:
        refusal = self.refusal()
        if refusal:
            return self._finish(goal_handle, False, refusal)
        try:
            with self.operation("disintegration test") as stop:
                self._goal = goal_handle
                try:
                    return self._run(goal_handle, stop)
                finally:
                    self._goal = None
        except DeviceError as busy:
            return self._finish(goal_handle, False, str(busy))

    def _run(self, goal_handle: GoalHandle, stop: threading.Event) -> Any:
        goal, values = goal_handle.request, self.values
        segmenter = self._segmenter
        if segmenter is None:
            return self._finish(
                goal_handle, False, "no segmentation model is loaded; configure the node first"
            )
        problem = self._camera_problem()
        if problem:
            self.record_error(self._camera_health, DeviceError("camera", problem, "no_frames"))
            return self._finish(goal_handle, False, problem)
        settings = self._settings(goal)
        analyser = FrameAnalyser(segmenter, settings.pixel_size_m, settings.expected_shape)
        session = DisintegrationSession(analyser, settings, describe(segmenter), self._regime_model)
        max_pending = values.get_int("max_pending_frames")
        recording = self._recording(settings, segmenter, max_pending)
        live = LiveSession(session, recording, self._on_sample, max_pending).start()
        self._reported.clear()
        self._latest = None
        with self._live_lock:
            self._live = live
        failure = ""
        feedback = FeedbackThrottle(goal_handle, live, lambda: self._latest, FEEDBACK_PERIOD_S)
        try:
            failure = (
                self._tablet_is_dry(session)
                or self._dispense(goal, stop, feedback.tick)
                or self._follow(live, stop, feedback)
            )
        finally:
            with self._live_lock:
                self._live = None
        try:
            result, stats = live.finish()
        except VisionError as error:  # the analysis thread hangs or the recording broke
            self.record_error(self._model_health, DeviceError("disintegration", str(error), "analysis"))
            return self._finish(goal_handle, False, f"{failure or 'the test ended'}; {error}")
        self.get_logger().info(f"live analysis: {stats.describe()}")
        message = result.message
        if failure:
            message = f"{failure}; {message}" if message else failure
        message = f"{message}; {stats.describe()}"
        if recording is not None:
            message += f"; frames recorded to {recording.video_path}"
        success = result.success and not failure
        final = replace(result, success=success, message=message)
        stamp_ns = self.get_clock().now().nanoseconds
        return self._finish(
            goal_handle, success, message, result_message(final, stamp_ns, describe(segmenter))
        )

    def _camera_problem(self) -> str:
        camera, timeout = self._camera, self.values.get_float("frame_timeout_s")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self._closing.is_set():
            fresh = time.monotonic() - camera.last_frame_s < timeout
            if fresh and self._pixel_size_m() > 0:
                return ""
            time.sleep(LOOP_S)
        topic = self.values.get_str("image_topic")
        if time.monotonic() - camera.last_frame_s >= timeout:
            return f"no camera frames on {topic} for {timeout:g} s; is the camera node active?"
        return (
            f"the pixel size is unknown: nothing on {self.values.get_str('pixel_size_topic')} and parameter "
            "pixel_size_m is 0; set it or start the camera node with its calibration"
        )

    def _pixel_size_m(self) -> float:
        override = self.values.get_float("pixel_size_m")
        return override if override > 0 else self._camera.pixel_size_m

    def _settings(self, goal: Any) -> SessionSettings:
        values = self.values
        defaults = TabletInfo(
            thickness_m=values.get_float("default_tablet_thickness_m") or math.nan,
            porosity=values.get_float("default_tablet_porosity") or math.nan,
            diameter_m=values.get_float("default_tablet_diameter_m") or math.nan,
            tensile_strength_pa=values.get_float("default_tensile_strength_pa") or math.nan,
            soluble_fraction=values.get_float("default_soluble_fraction"),
        )
        max_duration = (
            goal.max_duration_s if goal.max_duration_s > 0 else values.get_float("default_max_duration_s")
        )
        return SessionSettings(
            pixel_size_m=self._pixel_size_m(),
            expected_shape=self._camera.shape,
            max_duration_s=float(max_duration),
            droplet_volume_m3=float(goal.droplet_volume_m3) if goal.droplet_volume_m3 > 0 else math.nan,
            absorbed_margin_s=values.get_float("absorbed_margin_s"),
            time_scale=self._stamp_scale,
            tablet=tablet_from_goal(goal, defaults),
            experiment_id=str(goal.experiment_id),
        )

    def _recording(
        self, settings: SessionSettings, segmenter: Segmenter, max_pending: int
    ) -> FrameRecordingWriter | None:
        folder = self.values.get_str("recording_dir")
        if not folder:
            return None
        unique = f"{time.strftime('%Y%m%dT%H%M%S')}_{time.monotonic_ns() % 10**6:06d}"
        name = f"{settings.experiment_id or 'test'}_{unique}"
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
        stored = recording_settings(settings, segmenter, self._regime_model, max_pending)
        return FrameRecordingWriter(
            Path(folder) / safe, stored
        )  # relative: to the working directory, as runs/

    def _tablet_is_dry(self, session: DisintegrationSession) -> str:
        """'' once a frame before the dispense shows no droplet; else why the test cannot start.

        A droplet already on the tablet (an earlier test's) would be taken for this test's
        contact and make every number wrong: the tablet must be fresh.
        """
        deadline = time.monotonic() + self.values.get_float("frame_timeout_s")
        while (sample := self._latest) is None:
            if time.monotonic() >= deadline or self._closing.is_set():
                return "no camera frame was analysed before the dispense; check the camera and the model"
            time.sleep(LOOP_S)
        if session.droplet_in_view(sample.analysis.measurement):
            return (
                "a droplet is already on the tablet before dispensing (an earlier test's?); "
                "bring a fresh tablet and start again (nothing was dispensed)"
            )
        return ""

    def _dispense(self, goal: Any, stop: threading.Event, tick: Callable[[], None]) -> str:
        """Ask the pump for the droplet (feedback of the frames meanwhile); '' when placed, else why not."""
        values = self.values
        try:
            result = self._pump.dispense(
                float(goal.droplet_volume_m3),
                values.get_float("flow_rate_m3_per_s"),
                values.get_float("dispense_timeout_s"),
                stop,
                tick,
            )
        except PumpError as error:
            return self._stop_reason(stop) or str(error)
        self.get_logger().info(f"droplet placed: {result.message}")
        return ""

    def _follow(self, live: LiveSession, stop: threading.Event, feedback: FeedbackThrottle) -> str:
        """Feedback until the session ends on its own (''), or why it was stopped."""
        timeout = self.values.get_float("frame_timeout_s")
        while not live.wait_done(LOOP_S):
            if stop.is_set():
                return self._stop_reason(stop)
            if time.monotonic() - self._camera.last_frame_s > timeout:
                problem = f"camera frames stopped for {timeout:g} s during the test"
                self.record_error(self._camera_health, DeviceError("camera", problem, "no_frames"))
                return problem
            feedback.tick()
        feedback.tick(force=True)
        return ""

    def _stop_reason(self, stop: threading.Event) -> str:
        if not stop.is_set():
            return ""
        if self.estopped.is_set():
            return f"e-stop engaged ({self.estop_reason}); the pump was stopped"
        goal = self._goal
        if goal is not None and goal.is_cancel_requested:
            return "cancelled on request; the pump was stopped"
        return f"{self.get_name()} was deactivated"

    def _finish(self, goal_handle: GoalHandle, success: bool, message: str, result: Any = None) -> Any:
        end_goal(goal_handle, self.get_logger(), success, message, self.estopped.is_set())
        if result is None:
            result = failure_result(str(goal_handle.request.experiment_id), message)
        return DisintegrationTest.Result(result=result)


def main() -> int:
    return run_node(DisintegrationNode, threads=4)


if __name__ == "__main__":
    raise SystemExit(main())
