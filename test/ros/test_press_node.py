"""The press node on a real ROS graph against the simulated press in its own process.

Each test starts the simulator (fast instrument time), the node (and the safety node
where the zone interlock is under test) as processes and talks to them as a client
would. Stop latencies are measured at the simulator: its wire log stamps every byte the
host sent with CLOCK_MONOTONIC, which this process shares.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import WrenchStamped
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rclpy.action import ActionClient
from rclpy.action.client import ClientGoalHandle
from std_srvs.srv import Trigger

from tablet_workcell.action import BreakingTest, Compact
from tablet_workcell.bringup.processes import node_process
from tablet_workcell.bringup.supervisor import GraphSupervisor
from tablet_workcell.devices.serve import WIRE_LOG_ENV
from tablet_workcell.devices.sim_process import SimulatorProcess
from tablet_workcell.msg import BreakingTestResult, CompactionResult
from tablet_workcell.ros.graph_probe import GraphProbe
from tablet_workcell.srv import EmergencyStop, ZoneAccess
from tablet_workcell.twin.blend import Formulation

RECIPE = {"mcc": 0.69, "lactose": 0.3, "mgst": 0.01}
BLEND = Formulation.of(RECIPE).properties
FILL_MASS_KG = 100e-6
SIM_OPTIONS = {"recipe": "mcc:0.69,lactose:0.3,mgst:0.01", "fill_mass_mg": 100}
FAST = 20.0  # instrument seconds per wall second
STOP_LIMIT_S = 0.1  # cancel / e-stop to STP on the press's wire
WAIT_S = 20.0
SUCCEEDED, CANCELED, ABORTED = 4, 5, 6  # action_msgs GoalStatus values (no type stubs)


def press_node(sim: SimulatorProcess, folder: Path, **params: object) -> GraphSupervisor:
    settings = {"port": sim.ports["press"], "simulated": True, "status_period_s": 0.2, **params}
    return GraphSupervisor([node_process("press", "press", settings)])


def safety_node(folder: Path) -> GraphSupervisor:
    return GraphSupervisor([node_process("safety", "safety", {"heartbeat_timeout_s": 10.0})])


@pytest.fixture
def wire_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The simulator logs the host's bytes here (set before it starts)."""
    monkeypatch.setenv(WIRE_LOG_ENV, str(tmp_path))
    return tmp_path / "press.wire"


def wire_times(wire: Path, text: bytes) -> list[float]:
    """When each host write containing ``text`` reached the simulated press (CLOCK_MONOTONIC)."""
    if not wire.exists():
        return []
    times = []
    for line in wire.read_text().splitlines():
        stamp, _, data = line.split(" ", 2)
        if text in bytes.fromhex(data):
            times.append(float(stamp))
    return times


def wait_for(condition: Callable[[], Any], what: str, timeout_s: float = WAIT_S) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.005)
    raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")


def first_stop_after(wire: Path, since: float) -> float:
    stops: float = wait_for(
        lambda: next((t for t in wire_times(wire, b"STP") if t >= since), None), "STP on the wire"
    )
    return stops


