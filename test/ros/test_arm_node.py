"""The arm node on a real ROS graph against the simulated Marlin arm in its own process.

Each test starts the safety node, the arm simulator (instrument time runs faster than
wall time) and the arm node as processes, and talks to them as a client would. Stop
latencies are measured at the simulator: its wire log stamps every byte the host sent
with CLOCK_MONOTONIC, which this process shares.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from action_msgs.msg import GoalStatus
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import PoseStamped
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rclpy.action import ActionClient
from sensor_msgs.msg import JointState
from tf2_msgs.msg import TFMessage
from visualization_msgs.msg import MarkerArray

from tablet_workcell.action import ArmTransfer
from tablet_workcell.bringup.processes import node_process
from tablet_workcell.bringup.supervisor import GraphSupervisor
from tablet_workcell.devices.arm.layout import load_layout
from tablet_workcell.devices.arm.node_parameters import ARM_NODE_PARAMETERS
from tablet_workcell.devices.serve import WIRE_LOG_ENV
from tablet_workcell.devices.sim_process import SimulatorProcess
from tablet_workcell.ros.graph_probe import GraphProbe
from tablet_workcell.ros.qos import LATCHED
from tablet_workcell.srv import EmergencyStop, ZoneAccess

REPO = Path(__file__).resolve().parents[2]
LAYOUT = load_layout()
FRAME = next(spec.default for spec in ARM_NODE_PARAMETERS if spec.name == "frame_id")
PUBLISHED = {
    "/arm/joint_states": "JointState",
    "/arm/tool_pose": "PoseStamped",
    "/arm/markers": "MarkerArray",
    "/tf": "TFMessage",
    "/tf_static": "TFMessage",
}
STOP_LIMIT_S = 0.1  # cancel / e-stop to M410 on the arm's wire
WAIT_S = 20.0
T = TypeVar("T")
LOG = logging.getLogger(__name__)


def wait_until(condition: Callable[[], T | None], what: str, timeout_s: float = WAIT_S) -> T:
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value is not None and value is not False:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout_s:.0f} s waiting for {what}"
        time.sleep(0.01)


class Watch:
    """What the arm publishes, as it arrives (callbacks on the probe's executor thread)."""

    def __init__(self, probe: GraphProbe) -> None:
        self.lock = threading.Lock()
        self.joint_states: list[tuple[float, JointState]] = []
        self.markers: MarkerArray | None = None
        self.diagnostics: list[DiagnosticStatus] = []
        self.poses = 0
        self.frames: dict[tuple[str, str], Any] = {}  # (parent, child) -> last transform, /tf and /tf_static
        node = probe.node
        node.create_subscription(JointState, "/arm/joint_states", self._on_joints, 50)
        node.create_subscription(MarkerArray, "/arm/markers", self._on_markers, LATCHED)
        node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 50)
        node.create_subscription(PoseStamped, "/arm/tool_pose", self._on_pose, 50)
        node.create_subscription(TFMessage, "/tf", self._on_tf, 100)
        node.create_subscription(TFMessage, "/tf_static", self._on_tf, LATCHED)  # tf2's static QoS

    def _on_joints(self, message: JointState) -> None:
        with self.lock:
            self.joint_states.append((time.monotonic(), message))

    def _on_markers(self, message: MarkerArray) -> None:
        with self.lock:
            self.markers = message

    def _on_diagnostics(self, message: DiagnosticArray) -> None:
        with self.lock:
            self.diagnostics.extend(s for s in message.status if s.name == "arm: arm")

    def _on_tf(self, message: TFMessage) -> None:
        with self.lock:
            for transform in message.transforms:
                self.frames[(transform.header.frame_id, transform.child_frame_id)] = transform

    def frame(self, parent: str, child: str) -> Any:
        with self.lock:
            return self.frames.get((parent, child))

    def _on_pose(self, message: PoseStamped) -> None:
        assert message.header.frame_id == FRAME
        with self.lock:
            self.poses += 1

    def position(self) -> tuple[float, ...]:
        with self.lock:
            assert self.joint_states, "no joint states received"
            return tuple(self.joint_states[-1][1].position[:3])

    def positions_since(self, since: float) -> list[tuple[float, ...]]:
        with self.lock:
            return [tuple(m.position[:3]) for t, m in self.joint_states if t >= since]

    def marker(self, namespace: str) -> Any:
        with self.lock:
            markers = self.markers.markers if self.markers is not None else []
        return next((m for m in markers if m.ns == namespace), None)


