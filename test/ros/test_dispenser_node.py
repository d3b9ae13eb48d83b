"""The dispenser node on a real ROS graph against the simulated dispensing station.

Each test starts the station simulator (balance + dosing heads, in its own process, fast
instrument time) and the node as processes and talks to them as the orchestrator would.
Stop latencies are measured at the simulator: its wire log stamps every byte the host
sent with CLOCK_MONOTONIC, which this process shares, so "the stop reached the head" is
seen on the instrument's side of the wire.
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
from std_msgs.msg import Float64

from tablet_workcell.action import Dispense
from tablet_workcell.bringup.processes import ProcessSpec
from tablet_workcell.bringup.supervisor import GraphSupervisor
from tablet_workcell.devices.serve import WIRE_LOG_ENV
from tablet_workcell.devices.sim_process import SimulatorProcess
from tablet_workcell.devices.wire_log import STOP_TOKENS, command_times
from tablet_workcell.msg import DosedComponent
from tablet_workcell.ros.goal_client import GoalClient, SentGoal
from tablet_workcell.ros.graph_probe import GraphProbe, wait_until
from tablet_workcell.srv import EmergencyStop

LOG = logging.getLogger(__name__)
SCALE = 4.0  # instrument seconds per wall second (simulator and node agree)
LACTOSE, MCC = "lactose_monohydrate", "microcrystalline_cellulose"
HEADS = f"{LACTOSE}:5000,{MCC}:5000"
STOP_LIMIT_S = 0.1  # cancel / e-stop -> STP on the heads' wire
WAIT_S = 30.0


@dataclass
class Station:
    sim: SimulatorProcess
    probe: GraphProbe
    dispense: GoalClient
    wire: Path
    masses: list[float] = field(default_factory=list)
    diagnostics: dict[str, DiagnosticStatus] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def goal(self, targets: list[tuple[str, float]], tolerance_kg: float = 1e-6) -> SentGoal:
        components = [DosedComponent(name=name, target_mass_kg=mass) for name, mass in targets]
        return self.dispense.send(
            Dispense.Goal(experiment_id="exp-1", targets=components, tolerance_kg=tolerance_kg)
        )

    def wait(self, condition: Callable[[], Any], what: str, timeout_s: float = WAIT_S) -> Any:
        return wait_until(condition, what, timeout_s)

    def diagnostic(self, device: str) -> DiagnosticStatus | None:
        with self.lock:
            return self.diagnostics.get(f"dispenser: {device}")

    def stops_after(self, start: float) -> list[float]:
        """Times at which the heads' simulator received a STP frame after ``start``."""
        return command_times(self.wire, STOP_TOKENS["feeder"], start)

    def lifecycle(self, transition: int) -> None:
        request = ChangeState.Request(transition=Transition(id=transition))
        response = self.probe.call(ChangeState, "/dispenser/change_state", request, timeout_s=WAIT_S)
        assert response.success, f"lifecycle transition {transition} failed"

    def state(self) -> str:
        response = self.probe.call(GetState, "/dispenser/get_state", GetState.Request(), timeout_s=WAIT_S)
        return str(response.current_state.label)


@contextlib.contextmanager
def station(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    options: dict[str, str] | None = None,
    with_safety: bool = False,
    heads: tuple[str, ...] = (f"1:{LACTOSE}", f"2:{MCC}"),
) -> Iterator[Station]:
    monkeypatch.setenv(WIRE_LOG_ENV, str(tmp_path))
    with SimulatorProcess("dispensing_station", {"heads": HEADS, **(options or {})}, time_scale=SCALE) as sim:
        parameters = {
            "balance_port": sim.ports["balance"],
            "dosing_port": sim.ports["feeder"],
            "simulated": True,
            "time_scale": SCALE,
            "status_period_s": 0.2,
            "balance_period_s": 0.1,
            "heads": list(heads),
        }
        parameter_file = tmp_path / "dispenser.yaml"
        parameter_file.write_text(yaml.safe_dump({"/**": {"ros__parameters": parameters}}))
        environment = dict(os.environ, PYTHONUNBUFFERED="1")
        node = ("-m", "tablet_workcell.nodes.dispenser", "--ros-args", "--params-file", str(parameter_file))
        specs = [ProcessSpec("dispenser", (sys.executable, *node), environment, parameter_file)]
        if with_safety:
            safety = ("-m", "tablet_workcell.nodes.safety", "--ros-args", "-p", "heartbeat_timeout_s:=10.0")
            specs.append(ProcessSpec("safety", (sys.executable, *safety), environment, None))
        with GraphSupervisor(specs), GraphProbe("dispenser_probe") as probe:
            cell = Station(
                sim, probe, GoalClient(probe.node, Dispense, "/dispenser/dispense"), tmp_path / "feeder.wire"
            )

            def on_mass(message: Float64) -> None:
                with cell.lock:
                    cell.masses.append(message.data)

            def on_diagnostics(message: DiagnosticArray) -> None:
                with cell.lock:
                    cell.diagnostics.update({status.name: status for status in message.status})

            probe.node.create_subscription(Float64, "/dispenser/balance_mass", on_mass, 10)
            probe.node.create_subscription(DiagnosticArray, "/diagnostics", on_diagnostics, 10)
            if heads[0].endswith(LACTOSE):  # else the test expects configure to fail
                cell.wait(lambda: cell.state() == "active", "the dispenser to configure and activate")
            yield cell


