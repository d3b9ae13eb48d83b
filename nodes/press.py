"""press: the microscale tablet press (TWC-MP20 protocol, docs/devices/press.md) as a lifecycle node.

* ``/press/compact`` (tablet_workcell/action/Compact): set target pressure and dwell,
  compact, eject; the result carries the in-die force-displacement record and its
  analysis (Heckel, Kawakita, work, elastic recovery, solid fraction). Also published on
  ``/press/compaction_result`` for the recorder.
* ``/press/breaking_test`` (tablet_workcell/action/BreakingTest): diametral test of the
  tablet at the take-off position: breaking force, tensile strength 2F/(pi D t) and the
  failure mode (capping from the compaction's CAP flag). Also on ``/press/breaking_result``.
* ``/press/force`` (geometry_msgs/WrenchStamped): live punch / platen force, z along the
  loading axis, compression positive. Action feedback: phase, time, force, travel.
* ``/press/recover`` (std_srvs/Trigger): clear a latched fault (overload, motion, door)
  and eject a compact a stopped cycle left in the die, after an operator checked the press.

Interlock: every cycle holds the "press" zone of the safety node (``require_zone``),
taken before the first motion and released afterwards, also on failure and cancel; a
refused zone aborts the goal naming its holder. Cancel, deactivate and e-stop stop the
press through the driver (STP within one 20 ms read slice). Goals that cannot run
(e-stop, inactive, busy, a press fault) are accepted and aborted with the reason, so the
client reads why in ``result.message``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any, TypeVar

from geometry_msgs.msg import WrenchStamped
from rclpy.action import ActionServer, CancelResponse
from rclpy.action.server import ServerGoalHandle
from std_srvs.srv import Trigger

from tablet_workcell.action import BreakingTest, Compact
from tablet_workcell.devices.errors import DeviceError, DeviceStoppedError
from tablet_workcell.devices.health import DeviceHealth
from tablet_workcell.devices.press.codec import DieFill, PressState, Sample
from tablet_workcell.devices.press.driver import PressDriver
from tablet_workcell.devices.press.evaluation import (
    check_punch_diameter,
    evaluate_breaking,
    evaluate_compaction,
)
from tablet_workcell.devices.press.node_parameters import PRESS_NODE_SPECS
from tablet_workcell.errors import WorkcellError
from tablet_workcell.msg import BreakingTestResult, CompactionResult
from tablet_workcell.ros.device_node import DeviceNode
from tablet_workcell.ros.press_messages import (
    PHASE_NAMES,
    SampleStreamer,
    breaking_message,
    compaction_message,
)
from tablet_workcell.ros.runner import run_node
from tablet_workcell.ros.zone_access import ZoneHold, ZoneRefusedError

_R = TypeVar("_R", CompactionResult, BreakingTestResult)


class GoalRefusedError(WorkcellError):
    """The node cannot run a goal now (e-stop, inactive, busy): nothing was sent to the press."""


_FAILURES = (DeviceError, ZoneRefusedError, GoalRefusedError)


@dataclass(frozen=True)
class _Tablet:
    """What the press knows of the tablet at its take-off position."""

    diameter_m: float
    thickness_m: float
    capped: bool


class PressNode(DeviceNode):
    station = "press"

    def __init__(self) -> None:
        super().__init__("press", PRESS_NODE_SPECS)
        self._health = DeviceHealth("press")
        self._driver: PressDriver | None = None
        self._tablet: _Tablet | None = None
        self._punch_diameter_m = 0.0  # the press's tooling, from IDN at configure
        self._active_goal: ServerGoalHandle | None = None
        self._zone = (
            ZoneHold(self, "press", "press", self.actions_group, self.values.get_float("zone_timeout_s"))
            if self.values.get_bool("require_zone")
            else None
        )
        self._force_pub = self.create_publisher(WrenchStamped, "~/force", 50)
        self._compaction_pub = self.create_publisher(CompactionResult, "~/compaction_result", 10)
        self._breaking_pub = self.create_publisher(BreakingTestResult, "~/breaking_result", 10)
        groups: dict[str, Any] = {"callback_group": self.actions_group, "cancel_callback": self._on_cancel}
        self._servers = [
            ActionServer(self, Compact, "~/compact", execute_callback=self._execute_compact, **groups),
            ActionServer(
                self, BreakingTest, "~/breaking_test", execute_callback=self._execute_breaking, **groups
            ),
        ]
        self.create_service(Trigger, "~/recover", self._on_recover, callback_group=self.actions_group)

    # ------------------------------------------------------------------ DeviceNode hooks
    def connect(self) -> list[DeviceHealth]:
        port = self.values.get_str("port")
        if not port:
            raise DeviceError("press", "no port is set; pass -p port:=/dev/ttyUSB0 (or the simulator's pty)")
        driver = PressDriver(
            port,
            baudrate=self.values.get_int("baudrate"),
            timeout_s=self.values.get_float("timeout_s"),
            stream_timeout_s=self.values.get_float("stream_timeout_s"),
            log=self.traffic_log("press"),
        )
        self._driver = driver
        driver.open()
        identity = driver.identify()
        self._punch_diameter_m = identity.punch_diameter_m
        driver.set_sample_rate_hz(self.values.get_int("sample_rate_hz"))
        status = driver.status()
        if status.state is PressState.FAULT:
            self.get_logger().warning(
                f"the press has a latched fault (code {status.last_error}); see ~/recover"
            )
        self._health.connected_to(port, f"{identity.model} {identity.serial} firmware {identity.firmware}")
        return [self._health]

    def disconnect(self) -> None:
        driver, self._driver = self._driver, None
        if driver is not None:
            driver.close()
        self._health.disconnected()

    def halt(self) -> None:
        driver = self._driver
        if driver is None:
            return
        try:
            driver.stop()
        except DeviceError as error:
            self.get_logger().error(f"could not send STP to the press: {error}")

    # ------------------------------------------------------------------ actions
    def _on_cancel(self, goal_handle: ServerGoalHandle) -> CancelResponse:
        if goal_handle is self._active_goal:
            self.stop_requested.set()  # the driver sends STP at its next read slice
        return CancelResponse.ACCEPT

    def _execute_compact(self, goal_handle: ServerGoalHandle) -> Compact.Result:
        goal = goal_handle.request
        failed = CompactionResult(
            experiment_id=goal.experiment_id, target_pressure_pa=goal.target_pressure_pa
        )
        for name in ("heckel_yield_pressure_pa", "heckel_region_start_pa", "heckel_region_end_pa"):
            setattr(failed, name, math.nan)
        failed.kawakita_a = failed.kawakita_b_per_pa = math.nan

        def run(driver: PressDriver, stop: Any) -> CompactionResult:
            diameter = check_punch_diameter(goal.punch_diameter_m, self._punch_diameter_m)
            driver.set_target_pressure_pa(goal.target_pressure_pa)
            driver.set_dwell_s(goal.dwell_time_s)
            streamer = self._streamer(
                lambda s: goal_handle.publish_feedback(
                    Compact.Feedback(
                        phase=PHASE_NAMES[s.phase],
                        time_s=s.time_s,
                        force_n=s.force_n,
                        displacement_m=s.displacement_m,
                    )
                ),
                self.values.get_str("punch_frame_id"),
            )
            with self._zone_held():
                outcome = driver.compact(streamer, stop, self.values.get_float("cycle_timeout_s"))
            figures = evaluate_compaction(outcome, diameter, goal.fill_mass_kg, goal.true_density_kg_per_m3)
            self._tablet = _Tablet(diameter, figures.tablet_thickness_m, figures.capped)
            result = compaction_message(
                figures,
                outcome.in_die(),
                outcome.summary.dwell_s,
                goal.fill_mass_kg,
                goal.true_density_kg_per_m3,
            )
            result.experiment_id, result.target_pressure_pa = goal.experiment_id, outcome.target_pressure_pa
            self.get_logger().info(
                f"{goal.experiment_id}: {figures.max_pressure_pa / 1e6:.1f} MPa, "
                f"tablet {figures.tablet_thickness_m * 1e3:.3f} mm; {len(outcome.record)} samples"
            )
            return result

        result = self._run(goal_handle, "compacting", failed, run)
        self._compaction_pub.publish(result)
        return Compact.Result(result=result)

    def _execute_breaking(self, goal_handle: ServerGoalHandle) -> BreakingTest.Result:
        goal = goal_handle.request
        failed = BreakingTestResult(experiment_id=goal.experiment_id, tensile_strength_pa=math.nan)

        def run(driver: PressDriver, stop: Any) -> BreakingTestResult:
            tablet = self._tablet or _Tablet(self._punch_diameter_m, 0.0, False)
            diameter = goal.tablet_diameter_m or tablet.diameter_m
            thickness = goal.tablet_thickness_m or tablet.thickness_m
            speed = goal.platen_speed_m_per_s or None
            streamer = self._streamer(
                lambda s: goal_handle.publish_feedback(
                    BreakingTest.Feedback(time_s=s.time_s, force_n=s.force_n, displacement_m=s.displacement_m)
                ),
                self.values.get_str("platen_frame_id"),
            )
            with self._zone_held():
                outcome = driver.breaking_test(
                    speed, streamer, stop, self.values.get_float("cycle_timeout_s")
                )
            self._tablet = None  # the platen swept the fragments away
            figures = evaluate_breaking(outcome, diameter, thickness, tablet.capped)
            result = breaking_message(figures, outcome.record)
            result.experiment_id = goal.experiment_id
            self.get_logger().info(f"{goal.experiment_id}: {result.message}")
            return result

        result = self._run(goal_handle, "breaking test", failed, run)
        self._breaking_pub.publish(result)
        return BreakingTest.Result(result=result)

    def _run(
        self,
        goal_handle: ServerGoalHandle,
        name: str,
        failed: _R,
        body: Callable[[PressDriver, Any], _R],
    ) -> _R:
        """Run one goal: refusals, the busy mark, the press's errors and the goal's final state."""
        try:
            refusal = self.refusal()
            if refusal:
                raise GoalRefusedError(refusal)
            driver = self._ready_driver()
            with self.operation(name) as stop:
                self._active_goal = goal_handle
                if goal_handle.is_cancel_requested:  # cancelled before the operation began
                    stop.set()
                try:
                    result = body(driver, stop)
                finally:
                    self._active_goal = None
        except _FAILURES as error:
            failed.message = self._failure(goal_handle, name, error)
            failed.header.stamp = self.get_clock().now().to_msg()
            if goal_handle.is_cancel_requested:
                goal_handle.canceled()
            else:
                goal_handle.abort()
            return failed
        self._health.succeeded()
        result.header.stamp = self.get_clock().now().to_msg()
        goal_handle.succeed()
        return result

    def _failure(self, goal_handle: ServerGoalHandle, name: str, error: Exception) -> str:
        """The sentence a failed goal ends with; the press's faults also go to diagnostics."""
        if isinstance(error, DeviceStoppedError):
            if goal_handle.is_cancel_requested:
                why = "cancelled by the client"
            elif self.estopped.is_set():
                why = f"e-stop engaged ({self.estop_reason})"
            else:
                why = f"the node was {self.lifecycle_state}"
            message = f"{name} stopped: {why}; {error}"
        elif isinstance(error, DeviceError):
            self.record_error(self._health, error)
            return f"{name} failed: {error}"
        else:
            message = f"{name} refused: {error}"
        self.get_logger().warning(message)
        return message

    def _ready_driver(self) -> PressDriver:
        """The driver, reconnected and identified first when the last error lost the port."""
        driver = self._driver
        if driver is None:
            raise GoalRefusedError("the press is not connected; configure the node first")
        if not self._health.connected:
            self.get_logger().info("press: reconnecting after the last error")
            driver.reconnect()  # a DeviceError goes to diagnostics with the goal's failure
            identity = driver.identify()
            self._punch_diameter_m = identity.punch_diameter_m
            self._health.connected_to(self._health.port, self._health.identity or identity.model)
        return driver

    @contextmanager
    def _zone_held(self) -> Iterator[None]:
        """The press zone for one motion (or nothing when ``require_zone`` is false)."""
        with self._zone.held() if self._zone is not None else nullcontext():
            yield

    def _streamer(self, feedback: Callable[[Sample], None], frame_id: str) -> SampleStreamer:
        return SampleStreamer(
            self._force_pub.publish,
            feedback,
            self.get_clock(),
            frame_id,
            self.values.get_float("force_rate_hz"),
            self.values.get_float("feedback_rate_hz"),
        )

    # ------------------------------------------------------------------ recovery
    def _on_recover(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        """Clear a latched fault, eject a compact left in the die; what was done in the message."""
        done: list[str] = []
        try:
            refusal = self.refusal()
            if refusal:
                raise GoalRefusedError(refusal)
            driver = self._ready_driver()
            with self.operation("recovering") as stop:
                status = driver.status()
                if status.state is PressState.FAULT:
                    driver.clear_error()
                    done.append(f"cleared latched fault {status.last_error}")
                if status.die is DieFill.PRESSED:
                    with self._zone_held():
                        ejected = driver.eject(
                            stop_event=stop, timeout_s=self.values.get_float("cycle_timeout_s")
                        )
                    diameter = self._punch_diameter_m
                    self._tablet = _Tablet(
                        diameter, ejected.summary.tablet_thickness_m, ejected.summary.capped
                    )
                    done.append("ejected the compact left in the die to the take-off position")
        except _FAILURES as error:
            response.success, response.message = False, self._failure_text("recover", error, done)
            return response
        response.success = True
        response.message = (
            "; ".join(done) + "." if done else "nothing to recover: no fault, no compact in the die."
        )
        self.get_logger().info(f"recover: {response.message}")
        return response

    def _failure_text(self, name: str, error: Exception, done: list[str]) -> str:
        if isinstance(error, DeviceError):
            self.record_error(self._health, error)
        before = f" (after: {'; '.join(done)})" if done else ""
        return f"{name} failed{before}: {error}"


def main() -> int:
    return run_node(PressNode, threads=4)


if __name__ == "__main__":
    raise SystemExit(main())
