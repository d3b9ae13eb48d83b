"""Set every instrument of the simulated cell in motion at once (benchmarks, tests, demo).

Used by ``bench/estop_latency.py`` and the whole-cell e-stop test: the dispenser doses,
the press compacts with a long dwell, the arm travels, the syringe pump infuses, and the
caller then checks what an e-stop does to all of them. Every wait is bounded.
"""

from __future__ import annotations

import threading
import time

from tablet_workcell.action import ArmTransfer, Compact, Dispense, DispenseDroplet
from tablet_workcell.msg import DosedComponent, EstopState, StationStatus
from tablet_workcell.ros.goal_client import GoalClient, SentGoal
from tablet_workcell.ros.graph_probe import GraphProbe, ProbeError
from tablet_workcell.ros.qos import LATCHED
from tablet_workcell.srv import EmergencyStop

STATIONS = ("arm", "dispenser", "press", "syringe_pump")


class CellExercise:
    """The probe's view of the instruments: station states, the e-stop as a subscriber sees it,
    and one action client per instrument to set them all in motion."""

    def __init__(self, probe: GraphProbe) -> None:
        self.probe = probe
        self._lock = threading.Lock()
        self.states: dict[str, int] = {}
        self.estop_seen_at: float | None = None
        probe.node.create_subscription(StationStatus, "/workcell/station_status", self._on_status, 50)
        probe.node.create_subscription(EstopState, "/safety/estop", self._on_estop, LATCHED)
        node = probe.node
        self.dispense = GoalClient(node, Dispense, "/dispenser/dispense")
        self.compact = GoalClient(node, Compact, "/press/compact")
        self.transfer = GoalClient(node, ArmTransfer, "/arm/transfer")
        self.droplet = GoalClient(node, DispenseDroplet, "/syringe_pump/dispense_droplet")

    def _on_status(self, message: StationStatus) -> None:
        with self._lock:
            self.states[message.station] = message.state

    def _on_estop(self, message: EstopState) -> None:
        with self._lock:
            if message.active and self.estop_seen_at is None:
                self.estop_seen_at = time.monotonic()

    def wait_states(self, wanted: int, what: str, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                if all(self.states.get(s) == wanted for s in STATIONS):
                    return
            time.sleep(0.01)
        raise ProbeError(f"timed out after {timeout_s:.0f} s waiting for {what}; stations: {self.states}")

    def estop(self, engage: bool) -> float:
        request = EmergencyStop.Request(engage=engage, reason="e-stop latency benchmark", operator_id="bench")
        with self._lock:
            self.estop_seen_at = None
        sent = time.monotonic()
        response = self.probe.call(EmergencyStop, "/safety/set_estop", request, timeout_s=10.0)
        if not response.success:
            raise ProbeError(f"e-stop {'engage' if engage else 'reset'} refused: {response.message}")
        return sent

    def home_arm(self, timeout_s: float = 60.0) -> None:
        """Home the arm first: homing holds the press zone (the tool's position is unknown),
        which would refuse the press's cycle; the exercise's moves then stay out of the zone."""
        status, result = self.transfer.send(ArmTransfer.Goal(from_station="", to_station="home")).result(
            timeout_s
        )
        if status != "succeeded":
            raise ProbeError(f"homing the arm failed: {result.message}")

    @staticmethod
    def transfer_goal(to_station: str) -> ArmTransfer.Goal:
        """An empty-tool move of the arm to ``to_station``."""
        return ArmTransfer.Goal(from_station="", to_station=to_station, payload=ArmTransfer.Goal.PAYLOAD_NONE)

    def start_motions(self, arm_to: str) -> list[SentGoal]:
        """Long operations on all four instruments at once (the arm to a station outside the press zone)."""
        dose = DosedComponent(name="microcrystalline_cellulose", target_mass_kg=500e-6)
        goals = [
            self.dispense.send(Dispense.Goal(experiment_id="bench", targets=[dose], tolerance_kg=1e-6)),
            self.compact.send(
                Compact.Goal(
                    experiment_id="bench",
                    target_pressure_pa=150e6,
                    dwell_time_s=20.0,
                    punch_diameter_m=8e-3,
                    fill_mass_kg=200e-6,
                    true_density_kg_per_m3=1540.0,
                )
            ),
            self.transfer.send(self.transfer_goal(arm_to)),
            self.droplet.send(DispenseDroplet.Goal(volume_m3=20e-9, flow_rate_m3_per_s=0.2e-9)),
        ]
        for goal in goals:
            if not goal.accepted:
                raise ProbeError(f"{goal.name} refused the goal")
        return goals