class PressClient:
    """Actions, topics and services of the press node, seen from a client with bounded waits."""

    def __init__(self, probe: GraphProbe) -> None:
        self.probe = probe
        node = probe.node
        self.compact: ActionClient[Any, Any, Any] = ActionClient(node, Compact, "/press/compact")
        self.breaking: ActionClient[Any, Any, Any] = ActionClient(node, BreakingTest, "/press/breaking_test")
        self.lock = threading.Lock()
        self.forces: list[WrenchStamped] = []
        self.diagnostics: list[DiagnosticStatus] = []
        self.compaction_results: list[CompactionResult] = []
        node.create_subscription(WrenchStamped, "/press/force", self._keep(self.forces), 50)
        node.create_subscription(
            CompactionResult, "/press/compaction_result", self._keep(self.compaction_results), 10
        )
        node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)
        probe.wait_for_nodes(["press"])
        assert self.compact.wait_for_server(timeout_sec=WAIT_S)
        assert self.breaking.wait_for_server(timeout_sec=WAIT_S)
        self.wait_active()

    def _keep(self, into: list[Any]) -> Callable[[Any], None]:
        def keep(message: Any) -> None:
            with self.lock:
                into.append(message)

        return keep

    def _on_diagnostics(self, message: DiagnosticArray) -> None:
        with self.lock:
            self.diagnostics += [s for s in message.status if s.name == "press: press"]

    def latest_diagnostic(self, predicate: Callable[[DiagnosticStatus], bool]) -> DiagnosticStatus:
        def found() -> DiagnosticStatus | None:
            with self.lock:
                return next((s for s in reversed(self.diagnostics) if predicate(s)), None)

        status: DiagnosticStatus = wait_for(found, "a matching press diagnostic")
        return status

    def state(self) -> str:
        response = self.probe.call(GetState, "/press/get_state", GetState.Request(), timeout_s=WAIT_S)
        return str(response.current_state.label)

    def wait_active(self) -> None:
        wait_for(lambda: self.state() == "active", "the press node to become active")

    def transition(self, transition_id: int) -> None:
        request = ChangeState.Request(transition=Transition(id=transition_id))
        assert self.probe.call(ChangeState, "/press/change_state", request, timeout_s=WAIT_S).success

    def send(
        self, client: ActionClient[Any, Any, Any], goal: Any, feedback: list[Any] | None = None
    ) -> ClientGoalHandle[Any, Any, Any]:
        def on_feedback(message: Any) -> None:
            if feedback is not None:
                with self.lock:
                    feedback.append(message.feedback)

        future = client.send_goal_async(goal, feedback_callback=on_feedback)
        done = threading.Event()
        future.add_done_callback(lambda _: done.set())
        assert done.wait(WAIT_S), "the goal was not answered"
        handle = future.result()
        assert handle is not None and handle.accepted
        return handle

    def result(self, handle: ClientGoalHandle[Any, Any, Any]) -> tuple[int, Any]:
        future = handle.get_result_async()
        done = threading.Event()
        future.add_done_callback(lambda _: done.set())
        assert done.wait(WAIT_S), "the goal did not end"
        response = future.result()
        assert response is not None
        return int(response.status), response.result.result

    def run_compaction(self, dwell_s: float = 0.5, feedback: list[Any] | None = None) -> tuple[int, Any]:
        return self.result(self.send(self.compact, compaction_goal(dwell_s), feedback))

    def recover(self) -> Trigger.Response:
        response: Trigger.Response = self.probe.call(
            Trigger, "/press/recover", Trigger.Request(), timeout_s=WAIT_S
        )
        return response


def compaction_goal(dwell_s: float = 0.5, pressure_pa: float = 150e6) -> Compact.Goal:
    return Compact.Goal(
        experiment_id="exp-1",
        target_pressure_pa=pressure_pa,
        dwell_time_s=dwell_s,
        punch_diameter_m=8e-3,
        fill_mass_kg=FILL_MASS_KG,
        true_density_kg_per_m3=BLEND.true_density_kg_per_m3,
    )


def wait_for_phase(feedback: list[Any], lock: threading.Lock, phase: str) -> None:
    def seen() -> bool:
        with lock:
            return any(f.phase == phase for f in feedback)

    wait_for(seen, f"feedback in the {phase} phase")


def zone(probe: GraphProbe, station: str, acquire: bool) -> ZoneAccess.Response:
    request = ZoneAccess.Request(station=station, zone="press", acquire=acquire)
    response: ZoneAccess.Response = probe.call(ZoneAccess, "/safety/zone_access", request, timeout_s=WAIT_S)
    return response


def estop(probe: GraphProbe, engage: bool) -> EmergencyStop.Response:
    request = EmergencyStop.Request(engage=engage, reason="test stop", operator_id="tester")
    response: EmergencyStop.Response = probe.call(
        EmergencyStop, "/safety/set_estop", request, timeout_s=WAIT_S
    )
    return response


