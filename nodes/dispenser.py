"""dispenser: doses the powders of a recipe gravimetrically onto the balance (station ``dispenser``).

Owns the MT-SICS balance and the bus of dosing heads (one head per powder).

* ``~/dispense`` (tablet_workcell/action/Dispense): doses each target in order with the
  closed-loop doser (tablet_workcell.devices.dosing.gravimetric), taring before each.
  Feedback about ten times a second: component, its index, target, net balance reading,
  commanded feed rate. The result (DoseResult) lists every component dosed, also the one
  that failed or was stopped with what landed of it, because that powder is in the die.
  Cancel and e-stop write the stop to the bus at once (the feeder stops within a few
  milliseconds) and end the goal with a message saying why and how much was dosed.
* ``~/balance_mass`` (std_msgs/Float64, kg): the net balance reading, every
  ``balance_period_s`` while the node is configured and idle, and with every feedback
  during a dose. ROS has no standard mass message; a plain kg value plots in any tool,
  the recorder stamps every message, and the unit is in the parameter and this text.
* Station status ``dispenser`` and diagnostics of ``balance`` and ``dosing`` (base class).

Which head holds which powder is the ``heads`` parameter (``ADDRESS:POWDER``); configure
checks that each head reports that powder and fails on a mismatch (see recipe.py).
A goal on a lost port first reconnects once; if that fails the goal fails with the reason.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
from typing import Any

from rclpy.action import ActionServer, CancelResponse
from rclpy.action.server import ServerGoalHandle
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.clock import Clock, ClockType
from rclpy.lifecycle import LifecycleState, TransitionCallbackReturn
from rclpy.publisher import Publisher
from rclpy.timer import Timer
from std_msgs.msg import Float64

from tablet_workcell.action import Dispense
from tablet_workcell.devices.balance.driver import MtSicsBalance
from tablet_workcell.devices.dosing.driver import DosingBus
from tablet_workcell.devices.dosing.gravimetric import (
    DoseOutOfToleranceError,
    DoseProgress,
    DoseSettings,
    GravimetricDoser,
)
from tablet_workcell.devices.dosing.node_parameters import DISPENSER_SPECS
from tablet_workcell.devices.dosing.recipe import RecipeError, check_tolerance, parse_heads, plan_recipe
from tablet_workcell.devices.errors import DeviceDisconnectedError, DeviceError, DeviceStoppedError
from tablet_workcell.devices.health import DeviceHealth
from tablet_workcell.errors import ConfigError
from tablet_workcell.ros.device_node import DeviceNode
from tablet_workcell.ros.dose_messages import RecipeRecord, feedback_message
from tablet_workcell.ros.goal_outcome import end_goal
from tablet_workcell.ros.runner import run_node

GoalHandle = ServerGoalHandle[Any, Any, Any]


class DispenserNode(DeviceNode):
    station = "dispenser"

    def __init__(self) -> None:
        super().__init__("dispenser", DISPENSER_SPECS)
        self._heads: dict[str, int] = {}
        self._heads_error = ""
        try:
            self._heads = parse_heads(self.values.get_str_list("heads"))
        except ConfigError as error:
            self._heads_error = str(error)
            self.get_logger().error(self._heads_error)
        self._balance_health = DeviceHealth("balance")
        self._dosing_health = DeviceHealth("dosing")
        self._balance: MtSicsBalance | None = None
        self._bus: DosingBus | None = None
        self._doser: GravimetricDoser | None = None
        self._corrections: dict[str, float] = {}  # learned stop corrections, kept across reconnects
        self._goal: GoalHandle | None = None
        self._mass_pub: Publisher[Float64] | None = None
        self._mass_timer: Timer | None = None
        self._balance_quiet = False  # a failed idle reading is reported once, not every period
        self._sensor_group = MutuallyExclusiveCallbackGroup()
        self._action: ActionServer[Any, Any, Any] = ActionServer(
            self,
            Dispense,
            "~/dispense",
            self._execute,
            callback_group=self.actions_group,
            cancel_callback=self._on_cancel,
        )

    # ------------------------------------------------------------------ instruments
    def _port(self, name: str) -> str:
        port = self.values.get_str(name)
        if not port:
            raise DeviceError(
                name.removesuffix("_port"), f"parameter {name} is empty; set the serial port", "config"
            )
        return port

    def connect(self) -> list[DeviceHealth]:
        if self._heads_error:
            raise DeviceError("dosing", self._heads_error, "config")
        values = self.values
        balance_port, dosing_port = self._port("balance_port"), self._port("dosing_port")
        balance = self._balance = MtSicsBalance(
            balance_port,
            "balance",
            values.get_int("balance_baudrate"),
            values.get_float("balance_timeout_s"),
            stable_timeout_s=values.get_float("balance_stable_timeout_s"),
            log=self.traffic_log("balance"),
        )
        balance.open()
        identity = balance.identify()
        self._balance_health.connected_to(
            balance_port,
            f"{identity.model} SN {identity.serial}, firmware {identity.firmware}, "
            f"capacity {identity.capacity_kg * 1e3:g} g",
        )
        bus = self._bus = DosingBus(
            dosing_port,
            "dosing",
            values.get_int("dosing_baudrate"),
            values.get_float("dosing_timeout_s"),
            log=self.traffic_log("dosing"),
        )
        bus.open()
        bus.stop_all()  # a head left feeding (a crashed node) stops before anything else
        described = []
        for powder, address in self._heads.items():
            head_id = bus.head(address).identify()
            if head_id.powder != powder:
                raise DeviceError(
                    f"dosing[{address:02d}]",
                    f"head {address:02d} reports it holds {head_id.powder!r}, but the heads parameter puts "
                    f"{powder!r} there; put the right hopper on the head or correct the heads parameter",
                    "powder",
                )
            described.append(f"{address:02d} {powder} ({head_id.model} {head_id.serial} {head_id.firmware})")
        self._dosing_health.connected_to(dosing_port, "; ".join(described))
        self._doser = GravimetricDoser(balance, self._settings(0.0))
        self._doser.correction = self._corrections
        self._balance_quiet = False
        return [self._balance_health, self._dosing_health]

    def _close_ports(self) -> None:
        self._doser = None
        bus, balance, self._bus, self._balance = self._bus, self._balance, None, None
        for instrument in (bus, balance):
            if instrument is not None:
                instrument.close()
        self._balance_health.disconnected()
        self._dosing_health.disconnected()

    def disconnect(self) -> None:
        self._close_ports()
        self.health = []

    def halt(self) -> None:
        bus, doser, balance = self._bus, self._doser, self._balance
        if bus is None or not bus.transport.is_open:  # a lost port has nothing left to stop
            bus = doser = None
        stops = [bus.stop_all] if bus is not None else []  # first: one broadcast frame stops every head
        stops += [doser.stop] if doser is not None else []
        stops += [balance.stop] if balance is not None else []
        for stop in stops:
            try:
                stop()
            except DeviceError as error:
                self.get_logger().warning(f"halt: {error}")

    def _health_of(self, error: DeviceError) -> DeviceHealth:
        return self._balance_health if error.device.startswith("balance") else self._dosing_health

    def _settings(self, tolerance_kg: float) -> DoseSettings:
        values = self.values
        settings = DoseSettings(
            time_scale=values.get_float("time_scale"),
            abs_tolerance_kg=values.get_float("default_tolerance_kg"),
            rel_tolerance=values.get_float("default_rel_tolerance"),
            timeout_s=values.get_float("dose_timeout_s"),
            max_top_ups=values.get_int("max_top_ups"),
            check_hopper=values.get_bool("check_hopper"),
        )
        if tolerance_kg > 0.0:  # the goal's absolute tolerance replaces both defaults
            settings = dataclasses.replace(settings, abs_tolerance_kg=tolerance_kg, rel_tolerance=0.0)
        return settings

    # ------------------------------------------------------------------ lifecycle extras
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        result = super().on_configure(state)
        if result == TransitionCallbackReturn.SUCCESS:
            self._mass_pub = self.create_publisher(Float64, "~/balance_mass", 10)
            self._mass_timer = self.create_timer(  # wall time: the balance is sampled in real seconds
                self.values.get_float("balance_period_s"),
                self._publish_mass,
                callback_group=self._sensor_group,
                clock=Clock(clock_type=ClockType.STEADY_TIME),
            )
        return result

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        timer, publisher, self._mass_timer, self._mass_pub = self._mass_timer, self._mass_pub, None, None
        if timer is not None:
            self.destroy_timer(timer)
        if publisher is not None:
            self.destroy_publisher(publisher)
        return super().on_cleanup(state)

    def _publish_mass(self) -> None:
        """The idle balance reading (a dose publishes its own readings from its feedback)."""
        balance, publisher = self._balance, self._mass_pub
        if balance is None or publisher is None or self._operation or not self._balance_health.connected:
            return
        try:
            reading = balance.read_immediate()
        except DeviceStoppedError:
            return  # a halt cancelled the read
        except DeviceError as error:
            if not self._balance_quiet or isinstance(error, DeviceDisconnectedError):
                self._balance_quiet = True  # reported once; a lost port always (it ends the readings)
                self.record_error(self._balance_health, error)
            return
        self._balance_quiet = False
        self._balance_health.succeeded()
        publisher.publish(Float64(data=reading.mass_kg))

    # ------------------------------------------------------------------ the action
    def _on_cancel(self, goal_handle: Any) -> CancelResponse:
        """Accept, and stop the feeder now if it is this goal's dose (the dose then ends)."""
        if goal_handle is self._goal:
            self.stop_requested.set()
            self.halt()
        return CancelResponse.ACCEPT

    def _finish(self, goal_handle: GoalHandle, record: RecipeRecord, success: bool, message: str) -> Any:
        end_goal(goal_handle, self.get_logger(), success, message, self.estopped.is_set())
        return record.result(success, message, self.get_clock().now().to_msg())

    def _execute(self, goal_handle: GoalHandle) -> Any:
        request = goal_handle.request
        record = RecipeRecord(request.experiment_id)
        refusal = self.refusal()
        if refusal:
            return self._finish(goal_handle, record, False, refusal)
        try:
            check_tolerance(request.tolerance_kg)
            record.plan = plan_recipe(
                [(t.name, t.target_mass_kg) for t in request.targets],
                self._heads,
                self.values.get_float("max_recipe_mass_kg"),
            )
        except RecipeError as error:
            return self._finish(goal_handle, record, False, str(error))
        with contextlib.ExitStack() as stack:
            try:
                stop = stack.enter_context(self.operation("dispensing"))
            except DeviceError as busy:  # another goal took the station since refusal() said free
                return self._finish(goal_handle, record, False, str(busy))
            self._goal = goal_handle
            try:
                success, message = self._dose_recipe(goal_handle, record, stop)
            except Exception as error:  # a bug must not leave a head feeding
                self.halt()
                success, message = False, f"internal error, feeding stopped: {error!r}"
            finally:
                self._goal = None
            return self._finish(goal_handle, record, success, message)
        raise AssertionError("unreachable")  # ExitStack does not swallow exceptions

    def _dose_recipe(
        self, goal_handle: GoalHandle, record: RecipeRecord, stop: threading.Event
    ) -> tuple[bool, str]:
        """Dose the plan in order; (success, message). The first failure ends the recipe."""
        try:
            self.reconnect_if_lost()
        except DeviceError as error:
            return False, f"the dispensing station is not reachable: {error}"
        doser = self._doser
        assert doser is not None  # connect() made it
        doser.settings = self._settings(goal_handle.request.tolerance_kg)
        bus = self._bus
        assert bus is not None

        def progress(update: DoseProgress) -> None:
            record.note(update)
            goal_handle.publish_feedback(feedback_message(record.index, update))
            publisher = self._mass_pub
            if publisher is not None:
                publisher.publish(Float64(data=update.reading_kg))

        for index, target in enumerate(record.plan):
            record.start(index)
            try:
                dosed = doser.dose(bus.head(target.address), target.target_kg, target.name, progress, stop)
            except DoseOutOfToleranceError as error:  # the powder is in the die: report what landed
                record.add(target, error.result.dosed_kg, error.result.duration_s)
                return False, record.failed_text(str(error))
            except DeviceStoppedError as error:
                record.add_partial(target)
                if stop.is_set():
                    return False, f"{self._stop_reason(goal_handle)}: feeding stopped; {error}"
                self.record_error(self._health_of(error), error)  # no one asked: a failure like any other
                return False, record.failed_text(str(error))
            except DeviceError as error:
                self.record_error(self._health_of(error), error)
                record.add_partial(target)
                return False, record.failed_text(str(error))
            self._dosing_health.succeeded()
            record.add(target, dosed.dosed_kg, dosed.duration_s)
        return True, record.summary()

    def _stop_reason(self, goal_handle: GoalHandle) -> str:
        if self.estopped.is_set():
            return f"e-stop engaged ({self.estop_reason})"
        if goal_handle.is_cancel_requested:
            return "cancelled on request"
        return f"{self.get_name()} was deactivated"


def main() -> int:
    return run_node(DispenserNode, threads=4)


if __name__ == "__main__":
    raise SystemExit(main())