def feeding(feedback: Any) -> bool:
    return feedback.feed_rate_kg_per_s > 10e-6 and feedback.dosed_mass_kg > 1e-6


def test_a_recipe_is_dosed_with_feedback_then_cancel_and_lifecycle(
    tmp_path: Path, ros_domain_id: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    with station(tmp_path, monkeypatch) as cell:
        cell.wait(lambda: len(cell.masses) >= 3, "idle balance readings on /dispenser/balance_mass")
        sent = cell.goal([(LACTOSE, 20e-6), (MCC, 15e-6)])
        status, result = sent.result(WAIT_S)
        dose = result.result
        assert status == "succeeded", dose.message
        assert dose.success and dose.experiment_id == "exp-1"
        assert [c.name for c in dose.components] == [LACTOSE, MCC]
        for component in dose.components:
            assert abs(component.error_kg) <= 1e-6, component
        assert dose.total_target_mass_kg == pytest.approx(35e-6)
        assert abs(dose.relative_error) < 0.05
        feedback = sent.feedback
        assert {f.component_index for f in feedback} == {0, 1}
        assert {f.component for f in feedback} == {LACTOSE, MCC}
        assert max(f.feed_rate_kg_per_s for f in feedback) == pytest.approx(20e-6, rel=0.01)  # full speed
        assert max(f.dosed_mass_kg for f in feedback if f.component_index == 0) > 15e-6

        # Cancel mid-feed: the stop reaches the head within 100 ms, the goal ends canceled.
        long = cell.goal([(LACTOSE, 400e-6)])
        long.wait_for_feedback(feeding, "the head feeding")
        busy = cell.goal([(MCC, 5e-6)])
        busy_status, busy_result = busy.result(WAIT_S)
        assert busy_status == "aborted" and "busy with dispensing" in busy_result.result.message
        asked = time.monotonic()
        assert long.cancel().return_code == 0
        stopped = cell.wait(lambda: cell.stops_after(asked), "STP on the heads' wire after the cancel", 2.0)[
            0
        ]
        status, result = long.result(WAIT_S)
        LOG.info("cancel -> STP at the head: %.1f ms", (stopped - asked) * 1e3)
        sys.stdout.write(
            f"\ndispenser: cancel request -> feeder stop on the wire {(stopped - asked) * 1e3:.1f} ms\n"
        )
        assert stopped - asked < STOP_LIMIT_S
        assert status == "canceled" and not result.result.success
        assert "cancelled on request" in result.result.message
        partial = result.result.components[0]
        assert 0.0 < partial.dosed_mass_kg < 400e-6

        refused = cell.goal([("talc", 10e-6)])
        assert refused.result(WAIT_S)[1].result.message.startswith("no dosing head holds 'talc'")
        wrong_unit = cell.goal([(LACTOSE, 0.02)])
        assert "max_recipe_mass_kg" in wrong_unit.result(WAIT_S)[1].result.message

        # Lifecycle: inactive refuses; cleanup releases the ports; configure + activate doses again.
        cell.lifecycle(Transition.TRANSITION_DEACTIVATE)
        inactive = cell.goal([(LACTOSE, 5e-6)])
        status, result = inactive.result(WAIT_S)
        assert status == "aborted" and "inactive, not active" in result.result.message
        cell.lifecycle(Transition.TRANSITION_CLEANUP)
        assert cell.state() == "unconfigured"
        cell.lifecycle(Transition.TRANSITION_CONFIGURE)
        cell.lifecycle(Transition.TRANSITION_ACTIVATE)
        again = cell.goal([(MCC, 10e-6)])
        status, result = again.result(WAIT_S)
        assert status == "succeeded", result.result.message


def test_an_estop_stops_the_feeder_and_refuses_goals_until_reset(
    tmp_path: Path, ros_domain_id: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    with station(tmp_path, monkeypatch, with_safety=True) as cell:
        sent = cell.goal([(LACTOSE, 400e-6)])
        sent.wait_for_feedback(feeding, "the head feeding")
        request = EmergencyStop.Request(engage=True, reason="test: e-stop while dosing", operator_id="tester")
        pressed = time.monotonic()
        assert cell.probe.call(EmergencyStop, "/safety/set_estop", request, timeout_s=WAIT_S).success
        stopped = cell.wait(
            lambda: cell.stops_after(pressed), "STP on the heads' wire after the e-stop", 2.0
        )[0]
        status, result = sent.result(WAIT_S)
        ended = time.monotonic()
        # The safety node stamps the latched EstopState with the system clock when it publishes it;
        # the same machine's clocks convert it to CLOCK_MONOTONIC to time the dispenser's part alone.
        stamp = cell.probe.wait_for_estop(lambda state: state.active, "the latched e-stop").header.stamp
        published = stamp.sec + stamp.nanosec * 1e-9 - (time.time() - time.monotonic())
        chain_ms, node_ms = (stopped - pressed) * 1e3, (stopped - published) * 1e3
        LOG.info(
            "e-stop: service call -> STP %.1f ms, EstopState published -> STP %.1f ms", chain_ms, node_ms
        )
        sys.stdout.write(
            f"\ndispenser: e-stop service call -> feeder stop on the wire {chain_ms:.1f} ms "
            f"(EstopState published -> stop {node_ms:.1f} ms), "
            f"goal ended after {(ended - pressed) * 1e3:.0f} ms\n"
        )
        assert stopped - published < STOP_LIMIT_S  # the dispenser's reaction
        assert (
            stopped - pressed < 5 * STOP_LIMIT_S
        )  # the whole chain, through the safety node, on a busy machine
        assert status == "aborted" and "e-stop engaged (test: e-stop while dosing)" in result.result.message
        landed = result.result.components[0].dosed_mass_kg
        assert 0.0 < landed < 400e-6

        # Nothing lands after the stop: the idle readings stay where the dose ended.
        count = len(cell.masses)
        cell.wait(lambda: len(cell.masses) >= count + 8, "balance readings after the stop")
        with cell.lock:
            settled = cell.masses[-3:]
        assert max(settled) - min(settled) < 0.2e-6

        refused = cell.goal([(LACTOSE, 5e-6)])
        status, result = refused.result(WAIT_S)
        assert status == "aborted" and result.result.message.startswith("e-stop engaged")
        reset = EmergencyStop.Request(engage=False, operator_id="tester")
        assert cell.probe.call(EmergencyStop, "/safety/set_estop", reset, timeout_s=WAIT_S).success
        after = cell.wait(lambda: _accepted_dose(cell), "a dose to succeed after the reset")
        assert after.success


def _accepted_dose(cell: Station) -> Any:
    """The result of a small dose once the node has seen the reset (None while still e-stopped)."""
    status, result = cell.goal([(MCC, 5e-6)]).result(WAIT_S)
    return result.result if status == "succeeded" else None


def test_a_jam_and_a_lost_port_fail_the_goal_with_diagnostics(
    tmp_path: Path, ros_domain_id: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    with station(tmp_path, monkeypatch, options={"jam": f"{MCC}:4"}) as cell:
        status, result = cell.goal([(LACTOSE, 10e-6), (MCC, 20e-6)]).result(WAIT_S)
        dose = result.result
        assert status == "aborted" and not dose.success
        assert dose.message.startswith(f"{MCC} (component 2 of 2) failed") and "E11" in dose.message
        assert [c.name for c in dose.components] == [LACTOSE, MCC]
        assert abs(dose.components[0].error_kg) <= 1e-6 and dose.components[1].dosed_mass_kg < 20e-6

        def jam_reported() -> DiagnosticStatus | None:
            status = cell.diagnostic("dosing")
            return status if status is not None and "E11" in _value(status, "last_error") else None

        warned = cell.wait(jam_reported, "the jam in the dosing diagnostics")
        assert warned.level == DiagnosticStatus.WARN and _value(warned, "last_error_code") == "E11"

        # The station's process goes away (unplugged): diagnostics turn to ERROR, goals fail fast.
        cell.sim.stop()

        def lost() -> DiagnosticStatus | None:
            status = cell.diagnostic("balance")
            return status if status is not None and status.level == DiagnosticStatus.ERROR else None

        status_now = cell.wait(lost, "ERROR in the balance diagnostics")
        assert _value(status_now, "connected") == "false" and "lost" in _value(status_now, "last_error")
        sent_at = time.monotonic()
        status, result = cell.goal([(LACTOSE, 10e-6)]).result(WAIT_S)
        assert status == "aborted" and "not reachable" in result.result.message
        assert time.monotonic() - sent_at < 10.0
        assert cell.state() == "active"  # the node still answers


def _value(status: DiagnosticStatus, key: str) -> str:
    return next((item.value for item in status.values if item.key == key), "")


def test_a_hopper_on_the_wrong_head_fails_configure(
    tmp_path: Path, ros_domain_id: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    with station(tmp_path, monkeypatch, heads=(f"1:{MCC}", f"2:{LACTOSE}")) as cell:

        def refused() -> DiagnosticStatus | None:
            with cell.lock:
                status = cell.diagnostics.get("dispenser")
            return status if status is not None and status.level == DiagnosticStatus.ERROR else None

        status = cell.wait(refused, "the configure failure in the diagnostics")
        assert (
            f"head 01 reports it holds '{LACTOSE}', but the heads parameter puts '{MCC}' there"
            in status.message
        )
        assert cell.state() == "unconfigured"
        status_now, result = cell.goal([(MCC, 5e-6)]).result(WAIT_S)
        assert status_now == "aborted" and "unconfigured, not active" in result.result.message