def test_compaction_and_breaking_test_end_to_end_through_the_lifecycle(
    ros_domain_id: int, tmp_path: Path
) -> None:
    with (
        SimulatorProcess("press", SIM_OPTIONS, time_scale=FAST) as sim,
        safety_node(tmp_path),
        press_node(sim, tmp_path, force_rate_hz=1000.0),
        GraphProbe("press_probe") as probe,
    ):
        press = PressClient(probe)
        feedback: list[Any] = []
        status, result = press.run_compaction(0.5, feedback)
        assert status == SUCCEEDED, result.message
        assert result.success and result.experiment_id == "exp-1"
        assert result.max_pressure_pa == pytest.approx(150e6, rel=0.02)
        assert result.heckel_yield_pressure_pa == pytest.approx(BLEND.yield_pressure_pa, rel=0.05)
        assert result.heckel_region_start_pa < result.heckel_region_end_pa
        assert 0.0 < result.kawakita_a < 1.0 and result.kawakita_b_per_pa > 0.0
        assert result.work_of_compaction_j > 0.0
        assert 0.0 < result.elastic_recovery < 0.5 and 0.5 < result.solid_fraction < 1.0
        assert result.tablet_thickness_m > result.in_die_min_thickness_m > 0.0
        assert result.tablet_mass_kg == FILL_MASS_KG and result.tablet_diameter_m == pytest.approx(8e-3)
        record = result.record
        assert (
            len(record.time_s) == len(record.force_n) == len(record.displacement_m) == len(record.phase) > 100
        )
        assert set(bytes(record.phase)) == {0, 1, 2}  # the in-die record: loading, dwell, unloading
        with press.lock:
            phases = {f.phase for f in feedback}
            forces = list(press.forces)
        assert phases and phases <= {"loading", "dwell", "unloading", "ejection"}
        assert len(forces) > 10 and {f.header.frame_id for f in forces} == {"press_upper_punch"}
        assert max(f.wrench.force.z for f in forces) > 0.9 * result.max_force_n
        wait_for(lambda: press.compaction_results, "/press/compaction_result")
        free = zone(probe, "arm", True)  # the press gave the zone back after its cycle
        assert free.granted, free.message
        assert zone(probe, "arm", False).granted

        handle = press.send(press.breaking, BreakingTest.Goal(experiment_id="exp-1"))
        status, broken = press.result(handle)
        assert status == SUCCEEDED, broken.message
        assert broken.failure_mode == BreakingTestResult.FAILURE_DIAMETRAL
        assert broken.tablet_thickness_m == pytest.approx(result.tablet_thickness_m)
        expected = (
            2 * broken.breaking_force_n / (math.pi * broken.tablet_diameter_m * broken.tablet_thickness_m)
        )
        assert broken.tensile_strength_pa == pytest.approx(expected)
        assert len(broken.record.force_n) > 5 and len(broken.record.phase) == 0

        press.transition(Transition.TRANSITION_DEACTIVATE)
        status, refused = press.run_compaction()
        assert status == ABORTED and "not active" in refused.message
        assert not refused.success and math.isnan(refused.heckel_yield_pressure_pa)
        for step in (
            Transition.TRANSITION_CLEANUP,
            Transition.TRANSITION_CONFIGURE,
            Transition.TRANSITION_ACTIVATE,
        ):
            press.transition(step)
        assert press.state() == "active"
        status, again = press.run_compaction()
        assert status == SUCCEEDED, again.message


def test_the_zone_interlock_and_the_estop_stop_the_press(
    ros_domain_id: int, tmp_path: Path, wire_log: Path
) -> None:
    with (
        SimulatorProcess("press", SIM_OPTIONS, time_scale=FAST) as sim,
        safety_node(tmp_path),
        press_node(sim, tmp_path),
        GraphProbe("press_probe") as probe,
    ):
        press = PressClient(probe)
        assert zone(probe, "arm", True).granted  # the arm's tool is in the press
        status, refused = press.run_compaction()
        assert status == ABORTED
        assert "held by arm" in refused.message and not refused.success
        assert not wire_times(wire_log, b"CMP"), "the press moved while the arm held the zone"
        assert zone(probe, "arm", False).granted

        estop(probe, engage=False)  # the client exists before the stop is timed
        feedback: list[Any] = []
        handle = press.send(press.compact, compaction_goal(dwell_s=30.0), feedback)
        wait_for_phase(feedback, press.lock, "dwell")
        engaged_at = time.monotonic()
        assert estop(probe, engage=True).success
        latency = first_stop_after(wire_log, engaged_at) - engaged_at
        status, stopped = press.result(handle)
        ended = time.monotonic() - engaged_at
        assert latency < STOP_LIMIT_S, f"STP reached the press {latency * 1e3:.0f} ms after the e-stop"
        assert status == ABORTED and "e-stop engaged" in stopped.message, stopped.message
        assert ended < 1.0
        held = zone(probe, "arm", True)  # refused for the e-stop, but nobody holds the zone
        assert not held.granted and held.holder == ""

        status, refused = press.run_compaction()
        assert status == ABORTED and "e-stop engaged" in refused.message
        assert estop(probe, engage=False).success
        wait_for(lambda: press.recover().success, "recovery after the e-stop reset")
        # the stopped cycle left a compact in the die: recovery ejected it, holding the zone
        assert len(wire_times(wire_log, b"EJT")) == 1
        assert zone(probe, "arm", True).granted


