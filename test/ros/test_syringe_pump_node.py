"""The syringe-pump node on a real ROS graph against the simulated NE-1000 in its own process.

Each test starts the pump simulator (fast instrument time) and the node as processes and
talks to them as the disintegration station would. Stop latencies are measured at the
simulator: its wire log stamps every byte the host sent with CLOCK_MONOTONIC, which this
process shares.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState

from tablet_workcell.action import DispenseDroplet
from tablet_workcell.bringup.processes import ProcessSpec
from tablet_workcell.bringup.supervisor import GraphSupervisor
from tablet_workcell.devices.serve import WIRE_LOG_ENV
from tablet_workcell.devices.sim_process import SimulatorProcess
from tablet_workcell.devices.wire_log import STOP_TOKENS, command_times
from tablet_workcell.msg import EstopState
from tablet_workcell.ros.goal_client import GoalClient, SentGoal
from tablet_workcell.ros.graph_probe import GraphProbe, wait_until
from tablet_workcell.ros.qos import LATCHED

LOG = logging.getLogger(__name__)
SCALE = 5.0  # instrument seconds per wall second
UL = 1e-9  # m^3
UL_PER_MIN = 1e-9 / 60.0  # m^3/s
STOP_LIMIT_S = 0.1  # cancel / e-stop -> STP on the pump's wire
WAIT_S = 30.0


@dataclass
class Pump:
    sim: SimulatorProcess
    probe: GraphProbe
    client: GoalClient
    wire: Path
    diagnostics: dict[str, DiagnosticStatus] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def droplet(self, volume_m3: float = 0.0, flow_rate_m3_per_s: float = 0.0) -> SentGoal:
        goal = DispenseDroplet.Goal(volume_m3=volume_m3, flow_rate_m3_per_s=flow_rate_m3_per_s)
        return self.client.send(goal)

    def wait(self, condition: Callable[[], Any], what: str, timeout_s: float = WAIT_S) -> Any:
        return wait_until(condition, what, timeout_s)

    def diagnostic(self) -> DiagnosticStatus | None:
        with self.lock:
            return self.diagnostics.get("syringe_pump: syringe_pump")

    def stops_after(self, start: float) -> list[float]:
        """Times at which the pump simulator received a STP command after ``start``."""
        return command_times(self.wire, STOP_TOKENS["syringe_pump"], start)

    def lifecycle(self, transition: int) -> None:
        request = ChangeState.Request(transition=Transition(id=transition))
        response = self.probe.call(ChangeState, "/syringe_pump/change_state", request, timeout_s=WAIT_S)
        assert response.success, f"lifecycle transition {transition} failed"

    def state(self) -> str:
        response = self.probe.call(GetState, "/syringe_pump/get_state", GetState.Request(), timeout_s=WAIT_S)
        return str(response.current_state.label)


@contextlib.contextmanager
def pump_node(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, options: dict[str, str] | None = None
) -> Iterator[Pump]:
    monkeypatch.setenv(WIRE_LOG_ENV, str(tmp_path))
    with SimulatorProcess("syringe_pump", options, time_scale=SCALE) as sim:
        parameters = {"port": sim.ports["syringe_pump"], "simulated": True, "status_period_s": 0.2}
        parameter_file = tmp_path / "syringe_pump.yaml"
        parameter_file.write_text(yaml.safe_dump({"/**": {"ros__parameters": parameters}}))
        environment = dict(os.environ, PYTHONUNBUFFERED="1")
        node = (
            "-m",
            "tablet_workcell.nodes.syringe_pump",
            "--ros-args",
            "--params-file",
            str(parameter_file),
        )
        spec = ProcessSpec("syringe_pump", (sys.executable, *node), environment, parameter_file)
        with GraphSupervisor([spec]), GraphProbe("pump_probe") as probe:
            client = GoalClient(probe.node, DispenseDroplet, "/syringe_pump/dispense_droplet")
            pump = Pump(sim, probe, client, tmp_path / "syringe_pump.wire")

            def on_diagnostics(message: DiagnosticArray) -> None:
                with pump.lock:
                    pump.diagnostics.update({status.name: status for status in message.status})

            probe.node.create_subscription(DiagnosticArray, "/diagnostics", on_diagnostics, 10)
            pump.wait(lambda: pump.state() == "active", "the pump node to configure and activate")
            yield pump


def moving(feedback: Any) -> bool:
    return bool(feedback.dispensed_volume_m3 > 0.5 * UL)


def test_a_droplet_with_feedback_then_cancel_and_lifecycle(
    tmp_path: Path, ros_domain_id: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pump_node(tmp_path, monkeypatch) as pump:
        sent = pump.droplet()  # the defaults: 5 µL at 100 µL/min
        status, result = sent.result(WAIT_S)
        assert status == "succeeded", result.message
        assert result.success and result.dispensed_volume_m3 == pytest.approx(5 * UL, rel=0.01)
        progress = [f.progress for f in sent.feedback]
        assert progress == sorted(progress) and progress[-1] == pytest.approx(1.0, abs=0.01)
        assert 0.0 < result.duration_s < 5.0 and "100 µL/min" in result.message

        status, result = pump.droplet(2 * UL, 300 * UL_PER_MIN).result(WAIT_S)
        assert status == "succeeded" and result.dispensed_volume_m3 == pytest.approx(2 * UL, rel=0.01)

        # Cancel mid-droplet: the plunger's STP arrives within 100 ms, the goal ends canceled.
        long = pump.droplet(40 * UL, 100 * UL_PER_MIN)  # 24 s of pump time
        long.wait_for_feedback(moving, "the plunger moving")
        busy_status, busy = pump.droplet().result(WAIT_S)
        assert busy_status == "aborted" and "busy with dispensing droplet" in busy.message
        asked = time.monotonic()
        assert long.cancel().return_code == 0
        stopped = pump.wait(lambda: pump.stops_after(asked), "STP on the pump's wire after the cancel", 2.0)[
            0
        ]
        status, result = long.result(WAIT_S)
        sys.stdout.write(
            f"\nsyringe_pump: cancel request -> STP on the wire {(stopped - asked) * 1e3:.1f} ms\n"
        )
        assert stopped - asked < STOP_LIMIT_S
        assert status == "canceled" and result.message.startswith("cancelled on request")
        assert 0.5 * UL < result.dispensed_volume_m3 < 40 * UL

        status, result = pump.droplet(5e-6).result(WAIT_S)  # 5 mL: a volume in the wrong unit
        assert status == "aborted" and "above the 50 µL allowed" in result.message

        pump.lifecycle(Transition.TRANSITION_DEACTIVATE)
        status, result = pump.droplet().result(WAIT_S)
        assert status == "aborted" and "inactive, not active" in result.message
        pump.lifecycle(Transition.TRANSITION_CLEANUP)
        assert pump.state() == "unconfigured"
        pump.lifecycle(Transition.TRANSITION_CONFIGURE)
        pump.lifecycle(Transition.TRANSITION_ACTIVATE)
        status, result = pump.droplet().result(WAIT_S)
        assert status == "succeeded", result.message


def test_an_estop_stops_the_plunger_and_refuses_droplets_until_reset(
    tmp_path: Path, ros_domain_id: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pump_node(tmp_path, monkeypatch) as pump:
        estop = pump.probe.node.create_publisher(EstopState, "/safety/estop", LATCHED)
        # The probe subscribes to /safety/estop itself; the pump node is the second subscriber.
        pump.wait(lambda: estop.get_subscription_count() >= 2, "the pump node's e-stop subscription")
        sent = pump.droplet(40 * UL, 100 * UL_PER_MIN)
        sent.wait_for_feedback(moving, "the plunger moving")
        pressed = time.monotonic()
        estop.publish(EstopState(active=True, reason="test: e-stop while dispensing", source="tester"))
        stopped = pump.wait(
            lambda: pump.stops_after(pressed), "STP on the pump's wire after the e-stop", 2.0
        )[0]
        status, result = sent.result(WAIT_S)
        sys.stdout.write(
            f"\nsyringe_pump: e-stop publish -> STP on the wire {(stopped - pressed) * 1e3:.1f} ms\n"
        )
        assert stopped - pressed < STOP_LIMIT_S
        assert status == "aborted" and "e-stop engaged (test: e-stop while dispensing)" in result.message
        assert 0.5 * UL < result.dispensed_volume_m3 < 40 * UL

        status, result = pump.droplet().result(WAIT_S)
        assert status == "aborted" and result.message.startswith("e-stop engaged")
        estop.publish(EstopState(active=False, reason="", source="tester"))

        def succeeded() -> Any:
            status, result = pump.droplet(1 * UL, 300 * UL_PER_MIN).result(WAIT_S)
            return result if status == "succeeded" else None

        assert pump.wait(succeeded, "a droplet after the reset").success


def test_a_stall_and_a_lost_port_fail_the_droplet_with_diagnostics(
    tmp_path: Path, ros_domain_id: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pump_node(tmp_path, monkeypatch, options={"stall_after_ul": "2"}) as pump:
        status, result = pump.droplet(5 * UL, 300 * UL_PER_MIN).result(WAIT_S)
        assert status == "aborted" and result.message.startswith("droplet failed")
        assert "motor stalled" in result.message and result.dispensed_volume_m3 < 5 * UL

        def stall_reported() -> DiagnosticStatus | None:
            status = pump.diagnostic()
            return status if status is not None and _value(status, "last_error_code") == "A?S" else None

        assert pump.wait(stall_reported, "the stall in the diagnostics").level == DiagnosticStatus.WARN

        pump.sim.stop()  # the pump goes away (unplugged)
        sent_at = time.monotonic()
        status, result = pump.droplet().result(WAIT_S)
        assert status == "aborted" and time.monotonic() - sent_at < 10.0
        assert "not reachable" in result.message or "lost" in result.message

        def lost() -> DiagnosticStatus | None:
            status = pump.diagnostic()
            return status if status is not None and status.level == DiagnosticStatus.ERROR else None

        assert _value(pump.wait(lost, "ERROR in the pump diagnostics"), "connected") == "false"
        assert pump.state() == "active"  # the node still answers


def _value(status: DiagnosticStatus, key: str) -> str:
    return next((item.value for item in status.values if item.key == key), "")
