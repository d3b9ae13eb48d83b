"""The disintegration station on a real ROS graph: simulator, pump node, camera node, analysis node.

The simulated station (NE-1000 pump on a pty, MJPEG camera filming the twin's droplet,
started by the pump's completed dispense) runs at SCALE instrument seconds per wall
second; the disintegration node scales the camera's wall-clock stamps by the same factor
(``time_scale``). The results are compared with the station's truth file, and the test's
frame recording is re-analysed to the same numbers.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import PointStamped
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from sensor_msgs.msg import Image

from tablet_workcell.action import DisintegrationTest
from tablet_workcell.bringup.processes import ProcessSpec
from tablet_workcell.bringup.supervisor import GraphSupervisor
from tablet_workcell.devices.sim_process import SimulatorProcess
from tablet_workcell.image_wire import decode_image
from tablet_workcell.msg import EstopState, StationStatus
from tablet_workcell.ros.goal_client import GoalClient, SentGoal
from tablet_workcell.ros.graph_probe import GraphProbe, wait_until
from tablet_workcell.ros.qos import IMAGES, LATCHED, STATUS
from tablet_workcell.twin.blend import Formulation
from tablet_workcell.vision.reanalysis import reanalyse_recording

LOG = logging.getLogger(__name__)
SCALE = 1.0  # instrument seconds per wall second
WAIT_S = 30.0
RECIPE = "mcc:0.6,lactose:0.35,ccs:0.05"  # absorbed in about 4 s, with a swelling regime
TABLET = {
    "tablet_diameter_mm": 8.0,
    "tablet_thickness_mm": 1.5,
    "porosity": 0.13,
    "tensile_strength_mpa": 2.0,
}
SOLUBLE = sum(
    f for m, f in Formulation.of({"mcc": 0.6, "lactose": 0.35, "ccs": 0.05}).components if m.soluble
)
REPO = Path(__file__).resolve().parents[2]
MODEL = REPO / "models" / "droplet_segmentation.onnx"
REGIME_MODEL = REPO / "models" / "regime_segmentation.onnx"


@dataclass
class Station:
    probe: GraphProbe
    client: GoalClient
    ports: Path
    recordings: Path
    lock: threading.Lock = field(default_factory=threading.Lock)
    overlays: list[tuple[int, int, str]] = field(default_factory=list)
    area: list[PointStamped] = field(default_factory=list)
    diagnostics: dict[str, DiagnosticStatus] = field(default_factory=dict)
    stations: dict[str, int] = field(default_factory=dict)

    def wait(self, condition: Callable[[], Any], what: str, timeout_s: float = WAIT_S) -> Any:
        return wait_until(condition, what, timeout_s)

    def state(self, node: str) -> str:
        with contextlib.suppress(Exception):
            response = self.probe.call(GetState, f"/{node}/get_state", GetState.Request(), timeout_s=2.0)
            return str(response.current_state.label)
        return "unreachable"

    def lifecycle(self, transition: int) -> None:
        request = ChangeState.Request(transition=Transition(id=transition))
        response = self.probe.call(ChangeState, "/disintegration/change_state", request, timeout_s=WAIT_S)
        assert response.success, f"lifecycle transition {transition} failed"

    def station_state(self, name: str) -> int | None:
        with self.lock:
            return self.stations.get(name)

    def diagnostic(self, name: str) -> DiagnosticStatus | None:
        with self.lock:
            return self.diagnostics.get(name)

    def truth(self) -> dict[str, Any]:
        document: dict[str, Any] = json.loads((self.ports / "disintegration_truth.json").read_text())
        return document

    def test(self, experiment_id: str, max_duration_s: float = 30.0) -> SentGoal:
        goal = DisintegrationTest.Goal(
            experiment_id=experiment_id, droplet_volume_m3=5e-9, max_duration_s=max_duration_s
        )
        return self.client.send(goal)


def _spec(name: str, module: str, parameters: dict[str, Any], folder: Path) -> ProcessSpec:
    parameter_file = folder / f"{name}.yaml"
    parameter_file.write_text(yaml.safe_dump({"/**": {"ros__parameters": parameters}}))
    argv = (sys.executable, "-m", module, "--ros-args", "--params-file", str(parameter_file))
    return ProcessSpec(name, argv, dict(os.environ, PYTHONUNBUFFERED="1"), parameter_file)


@contextlib.contextmanager
def station(
    tmp_path: Path,
    analysis: dict[str, Any] | None = None,
    full: bool = True,
    clock_rtf: float | None = None,
    tablet: dict[str, float] | None = None,
) -> Iterator[Station]:
    """The station simulator and the pump, camera and disintegration nodes (``full``), or the
    disintegration node alone. ``clock_rtf``: as ``workcell up --sim`` runs them, on a
    simulated /clock at that real-time factor (the station at the same time scale), every
    node with use_sim_time; else on the wall clock with the station at SCALE."""
    ports, recordings = tmp_path / "ports", tmp_path / "recordings"
    options = {"recipe": RECIPE, "frame_rate_hz": 30, **TABLET, **(tablet or {})}
    scale = clock_rtf or SCALE
    sim_time = {"use_sim_time": True} if clock_rtf else {}
    parameters = {
        "simulated": True,
        "status_period_s": 0.2,
        "time_scale": scale,  # the launcher sets it in simulation; ignored with use_sim_time
        "model_path": str(MODEL),
        "regime_model_path": str(REGIME_MODEL),
        "recording_dir": str(recordings),
        "default_tablet_thickness_m": TABLET["tablet_thickness_mm"] * 1e-3,
        "default_tablet_diameter_m": TABLET["tablet_diameter_mm"] * 1e-3,
        "default_tablet_porosity": TABLET["porosity"],
        "default_tensile_strength_pa": TABLET["tensile_strength_mpa"] * 1e6,
        "default_soluble_fraction": SOLUBLE,
        "absorbed_margin_s": 1.0,
        "overlay_rate_hz": 10.0,
        "connect_timeout_s": 2.0,
        **sim_time,
        **(analysis or {}),
    }
    with contextlib.ExitStack() as stack:
        specs = [_spec("disintegration", "tablet_workcell.nodes.disintegration", parameters, tmp_path)]
        if full:
            sim = stack.enter_context(
                SimulatorProcess("disintegration_station", options, link_dir=ports, time_scale=scale)
            )
            common = {"simulated": True, "status_period_s": 0.2, **sim_time}
            pump = {"port": sim.ports["syringe_pump"], **common}
            camera = {"source": str(ports / "camera.url"), **common}
            specs.insert(0, _spec("syringe_pump", "tablet_workcell.nodes.syringe_pump", pump, tmp_path))
            specs.insert(1, _spec("camera", "tablet_workcell.nodes.camera", camera, tmp_path))
        if clock_rtf:
            clock = {"real_time_factor": clock_rtf, "publish_rate_hz": 200.0}
            specs.insert(0, _spec("sim_clock", "tablet_workcell.nodes.sim_clock", clock, tmp_path))
        stack.enter_context(GraphSupervisor(specs))
        probe = stack.enter_context(GraphProbe("disintegration_probe"))
        client = GoalClient(probe.node, DisintegrationTest, "/disintegration/test")
        cell = Station(probe, client, ports, recordings)

        def on_overlay(message: bytes) -> None:
            image = decode_image(message)
            with cell.lock:
                cell.overlays.append((image.pixels.shape[1], image.pixels.shape[0], image.encoding))

        def on_area(message: PointStamped) -> None:
            with cell.lock:
                cell.area.append(message)

        def on_diagnostics(message: DiagnosticArray) -> None:
            with cell.lock:
                cell.diagnostics.update({status.name: status for status in message.status})

        def on_station(message: StationStatus) -> None:
            with cell.lock:
                cell.stations[message.station] = message.state

        node = probe.node
        node.create_subscription(StationStatus, "/workcell/station_status", on_station, STATUS)
        node.create_subscription(Image, "/disintegration/overlay", on_overlay, IMAGES, raw=True)
        node.create_subscription(PointStamped, "/disintegration/droplet_area", on_area, 50)
        node.create_subscription(DiagnosticArray, "/diagnostics", on_diagnostics, 10)
        yield cell


def check_against_truth(cell: Station, sent: SentGoal, message: Any) -> None:
    """The result, feedback and live topics of a finished test against the station's truth."""
    assert message.success and "droplet fully absorbed" in message.message
    assert "skipped" in message.message and "frames recorded to" in message.message
    # The truth of the droplet the pump placed, in instrument seconds since it landed.
    dispense = cell.truth()["dispenses"][-1]
    truth = dispense["truth"]
    assert message.absorption_time_s == pytest.approx(truth["absorption_time_s"], rel=0.10)
    washburn = next(f for f in message.fits if f.model == "washburn")
    c = washburn.values[list(washburn.parameter_names).index("C")]
    # C trades off against v_s in the fit; live frames carry JPEG noise and stamp jitter (the
    # camera stamps on publishing: 15 ms std, up to 160 ms under load), so C is looser than
    # the absorption time here (the exact-frame unit test holds it to 10 %).
    assert c == pytest.approx(truth["washburn_coefficient_m2_per_s"], rel=0.40)
    predicted = message.predicted_disintegration_time_s
    assert predicted == pytest.approx(truth["disintegration_time_s"], rel=0.25)
    regimes = [r.regime for r in message.regimes]
    assert regimes == sorted(regimes) and 1 in regimes and regimes[-1] == 3
    # t = 0 lies between the last dry frame and the first droplet frame (30 frames/s).
    assert (
        0.0 < message.time_s[0] <= 2 * SCALE / 30
        and len(message.time_s) == len(message.droplet_area_m2) >= 20
    )
    measured = [a for t, a in zip(message.time_s, message.droplet_area_m2, strict=True) if 0.3 <= t <= 1.0]
    series = dispense["series"]
    true = [a for t, a in zip(series["time_s"], series["side_area_m2"], strict=True) if 0.4 <= t <= 1.0]
    assert sum(measured) / len(measured) == pytest.approx(sum(true) / len(true), rel=0.15)
    assert message.model_version.startswith("unet-onnx")
    assert "regimes from the learned model regime_segmentation" in message.message
    complete = next(r for r in message.regimes if r.regime == 3)
    assert complete.start_time_s == pytest.approx(truth["absorption_time_s"], rel=0.10)
    assert message.droplet_volume_m3 == 5e-9
    # Feedback: time since contact grows, regimes move on.
    feedback = sent.feedback
    elapsed = [f.elapsed_s for f in feedback if not math.isnan(f.elapsed_s)]
    assert len(elapsed) >= 5 and elapsed == sorted(elapsed)
    assert {f.regime for f in feedback} >= {1, 3}
    # Overlay images and the live area curve were published.
    with cell.lock:
        overlays, area = list(cell.overlays), list(cell.area)
    assert overlays and overlays[0] == (640, 480, "bgr8")
    assert len(area) >= 20 and max(p.point.y for p in area) > 1e-6
    LOG.info(
        "truth: absorption %.3f s, C %.4g m^2/s, disintegration %.1f s; measured: %.3f s, %.4g, %.1f s",
        truth["absorption_time_s"],
        truth["washburn_coefficient_m2_per_s"],
        truth["disintegration_time_s"],
        message.absorption_time_s,
        c,
        predicted,
    )