class Goal:
    """One transfer goal: feedback as it arrives, cancel, final status and result."""

    def __init__(self, client: ActionClient[Any, Any, Any], request: ArmTransfer.Goal) -> None:
        self.feedback: list[Any] = []
        self._lock = threading.Lock()
        future = client.send_goal_async(request, feedback_callback=self._on_feedback)

        def response() -> Any:
            return future.result() if future.done() else None

        self.handle = wait_until(response, "the goal response")
        assert self.handle.accepted

    def _on_feedback(self, message: Any) -> None:
        with self._lock:
            self.feedback.append(message.feedback)

    def wait_for(self, predicate: Callable[[Any], bool], what: str) -> Any:
        def found() -> Any:
            with self._lock:
                return next((f for f in self.feedback if predicate(f)), None)

        return wait_until(found, f"feedback with {what}")

    def result(self, timeout_s: float = 30.0) -> tuple[int, Any]:
        future = self.handle.get_result_async()
        response: Any = wait_until(lambda: future.done() and future.result(), "the result", timeout_s)
        return response.status, response.result


@dataclass
class Cell:
    probe: GraphProbe
    watch: Watch
    client: ActionClient[Any, Any, Any]
    wire_log: Path

    def transfer(self, source: str, destination: str, payload: int = ArmTransfer.Goal.PAYLOAD_TABLET) -> Goal:
        return Goal(
            self.client, ArmTransfer.Goal(from_station=source, to_station=destination, payload=payload)
        )

    def zone(self, station: str, acquire: bool) -> ZoneAccess.Response:
        request = ZoneAccess.Request(station=station, zone="press", acquire=acquire)
        return self.probe.call(ZoneAccess, "/safety/zone_access", request)

    def estop(self, engage: bool) -> EmergencyStop.Response:
        request = EmergencyStop.Request(engage=engage, reason="test", operator_id="op-1")
        return self.probe.call(EmergencyStop, "/safety/set_estop", request)

    def state(self) -> str:
        return str(self.probe.call(GetState, "/arm/get_state", GetState.Request()).current_state.label)

    def change_state(self, transition: int) -> bool:
        request = ChangeState.Request(transition=Transition(id=transition))
        return bool(self.probe.call(ChangeState, "/arm/change_state", request, timeout_s=30.0).success)

    def stop_arrived(self, after: float) -> float:
        """When the first quickstop (M410) sent after ``after`` reached the arm."""

        def stamp() -> float | None:
            if not self.wire_log.exists():
                return None
            for line in self.wire_log.read_text().splitlines():
                when, _, data = line.split()
                if float(when) >= after and b"M410" in bytes.fromhex(data):
                    return float(when)
            return None

        return wait_until(stamp, "M410 on the arm's wire", 5.0)

    def assert_still(self, seconds: float = 0.3) -> None:
        """The tool does not move any more (joint states polled from the arm)."""
        since = time.monotonic()
        wait_until(lambda: time.monotonic() - since >= seconds, "the observation window")
        positions = self.watch.positions_since(since)
        assert len(positions) >= 3
        assert max(math.dist(p, positions[0]) for p in positions) < 1e-5, positions


@contextlib.contextmanager
def running_cell(folder: Path, time_scale: float, faults: dict[str, float] | None = None) -> Iterator[Cell]:
    """Safety node, arm simulator, arm node and a client; every process stopped on exit."""
    with contextlib.ExitStack() as stack:
        stack.enter_context(GraphSupervisor([node_process("safety", "safety")]))
        sim = stack.enter_context(
            SimulatorProcess("arm", faults=faults, time_scale=time_scale, link_dir=folder)
        )
        params = {"port": sim.ports["arm"], "simulated": True, "idle_poll_period_s": 0.05}
        stack.enter_context(GraphSupervisor([node_process("arm", "arm", params)]))
        probe = stack.enter_context(GraphProbe("arm_test"))
        watch = Watch(probe)
        client: ActionClient[Any, Any, Any] = ActionClient(probe.node, ArmTransfer, "/arm/transfer")
        stack.callback(client.destroy)
        cell = Cell(probe, watch, client, folder / "arm.wire")
        probe.wait_for_nodes(["arm", "safety"])
        wait_until(lambda: cell.state() == "active", "the arm node to be active")
        assert client.wait_for_server(timeout_sec=WAIT_S)
        yield cell


