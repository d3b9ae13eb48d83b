"""The camera node on a real ROS graph against the simulated disintegration station.

The station simulator (pump on a pty, camera as an MJPEG stream over HTTP) and the node
run as processes; the node finds the stream through the ``camera.url`` locator the
simulator writes into its link folder, as in ``workcell up --sim``. The test listens as
the disintegration node would: raw (serialized) images decoded with image_wire,
CameraInfo, the latched pixel scale and diagnostics.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Float64

from tablet_workcell.bringup.processes import ProcessSpec
from tablet_workcell.bringup.supervisor import GraphSupervisor
from tablet_workcell.devices.sim_process import SimulatorProcess
from tablet_workcell.devices.syringe_pump.driver import SyringePumpDriver
from tablet_workcell.image_wire import decode_image
from tablet_workcell.ros.graph_probe import GraphProbe, wait_until
from tablet_workcell.ros.qos import IMAGES, LATCHED

WAIT_S = 30.0
SCALE = 2.0  # instrument seconds per wall second: the droplet stays visible for seconds
TABLET_TOP_ROW = 309  # 0.8 x 480 - 1.5 mm / 20 µm: the default scene's tablet top


def dark_above_tablet(pixels: np.ndarray) -> int:
    """Dark pixels in the band just above the tablet: the droplet (the needle tip is higher)."""
    band = pixels[TABLET_TOP_ROW - 25 : TABLET_TOP_ROW - 3].mean(axis=2)
    return int(np.count_nonzero(band < 100))


@dataclass
class Camera:
    sim: SimulatorProcess
    probe: GraphProbe
    lock: threading.Lock = field(default_factory=threading.Lock)
    images: list[tuple[float, int, int, str, str, int]] = field(
        default_factory=list
    )  # t, w, h, enc, frame, dark
    infos: list[CameraInfo] = field(default_factory=list)
    pixel_size: list[float] = field(default_factory=list)
    diagnostics: dict[str, DiagnosticStatus] = field(default_factory=dict)

    def on_image(self, message: bytes) -> None:
        image = decode_image(message)
        height, width = image.pixels.shape[:2]
        entry = (
            time.monotonic(),
            width,
            height,
            image.encoding,
            image.frame_id,
            dark_above_tablet(image.pixels),
        )
        with self.lock:
            self.images.append(entry)

    def count(self) -> int:
        with self.lock:
            return len(self.images)

    def wait(self, condition: Callable[[], Any], what: str, timeout_s: float = WAIT_S) -> Any:
        return wait_until(condition, what, timeout_s)

    def lifecycle(self, transition: int) -> bool:
        request = ChangeState.Request(transition=Transition(id=transition))
        return bool(self.probe.call(ChangeState, "/camera/change_state", request, timeout_s=WAIT_S).success)

    def state(self) -> str:
        response = self.probe.call(GetState, "/camera/get_state", GetState.Request(), timeout_s=WAIT_S)
        return str(response.current_state.label)

    def diagnostic(self, name: str) -> DiagnosticStatus | None:
        with self.lock:
            return self.diagnostics.get(name)


@contextlib.contextmanager
def camera_node(tmp_path: Path, parameters: dict[str, Any] | None = None) -> Iterator[Camera]:
    ports = tmp_path / "ports"
    options = {"frame_rate_hz": 10, "porosity": 0.09}  # low porosity: slow absorption, long-lived droplet
    with SimulatorProcess("disintegration_station", options, link_dir=ports, time_scale=SCALE) as sim:
        values = {"source": str(ports / "camera.url"), "simulated": True, "status_period_s": 0.2}
        values.update(parameters or {})
        parameter_file = tmp_path / "camera.yaml"
        parameter_file.write_text(yaml.safe_dump({"/**": {"ros__parameters": values}}))
        node = ("-m", "tablet_workcell.nodes.camera", "--ros-args", "--params-file", str(parameter_file))
        spec = ProcessSpec(
            "camera", (sys.executable, *node), dict(os.environ, PYTHONUNBUFFERED="1"), parameter_file
        )
        with GraphSupervisor([spec]), GraphProbe("camera_probe") as probe:
            camera = Camera(sim, probe)

            def on_diagnostics(message: DiagnosticArray) -> None:
                with camera.lock:
                    camera.diagnostics.update({status.name: status for status in message.status})

            def on_info(message: CameraInfo) -> None:
                with camera.lock:
                    camera.infos.append(message)

            def on_scale(message: Float64) -> None:
                with camera.lock:
                    camera.pixel_size.append(message.data)

            node_ = probe.node
            node_.create_subscription(Image, "/camera/image_raw", camera.on_image, IMAGES, raw=True)
            node_.create_subscription(CameraInfo, "/camera/camera_info", on_info, IMAGES)
            node_.create_subscription(Float64, "/camera/pixel_size_m", on_scale, LATCHED)
            node_.create_subscription(DiagnosticArray, "/diagnostics", on_diagnostics, 10)
            yield camera


def values_of(status: DiagnosticStatus) -> dict[str, str]:
    return {kv.key: kv.value for kv in status.values}


def test_images_camera_info_pixel_scale_droplet_and_lifecycle(tmp_path: Path, ros_domain_id: int) -> None:
    with camera_node(tmp_path) as camera:
        camera.wait(lambda: camera.count() >= 5, "five images on /camera/image_raw")
        _, width, height, encoding, frame_id, dark = camera.images[-1]
        assert (width, height, encoding, frame_id) == (640, 480, "bgr8", "camera_optical_frame")
        assert dark < 50, "no droplet before the pump dispenses"
        info = camera.wait(lambda: camera.infos[-1] if camera.infos else None, "CameraInfo")
        assert (info.width, info.height, info.header.frame_id) == (640, 480, "camera_optical_frame")
        assert info.k[0] == 5000.0 and info.k[2] == 320.0 and info.distortion_model == "plumb_bob"
        assert camera.wait(lambda: camera.pixel_size, "the latched pixel scale") == [2.0e-5]
        status = camera.wait(lambda: camera.diagnostic("camera: camera"), "camera diagnostics")
        camera.wait(
            lambda: float(values_of(camera.diagnostic("camera: camera"))["fps"]) > 5.0, "fps in diagnostics"
        )
        assert status.level == DiagnosticStatus.OK and "mm/px" in status.hardware_id

        # The pump places a droplet: it appears in the published frames above the tablet.
        with SyringePumpDriver(camera.sim.ports["syringe_pump"], timeout_s=2.0) as pump:
            assert pump.dispense_droplet(5.0, 200.0, timeout_s=20.0) > 4.9
        camera.wait(
            lambda: camera.images[-1][5] > 1500,
            "the droplet to show above the tablet in /camera/image_raw",
            10.0,
        )

        # Deactivate: publishing stops (frames in flight aside); activate: it resumes.
        assert camera.lifecycle(Transition.TRANSITION_DEACTIVATE)
        settled = camera.count()
        time.sleep(1.0)  # a quiet period is the point: no frame may arrive while inactive
        assert camera.count() - settled <= 1
        assert camera.lifecycle(Transition.TRANSITION_ACTIVATE)
        before = camera.count()
        camera.wait(lambda: camera.count() >= before + 3, "images after re-activation")

        # Cleanup releases the stream; configure + activate opens it again.
        assert camera.lifecycle(Transition.TRANSITION_DEACTIVATE)
        assert camera.lifecycle(Transition.TRANSITION_CLEANUP)
        assert camera.state() == "unconfigured"
        assert camera.lifecycle(Transition.TRANSITION_CONFIGURE)
        assert camera.lifecycle(Transition.TRANSITION_ACTIVATE)
        before = camera.count()
        camera.wait(lambda: camera.count() >= before + 3, "images after cleanup and configure")


def test_a_missing_source_fails_configure_with_diagnostics_and_no_hang(
    tmp_path: Path, ros_domain_id: int
) -> None:
    parameters = {"source": str(tmp_path / "nowhere" / "camera.url"), "connect_timeout_s": 1.0}
    with camera_node(tmp_path, parameters) as camera:
        status = camera.wait(
            lambda: (
                (s := camera.diagnostic("camera")) is not None and s.level == DiagnosticStatus.ERROR and s
            ),
            "an error in the camera's diagnostics",
        )
        assert "stream locator" in status.message and "does not exist" in status.message
        assert camera.wait(lambda: camera.state() == "unconfigured", "configure to fail")
        assert camera.count() == 0
        # The node still answers: a configure with the same missing source fails again, in bounded time.
        started = time.monotonic()
        assert not camera.lifecycle(Transition.TRANSITION_CONFIGURE)
        assert time.monotonic() - started < 5.0


def test_a_lost_stream_shows_in_diagnostics_and_the_node_reconnects(
    tmp_path: Path, ros_domain_id: int
) -> None:
    parameters = {"read_timeout_s": 0.5, "reconnect_period_s": 0.2}
    with camera_node(tmp_path, parameters) as camera:
        camera.wait(lambda: camera.count() >= 3, "images before the station goes")
        camera.sim.stop()  # the station is unplugged: the stream ends, its locator goes
        status = camera.wait(
            lambda: (
                (s := camera.diagnostic("camera: camera")) is not None
                and s.level == DiagnosticStatus.ERROR
                and s
            ),
            "the lost stream in the camera's diagnostics",
            10.0,
        )
        values = values_of(status)
        assert values["connected"] == "false" and int(values["frames_failed"]) >= 1
        assert any(
            text in values["last_error"] for text in ("no frame from", "cannot open", "stream locator")
        )
        assert camera.state() == "active"  # still configured: it reconnects when the camera returns
        # The station comes back (on another free port): the node finds it through the locator.
        with SimulatorProcess("disintegration_station", link_dir=tmp_path / "ports", time_scale=SCALE):
            before = camera.count()
            camera.wait(lambda: camera.count() >= before + 3, "images from the returned station")
            status = camera.wait(
                lambda: (
                    (s := camera.diagnostic("camera: camera")) is not None
                    and s.level != DiagnosticStatus.ERROR
                    and s
                ),
                "the camera's diagnostics to leave the error",
            )
            assert int(values_of(status)["reconnects"]) >= 1