def check_reanalysis(cell: Station, experiment_id: str, message: Any) -> None:
    """The test's frame recording re-analyses to the same numbers."""
    recording = next(cell.recordings.glob(f"{experiment_id}_*.json"))
    again = reanalyse_recording(recording).result
    for name in ("time_s", "droplet_area_m2", "contact_angle_rad", "tablet_height_m"):  # NaN == NaN here
        np.testing.assert_array_equal(getattr(again, name), np.asarray(getattr(message, name)), err_msg=name)
    assert again.analysis is not None and again.analysis.absorption_time_s == message.absorption_time_s
    fits = [(f.model, f.series, tuple(f.values)) for f in again.analysis.fits]
    assert fits == [(f.model, f.series, tuple(f.values)) for f in message.fits]


def test_a_test_end_to_end_against_the_truth_then_cancel_and_estop(
    tmp_path: Path, ros_domain_id: int
) -> None:
    with station(tmp_path) as cell:  # the shipped ONNX U-Net and learned regime model
        nodes = ("syringe_pump", "camera", "disintegration")
        cell.wait(
            lambda: all(cell.state(n) == "active" for n in nodes), "the nodes to configure and activate"
        )
        started = time.monotonic()
        sent = cell.test("E-ros-1")
        status, result = sent.result(WAIT_S)
        LOG.info("end to end: %.1f s wall; %s", time.monotonic() - started, result.result.message)
        assert status == "succeeded", result.result.message
        check_against_truth(cell, sent, result.result)
        check_reanalysis(cell, "E-ros-1", result.result)

        # E-stop while the pump places the droplet: the pump stops, no droplet lands, the test aborts.
        landed = len(cell.truth()["dispenses"])
        estop = cell.probe.node.create_publisher(EstopState, "/safety/estop", LATCHED)
        cell.wait(lambda: estop.get_subscription_count() >= 3, "the nodes' e-stop subscriptions")
        stopped = cell.test("E-ros-2")
        stopped.wait_for_feedback(lambda f: math.isnan(f.elapsed_s), "frames analysed while dispensing")
        estop.publish(EstopState(active=True, reason="test: e-stop during the droplet", source="tester"))
        status, result = stopped.result(WAIT_S)
        assert status == "aborted" and "e-stop engaged" in result.result.message
        assert len(cell.truth()["dispenses"]) == landed  # the plunger stopped before the droplet was out
        refused, result = cell.test("E-ros-refused").result(WAIT_S)
        assert refused == "aborted" and "e-stop engaged" in result.result.message
        estop.publish(EstopState(active=False, reason="", source="tester"))
        cell.wait(
            lambda: cell.station_state("disintegration") == StationStatus.STATE_IDLE, "the e-stop reset"
        )

        # Cancel once the droplet is on the tablet: the goal ends canceled with what was measured.
        cancelled = cell.test("E-ros-3")
        cancelled.wait_for_feedback(
            lambda f: f.elapsed_s > 0.5, "the droplet on the tablet", timeout_s=WAIT_S
        )
        cancelled.cancel()
        status, result = cancelled.result(WAIT_S)
        assert status == "canceled" and "cancelled on request" in result.result.message
        assert not result.result.success and len(result.result.time_s) > 0
        assert len(cell.truth()["dispenses"]) == landed + 1  # E-ros-3's droplet landed