@pytest.fixture
def folder(ros_domain_id: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(WIRE_LOG_ENV, str(tmp_path))
    return tmp_path


def phases(goal: Goal) -> list[str]:
    seen: list[str] = []
    for feedback in goal.feedback:
        if not seen or seen[-1] != feedback.phase:
            seen.append(feedback.phase)
    return seen


# ------------------------------------------------------------------ without ROS
def test_rviz_config_shows_what_the_node_publishes() -> None:
    config = yaml.safe_load((REPO / "config" / "workcell.rviz").read_text())
    manager = config["Visualization Manager"]
    assert manager["Global Options"]["Fixed Frame"] == FRAME
    displays = {d["Class"]: d for d in manager["Displays"]}
    assert {
        "rviz_default_plugins/Grid",
        "rviz_default_plugins/MarkerArray",
        "rviz_default_plugins/Pose",
        "rviz_default_plugins/TF",
    } <= set(displays)
    topics = {d["Topic"]["Value"]: d for d in manager["Displays"] if "Topic" in d}
    assert set(topics) == {"/arm/markers", "/arm/tool_pose"} and set(topics) <= set(PUBLISHED)
    assert topics["/arm/markers"]["Topic"]["Durability Policy"] == "Transient Local"  # the array is latched


# ------------------------------------------------------------------ on a ROS graph
def test_transfer_zone_refusal_markers_joint_states_and_lifecycle(folder: Path) -> None:
    with running_cell(folder, time_scale=10.0) as cell:
        published = dict(cell.probe.node.get_publisher_names_and_types_by_node("arm", "/"))
        for topic, kind in PUBLISHED.items():
            assert any(t.endswith(kind) for t in published.get(topic, [])), (topic, published)

        goal = cell.transfer("dispenser", "press")
        status, result = goal.result()
        assert status == GoalStatus.STATUS_SUCCEEDED and result.success, result.message
        assert phases(goal) == ["homing", "approach", "grasp", "transfer", "release", "retract"]
        progress = [f.progress for f in goal.feedback if f.phase != "homing"]
        assert progress == sorted(progress) and progress[-1] == pytest.approx(1.0)
        moving = [f.current_pose.pose.position for f in goal.feedback if f.phase != "homing"]
        poses = {(round(p.x, 3), round(p.y, 3), round(p.z, 3)) for p in moving}
        assert len(poses) >= 5  # live positions along the legs, not only their ends
        assert result.final_pose.header.frame_id == FRAME
        press = LAYOUT.station("press").position_m
        final = result.final_pose.pose.position
        assert (final.x, final.y, final.z) == pytest.approx((press[0], press[1], 0.20), abs=1e-4)

        # Joint states and markers: the tool is where the result says, the tablet is drawn at the press.
        lifted = (final.x, final.y, final.z)
        wait_until(lambda: math.dist(cell.watch.position(), lifted) < 1e-5, "joint states at the final pose")
        wait_until(lambda: cell.watch.marker("tablets"), "a tablet marker at the press")
        names = cell.watch.joint_states[-1][1].name
        assert list(names) == ["arm_x", "arm_y", "arm_z", "arm_suction"] and cell.watch.poses > 0
        labels = {m.text for m in cell.watch.markers.markers if m.ns == "labels"}  # type: ignore[union-attr]
        assert labels == set(LAYOUT.stations)
        assert cell.watch.marker("envelope") is not None and cell.watch.marker("tool") is not None

        # TF: workcell -> arm_base (identity, latched) and arm_base -> arm_tool at the tool.
        mount = wait_until(
            lambda: cell.watch.frame(str(FRAME), LAYOUT.frame), "workcell -> arm_base on /tf_static"
        )
        offset = mount.transform.translation
        assert (offset.x, offset.y, offset.z, mount.transform.rotation.w) == (0.0, 0.0, 0.0, 1.0)

        def tool_at_final_pose() -> bool:
            tool = cell.watch.frame(LAYOUT.frame, "arm_tool")
            at = tool.transform.translation if tool is not None else None
            return at is not None and math.dist((at.x, at.y, at.z), lifted) < 1e-5

        wait_until(tool_at_final_pose, "arm_base -> arm_tool on /tf at the final pose")

        # The press takes the zone: drawn red, and a transfer into it is refused before moving.
        assert cell.zone("press", acquire=True).granted, "the arm must have released the zone"
        wait_until(lambda: getattr(cell.watch.marker("press_zone"), "color", None), "the zone marker")
        wait_until(lambda: cell.watch.marker("press_zone").color.r > 0.8, "the press zone drawn red")
        refused = cell.transfer("press", "tablet_tray")
        status, result = refused.result()
        assert status == GoalStatus.STATUS_ABORTED and not result.success
        assert "held by press" in result.message, result.message
        cell.assert_still()
        assert cell.watch.position() == pytest.approx(lifted, abs=1e-5)  # the arm did not move
        assert cell.zone("press", acquire=False).granted

        # Lifecycle: inactive refuses; cleanup/configure reconnects; the arm homes again and works.
        assert cell.change_state(Transition.TRANSITION_DEACTIVATE)
        status, result = cell.transfer("", "home", ArmTransfer.Goal.PAYLOAD_NONE).result()
        assert status == GoalStatus.STATUS_ABORTED and "not active" in result.message
        for transition in (Transition.TRANSITION_CLEANUP, Transition.TRANSITION_CONFIGURE):
            assert cell.change_state(transition)
        assert cell.change_state(Transition.TRANSITION_ACTIVATE)
        again = cell.transfer("press", "tablet_tray")
        status, result = again.result()
        assert status == GoalStatus.STATUS_SUCCEEDED, result.message
        assert phases(again)[0] == "homing"


def test_cancel_and_estop_stop_the_arm_mid_move_within_100_ms(folder: Path) -> None:
    with running_cell(folder, time_scale=3.0) as cell:
        goal = cell.transfer("tablet_tray", "dispenser")
        goal.wait_for(lambda f: f.phase == "approach" and f.progress > 0.05, "the arm moving")
        sent = time.monotonic()
        goal.handle.cancel_goal_async()
        status, result = goal.result()
        cancel_latency = cell.stop_arrived(sent) - sent
        assert status == GoalStatus.STATUS_CANCELED and "cancelled" in result.message, result.message
        cell.assert_still()

        assert cell.estop(engage=False).success  # nothing to reset: connects the client before timing
        goal = cell.transfer("tablet_tray", "dispenser")
        goal.wait_for(lambda f: f.phase == "approach" and f.progress > 0.05, "the arm moving again")
        sent = time.monotonic()
        assert cell.estop(engage=True).success
        status, result = goal.result()
        estop_latency = cell.stop_arrived(sent) - sent
        assert status == GoalStatus.STATUS_ABORTED and "e-stop engaged" in result.message, result.message
        cell.assert_still()
        status, result = cell.transfer("tablet_tray", "dispenser").result(timeout_s=5.0)
        assert status == GoalStatus.STATUS_ABORTED and "e-stop engaged" in result.message

        assert cell.estop(engage=False).success
        wait_until(lambda: cell.probe.latest_estop().active is False or None, "the e-stop reset")
        status, result = cell.transfer("", "home", ArmTransfer.Goal.PAYLOAD_NONE).result()
        assert status == GoalStatus.STATUS_SUCCEEDED, result.message
        LOG.info("cancel -> M410 %.1f ms, e-stop -> M410 %.1f ms", cancel_latency * 1e3, estop_latency * 1e3)
        assert cancel_latency < STOP_LIMIT_S and estop_latency < STOP_LIMIT_S


def test_a_port_lost_mid_transfer_fails_the_goal_and_shows_in_diagnostics(folder: Path) -> None:
    with running_cell(folder, time_scale=1.0, faults={"disconnect_after_s": 10.0}) as cell:
        status, result = cell.transfer("dispenser", "press").result(timeout_s=30.0)
        assert status == GoalStatus.STATUS_ABORTED and not result.success
        assert "transfer failed" in result.message and "arm:" in result.message, result.message

        def error_reported() -> DiagnosticStatus | None:
            with cell.watch.lock:
                return next((s for s in cell.watch.diagnostics if s.level == DiagnosticStatus.ERROR), None)

        status_message = wait_until(error_reported, "an ERROR diagnostic for the arm")
        values = {item.key: item.value for item in status_message.values}
        assert values["connected"] == "false" and values["last_error"]
        # Not hung: it answers, and the next goal fails fast (the port is gone).
        assert cell.state() == "active"
        started = time.monotonic()
        status, result = cell.transfer("", "home", ArmTransfer.Goal.PAYLOAD_NONE).result(timeout_s=15.0)
        assert status == GoalStatus.STATUS_ABORTED and time.monotonic() - started < 10.0, result.message