def test_cancel_stops_the_press_within_100_ms(ros_domain_id: int, tmp_path: Path, wire_log: Path) -> None:
    with (
        SimulatorProcess("press", SIM_OPTIONS, time_scale=FAST) as sim,
        press_node(sim, tmp_path, require_zone=False),
        GraphProbe("press_probe") as probe,
    ):
        press = PressClient(probe)
        feedback: list[Any] = []
        handle = press.send(press.compact, compaction_goal(dwell_s=30.0), feedback)
        wait_for_phase(feedback, press.lock, "dwell")
        cancelled_at = time.monotonic()
        handle.cancel_goal_async()
        latency = first_stop_after(wire_log, cancelled_at) - cancelled_at
        status, result = press.result(handle)
        assert latency < STOP_LIMIT_S, f"STP reached the press {latency * 1e3:.0f} ms after the cancel"
        assert status == CANCELED, result.message
        assert "cancelled" in result.message and not result.success
        recovered = press.recover()
        assert recovered.success and "ejected" in recovered.message


def test_an_overload_fails_the_goal_with_the_press_code_and_diagnostics(
    ros_domain_id: int, tmp_path: Path
) -> None:
    options = {**SIM_OPTIONS, "overload_at_s": 1.0}
    with (
        SimulatorProcess("press", options, time_scale=FAST) as sim,
        press_node(sim, tmp_path, require_zone=False),
        GraphProbe("press_probe") as probe,
    ):
        press = PressClient(probe)
        status, result = press.run_compaction()
        assert status == ABORTED and not result.success
        assert "(device code 11)" in result.message and "load cell" in result.message
        diagnostic = press.latest_diagnostic(
            lambda s: any(v.key == "last_error_code" and v.value == "11" for v in s.values)
        )
        assert diagnostic.level != DiagnosticStatus.OK and "load cell" in diagnostic.message
        status, latched = press.run_compaction()  # the fault latches until an operator recovers
        assert status == ABORTED and "(device code 13)" in latched.message
        recovered = press.recover()
        assert recovered.success and "cleared latched fault 11" in recovered.message


def test_a_press_that_disappears_mid_cycle_fails_the_goal_without_hanging(
    ros_domain_id: int, tmp_path: Path
) -> None:
    with (
        SimulatorProcess("press", SIM_OPTIONS, time_scale=FAST) as sim,
        press_node(sim, tmp_path, require_zone=False, stream_timeout_s=0.5),
        GraphProbe("press_probe") as probe,
    ):
        press = PressClient(probe)
        feedback: list[Any] = []
        handle = press.send(press.compact, compaction_goal(dwell_s=30.0), feedback)
        wait_for_phase(feedback, press.lock, "dwell")
        sim.stop()
        status, result = press.result(handle)
        assert status == ABORTED and not result.success
        assert "compacting failed" in result.message
        status, again = press.run_compaction()  # no press: refused quickly, not hung
        assert status == ABORTED and "compacting failed" in again.message
        diagnostic = press.latest_diagnostic(lambda s: s.level == DiagnosticStatus.ERROR)
        assert "not connected" in diagnostic.message
        assert any(v.key == "last_error" and v.value for v in diagnostic.values)