def test_a_droplet_left_on_the_tablet_refuses_the_next_test(tmp_path: Path, ros_domain_id: int) -> None:
    """A cancelled test leaves its droplet; the next test must not take it for its own contact.

    The tablet is dense (porosity 0.06: the droplet takes minutes to soak in), so the
    droplet is certainly still there when the next goal arrives, however loaded the machine.
    """
    with station(tmp_path, tablet={"porosity": 0.06}) as cell:
        nodes = ("syringe_pump", "camera", "disintegration")
        cell.wait(
            lambda: all(cell.state(n) == "active" for n in nodes), "the nodes to configure and activate"
        )
        cancelled = cell.test("E-ros-3")
        cancelled.wait_for_feedback(
            lambda f: f.elapsed_s > 0.5, "the droplet on the tablet", timeout_s=WAIT_S
        )
        cancelled.cancel()
        status, result = cancelled.result(WAIT_S)
        assert status == "canceled" and "cancelled on request" in result.result.message

        status, result = cell.test("E-ros-4").result(WAIT_S)
        assert status == "aborted" and "already on the tablet" in result.result.message
        assert len(cell.truth()["dispenses"]) == 1  # only E-ros-3's droplet: nothing was dispensed


def test_a_test_on_the_simulated_clock(tmp_path: Path, ros_domain_id: int) -> None:
    """As ``workcell up --sim`` runs the station: stamps in simulated (instrument) time."""
    with station(tmp_path, clock_rtf=2.0) as cell:
        nodes = ("sim_clock", "syringe_pump", "camera", "disintegration")
        cell.wait(
            lambda: all(cell.state(n) == "active" for n in nodes[1:]), "the nodes to configure and activate"
        )
        status, result = cell.test("E-clock").result(WAIT_S)
        message = result.result
        assert status == "succeeded", message.message
        truth = cell.truth()["dispenses"][-1]["truth"]
        # The time base: a time scale applied on top of simulated stamps would double the
        # times. The tolerance is wider than on the wall clock: the camera stamps frames with
        # /clock, which arrives at 200 Hz with its own latency, each wall ms two instrument ms.
        assert message.absorption_time_s == pytest.approx(truth["absorption_time_s"], rel=0.20)
        LOG.info(
            "on the simulated clock: absorption %.3f s (truth %.3f s)",
            message.absorption_time_s,
            truth["absorption_time_s"],
        )


