"""syringe_pump: places the water droplet on a tablet with the NE-1000 pump (station ``syringe_pump``).

A station of its own rather than part of ``disintegration``: the camera node that runs
the disintegration test calls this action, and each node's heartbeat must stand for one
process, or the safety watchdog could not tell which one died.

* ``~/dispense_droplet`` (tablet_workcell/action/DispenseDroplet): infuses ``volume_m3`` at
  ``flow_rate_m3_per_s`` (0 for either: the node's default) and waits until the pump has
  finished; feedback (volume infused so far, progress 0..1) every ``poll_period_s``.
  Cancel and e-stop stop the plunger at once (``STP``, within one exchange of a few
  milliseconds) and end the goal with the volume that was infused.
* Station status ``syringe_pump`` and diagnostics of the pump (base class).

Configure opens the port, stops the pump (nothing moves that no one controls), reads its
model and firmware and sets the syringe diameter, read back to check the pump took it.
A goal on a lost port first reconnects once; if that fails the goal fails with the reason.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any

from rclpy.action import ActionServer, CancelResponse
from rclpy.action.server import ServerGoalHandle

from tablet_workcell.action import DispenseDroplet
from tablet_workcell.devices.errors import DeviceError, DeviceStoppedError
from tablet_workcell.devices.health import DeviceHealth
from tablet_workcell.devices.syringe_pump.driver import DropletProgress, SyringePumpDriver
from tablet_workcell.devices.syringe_pump.droplet import UL_PER_M3, DropletPlan, plan_droplet
from tablet_workcell.devices.syringe_pump.node_parameters import SYRINGE_PUMP_SPECS
from tablet_workcell.ros.device_node import DeviceNode
from tablet_workcell.ros.goal_outcome import end_goal
from tablet_workcell.ros.runner import run_node

GoalHandle = ServerGoalHandle[Any, Any, Any]
DIAMETER_MATCH_MM = 0.0015  # the pump keeps 4 significant digits of the diameter


class SyringePumpNode(DeviceNode):
    station = "syringe_pump"

    def __init__(self) -> None:
        super().__init__("syringe_pump", SYRINGE_PUMP_SPECS)
        self._pump_health = DeviceHealth("syringe_pump")
        self._pump: SyringePumpDriver | None = None
        self._goal: GoalHandle | None = None
        self._action: ActionServer[Any, Any, Any] = ActionServer(
            self,
            DispenseDroplet,
            "~/dispense_droplet",
            self._execute,
            callback_group=self.actions_group,
            cancel_callback=self._on_cancel,
        )

    # ------------------------------------------------------------------ instrument
    def connect(self) -> list[DeviceHealth]:
        values = self.values
        port = values.get_str("port")
        if not port:
            raise DeviceError("syringe_pump", "parameter port is empty; set the serial port", "config")
        pump = self._pump = SyringePumpDriver(
            port,
            values.get_int("address"),
            values.get_int("baudrate"),
            values.get_float("timeout_s"),
            values.get_float("poll_period_s"),
            log=self.traffic_log("syringe_pump"),
        )
        pump.open()
        pump.stop()
        identity = pump.identify()
        wanted = values.get_float("syringe_diameter_mm")
        pump.set_diameter_mm(wanted)
        diameter = pump.diameter_mm()
        if abs(diameter - wanted) > DIAMETER_MATCH_MM:
            raise DeviceError(
                "syringe_pump",
                f"the pump reports a syringe diameter of {diameter:.3f} mm after being set to "
                f"{wanted:.3f} mm; check syringe_diameter_mm against the pump's range",
                "diameter",
            )
        self._pump_health.connected_to(
            port,
            f"{identity.model} firmware {identity.firmware}, address {pump.address}, "
            f"syringe {diameter:.3f} mm",
        )
        return [self._pump_health]

    def _close_port(self) -> None:
        pump, self._pump = self._pump, None
        if pump is not None:
            pump.close()
        self._pump_health.disconnected()

    def disconnect(self) -> None:
        self._close_port()
        self.health = []

    def halt(self) -> None:
        pump = self._pump
        if pump is None or not pump.transport.is_open:  # a lost port has nothing left to stop
            return
        try:
            pump.stop()
        except DeviceError as error:
            self.get_logger().warning(f"halt: {error}")

    # ------------------------------------------------------------------ the action
    def _on_cancel(self, goal_handle: Any) -> CancelResponse:
        """Accept, and stop the plunger now if it is this goal's droplet."""
        if goal_handle is self._goal:
            self.stop_requested.set()
            self.halt()
        return CancelResponse.ACCEPT

    def _execute(self, goal_handle: GoalHandle) -> Any:
        droplet = _Droplet(self, goal_handle)
        refusal = self.refusal()
        if refusal:
            return droplet.finish(False, refusal)
        request, values = goal_handle.request, self.values
        try:
            droplet.plan = plan_droplet(
                request.volume_m3,
                request.flow_rate_m3_per_s,
                default_volume_m3=values.get_float("default_volume_m3"),
                default_flow_rate_m3_per_s=values.get_float("default_flow_rate_m3_per_s"),
                max_volume_m3=values.get_float("max_volume_m3"),
                timeout_margin_s=values.get_float("timeout_margin_s"),
            )
        except DeviceError as error:
            return droplet.finish(False, str(error))
        with contextlib.ExitStack() as stack:
            try:
                stop = stack.enter_context(self.operation("dispensing droplet"))
            except DeviceError as busy:
                return droplet.finish(False, str(busy))
            self._goal = goal_handle
            try:
                return self._dispense(droplet, droplet.plan, stop)
            except Exception as error:  # a bug must not leave the plunger moving
                self.halt()
                self.get_logger().error(f"droplet failed unexpectedly: {error!r}")
                return droplet.finish(False, f"internal error, pump stopped: {error!r}")
            finally:
                self._goal = None
        raise AssertionError("unreachable")  # ExitStack does not swallow exceptions

    def _dispense(self, droplet: _Droplet, plan: DropletPlan, stop: threading.Event) -> Any:
        try:
            self.reconnect_if_lost()
        except DeviceError as error:
            return droplet.finish(False, f"the syringe pump is not reachable: {error}")
        pump = self._pump
        assert pump is not None  # connect() made it
        droplet.started = time.monotonic()
        try:
            droplet.dispensed_ul = pump.dispense_droplet(
                plan.volume_ul,
                plan.rate_ul_per_min,
                plan.timeout_s,
                stop_event=stop,
                progress=droplet.progress,
            )
        except DeviceStoppedError as error:
            with contextlib.suppress(DeviceError):
                droplet.dispensed_ul = pump.dispensed().infused_ul
            if stop.is_set():  # else the pump stopped on its own (keypad): a failure like any other
                return droplet.finish(False, f"{self._stop_reason(droplet.goal_handle)}: {error}")
            self.record_error(self._pump_health, error)
            return droplet.finish(False, f"droplet failed: {error}")
        except DeviceError as error:
            self.record_error(self._pump_health, error)
            return droplet.finish(False, f"droplet failed: {error}")
        self._pump_health.succeeded()
        return droplet.finish(
            True,
            f"droplet of {droplet.dispensed_ul:.3f} µL at {plan.rate_ul_per_min:.4g} µL/min "
            f"in {time.monotonic() - droplet.started:.2f} s",
        )

    def _stop_reason(self, goal_handle: GoalHandle) -> str:
        if self.estopped.is_set():
            return f"e-stop engaged ({self.estop_reason})"
        if goal_handle.is_cancel_requested:
            return "cancelled on request"
        return f"{self.get_name()} was deactivated"


class _Droplet:
    """One goal's bookkeeping: the plan, the volume infused so far, the result."""

    def __init__(self, node: SyringePumpNode, goal_handle: GoalHandle) -> None:
        self.node, self.goal_handle = node, goal_handle
        self.plan: DropletPlan | None = None
        self.dispensed_ul = 0.0
        self.started = time.monotonic()

    def progress(self, progress: DropletProgress) -> None:
        self.dispensed_ul = progress.dispensed_ul
        fraction = progress.dispensed_ul / progress.target_ul if progress.target_ul > 0 else 0.0
        self.goal_handle.publish_feedback(
            DispenseDroplet.Feedback(
                dispensed_volume_m3=progress.dispensed_ul / UL_PER_M3, progress=min(1.0, max(0.0, fraction))
            )
        )

    def finish(self, success: bool, message: str) -> Any:
        node = self.node
        end_goal(self.goal_handle, node.get_logger(), success, message, node.estopped.is_set())
        return DispenseDroplet.Result(
            success=success,
            message=message,
            dispensed_volume_m3=self.dispensed_ul / UL_PER_M3,
            duration_s=time.monotonic() - self.started,
        )


def main() -> int:
    return run_node(SyringePumpNode, threads=4)


if __name__ == "__main__":
    raise SystemExit(main())