@pytest.mark.parametrize("problem", ["missing", "mismatched"])
def test_a_missing_or_mismatched_model_fails_configure_with_diagnostics(
    tmp_path: Path, ros_domain_id: int, problem: str
) -> None:
    model = tmp_path / "droplet_segmentation.onnx"
    if problem == "mismatched":  # the card of the shipped model beside a model that is not it
        model.write_bytes(MODEL.read_bytes() + b"\0")
        shutil.copy(MODEL.with_suffix(".card.json"), tmp_path / "droplet_segmentation.card.json")
    expected = "does not exist" if problem == "missing" else "do not belong together"
    with station(tmp_path, {"model_path": str(model)}, full=False) as cell:
        status = cell.wait(lambda: cell.diagnostic("disintegration"), "the node's diagnostics")
        assert status.level == DiagnosticStatus.ERROR
        assert expected in status.message and str(model) in status.message
        assert cell.state("disintegration") == "unconfigured"
        assert cell.station_state("disintegration") == StationStatus.STATE_FAULT


def test_the_classical_segmenter_needs_no_model(tmp_path: Path, ros_domain_id: int) -> None:
    parameters = {
        "model_path": str(tmp_path / "nowhere.onnx"),
        "segmenter": "classical",
        "frame_timeout_s": 1.0,
    }
    with station(tmp_path, parameters, full=False) as cell:
        cell.wait(lambda: cell.state("disintegration") == "active", "the node to configure and activate")
        model = cell.wait(lambda: cell.diagnostic("disintegration: segmenter"), "the segmenter's diagnostics")
        assert "classical" in model.hardware_id
        # No camera: a goal fails with the reason instead of waiting forever.
        status, result = cell.test("E-no-camera").result(WAIT_S)
        assert status == "aborted" and "no camera frames" in result.result.message
        # Lifecycle: inactive refuses goals; cleanup releases the model, configure loads it again.
        cell.lifecycle(Transition.TRANSITION_DEACTIVATE)
        status, result = cell.test("E-inactive").result(WAIT_S)
        assert status == "aborted" and "not active" in result.result.message
        for transition in (
            Transition.TRANSITION_CLEANUP,
            Transition.TRANSITION_CONFIGURE,
            Transition.TRANSITION_ACTIVATE,
        ):
            cell.lifecycle(transition)
        assert cell.state("disintegration") == "active"
