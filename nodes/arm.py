"""arm: the robot arm (Marlin G-code) as a lifecycle node; moves the die and tablets.

* ``/arm/transfer`` (tablet_workcell/action/ArmTransfer): pick at ``from_station``, carry,
  place at ``to_station`` (or, with ``from_station`` empty and payload NONE, move the empty
  tool to ``to_station``). Feedback: the tool pose, the phase (homing, approach, grasp,
  transfer, release, retract, move) and the progress. The first transfer after connecting
  homes the arm. Refused goals are accepted and aborted at once with the reason.
* Press-zone interlock: before a transfer whose path enters the press zone (and before
  homing), the node asks ``/safety/zone_access`` for the zone as station ``arm``; a
  refusal aborts the goal before the arm moves, naming the holder. The zone is released
  once the tool has left it (tablet_workcell.devices.arm.transfer).
* Cancel, e-stop (``/safety/estop``) and deactivate send ``M410`` at once (driver stop()).
* ``/arm/joint_states`` (sensor_msgs/JointState: arm_x, arm_y, arm_z in m, arm_suction
  1/0), ``/arm/tool_pose`` (geometry_msgs/PoseStamped) at ``joint_state_rate_hz`` while
  active; ``/arm/markers`` (visualization_msgs/MarkerArray, latched) whenever the picture
  changes. Poses and markers are in the fixed frame ``frame_id`` (``workcell``).
* TF (tf2_msgs/TFMessage): ``workcell -> arm_base`` on ``/tf_static`` once configured
  (transient local, as tf2's static broadcaster), ``arm_base -> arm_tool`` on ``/tf`` at
  ``joint_state_rate_hz`` while active. Frame tree: docs/devices/arm_node.md.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from diagnostic_msgs.msg import DiagnosticStatus
from rclpy.action import ActionServer, CancelResponse
from rclpy.action.server import ServerGoalHandle
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.clock import Clock, ClockType
from rclpy.lifecycle import LifecycleState, TransitionCallbackReturn
from rclpy.node import Node
from rclpy.publisher import Publisher
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.timer import Timer
from tf2_msgs.msg import TFMessage

from tablet_workcell.action import ArmTransfer
from tablet_workcell.bringup.paths import share_directory
from tablet_workcell.devices.arm.driver import ArmDriver
from tablet_workcell.devices.arm.layout import CellLayout, Vec3, load_layout
from tablet_workcell.devices.arm.node_parameters import ARM_NODE_SPECS
from tablet_workcell.devices.arm.transfer import TransferRunner, ZoneRefusedError
from tablet_workcell.devices.arm.transfer_plan import TransferRequest, validate_request
from tablet_workcell.devices.errors import DeviceError, DeviceStoppedError
from tablet_workcell.devices.health import DeviceHealth
from tablet_workcell.errors import ConfigError
from tablet_workcell.ros.arm_view import ArmView, GoalObserver
from tablet_workcell.ros.device_node import DeviceNode
from tablet_workcell.ros.markers import transform
from tablet_workcell.ros.qos import LATCHED
from tablet_workcell.ros.runner import run_node
from tablet_workcell.ros.zone_access import ZoneHold
from tablet_workcell.ros.zone_access import ZoneRefusedError as ZoneNotGrantedError

TRANSFER_ACTION = "~/transfer"
ZONES_TOPIC = "/safety/zones"  # the safety node's latched zone holders
TF_TOPIC, TF_STATIC_TOPIC = "/tf", "/tf_static"
TOOL_FRAME = "arm_tool"  # the suction cup's tip; the base frame is the layout's (arm_base)
# tf2_ros's broadcaster profiles: DynamicBroadcasterQoS (reliable, volatile, depth 100) for
# /tf; StaticBroadcasterQoS (reliable, transient local, depth 1) for /tf_static, which is
# LATCHED, so a late RViz still gets the static transform.
TF_QOS = QoSProfile(
    depth=100,
    history=HistoryPolicy.KEEP_LAST,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)


class ArmFrames:
    """The arm's TF: ``world -> base`` once on /tf_static, ``base -> arm_tool`` on /tf per tick."""

    def __init__(self, node: Node, world_frame: str, base_frame: str) -> None:
        self._node = node
        self.base_frame = base_frame
        self._static: Publisher[Any] = node.create_publisher(TFMessage, TF_STATIC_TOPIC, LATCHED)
        self._dynamic: Publisher[Any] = node.create_publisher(TFMessage, TF_TOPIC, TF_QOS)
        if world_frame != base_frame:
            # The arm is bolted at the cell's origin (the layout gives no mounting pose): identity.
            stamp = node.get_clock().now().to_msg()
            mount = transform(world_frame, base_frame, (0.0, 0.0, 0.0), stamp)
            self._static.publish(TFMessage(transforms=[mount]))

    def tool_at(self, position_m: Vec3) -> None:
        """The tool in the base frame: layout coordinates are base-frame coordinates."""
        stamp = self._node.get_clock().now().to_msg()
        self._dynamic.publish(
            TFMessage(transforms=[transform(self.base_frame, TOOL_FRAME, position_m, stamp)])
        )

    def destroy(self) -> None:
        for publisher in (self._static, self._dynamic):
            self._node.destroy_publisher(publisher)


class PressZone:
    """The transfer runner's zone guard, over the safety node's service; remembers the hold."""

    def __init__(self, node: ArmNode, hold: ZoneHold) -> None:
        self._node = node
        self._hold = hold
        self._held = False

    @property
    def held(self) -> bool:
        return self._held

    def acquire(self, why: str) -> None:
        try:
            self._hold.acquire()
        except ZoneNotGrantedError as error:
            if error.holder:
                raise ZoneRefusedError(
                    "arm", f"{why}, but the press zone is held by {error.holder}; wait until it is released."
                ) from None
            raise ZoneRefusedError("arm", f"{why}, but the press zone was not granted: {error}.") from None
        self._held = True
        self._node.zone_holder_changed("arm")
        self._node.get_logger().info(f"holding the press zone ({why})")

    def release(self) -> None:
        self._hold.release()  # logs a failure; the safety node's /safety/zones shows the truth
        self._held = False
        self._node.zone_holder_changed("")
        self._node.get_logger().info("press zone released: the tool has left it")


class ArmNode(DeviceNode):
    station = "arm"

    def __init__(self) -> None:
        super().__init__("arm", ARM_NODE_SPECS)
        self.frame_id = self.values.get_str("frame_id")
        self._period_s = 1.0 / self.values.get_float("joint_state_rate_hz")
        self._driver: ArmDriver | None = None
        self._driver_lock = threading.Lock()  # one user of the serial line at a time (stop() excepted)
        self._arm_health = DeviceHealth("arm")
        self._layout: CellLayout | None = None
        self._view: ArmView | None = None  # while configured
        self._frames: ArmFrames | None = None  # while configured
        self._zone_holder = ""  # who holds the press zone, as last heard
        self._homed = False
        self._last_poll = 0.0
        self._current_goal: ServerGoalHandle | None = None
        self._timer: Timer | None = None
        self._io_group = MutuallyExclusiveCallbackGroup()
        zone_group = MutuallyExclusiveCallbackGroup()
        self._zone: PressZone | None = None
        if self.values.get_bool("require_zone"):
            timeout_s = self.values.get_float("zone_timeout_s")
            self._zone = PressZone(self, ZoneHold(self, "arm", "press", zone_group, timeout_s))
        else:
            self.get_logger().warning(
                "require_zone is false: the press-zone interlock is OFF (bench use only)"
            )
        self.create_subscription(
            DiagnosticStatus, ZONES_TOPIC, self._on_zones, LATCHED, callback_group=zone_group
        )
        self._action = ActionServer(
            self,
            ArmTransfer,
            TRANSFER_ACTION,
            execute_callback=self._execute,
            cancel_callback=self._on_cancel,
            callback_group=self.actions_group,
        )

    # ------------------------------------------------------------------ lifecycle
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self._layout = load_layout(self._layout_path())
        except ConfigError as error:
            self._fault = str(error)
            self.get_logger().error(f"configure failed: {error}")
            return TransitionCallbackReturn.FAILURE
        result = super().on_configure(state)
        if result == TransitionCallbackReturn.SUCCESS:
            self._view = ArmView(self, self._layout, self.frame_id, self._zone_holder)
            self._frames = ArmFrames(self, self.frame_id, self._layout.frame)
            # Wall-clock rate: the serial line and RViz run in real time, also when /clock runs faster.
            self._timer = self.create_timer(
                self._period_s,
                self._tick,
                callback_group=self._io_group,
                clock=Clock(clock_type=ClockType.STEADY_TIME),
            )
            self._view.publish(active=False)
        return result

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        result = super().on_cleanup(state)
        if self._timer is not None:
            self.destroy_timer(self._timer)
        if self._view is not None:
            self._view.destroy()
        if self._frames is not None:
            self._frames.destroy()
        self._timer, self._view, self._frames = None, None, None
        return result

    def _layout_path(self) -> Path:
        path = Path(self.values.get_str("layout_path"))
        return path if path.is_absolute() else share_directory() / path

    def connect(self) -> list[DeviceHealth]:
        port = self.values.get_str("port")
        if not port:
            raise DeviceError("arm", "no serial port set; set the parameter port (e.g. /dev/ttyACM0).")
        assert self._layout is not None  # on_configure loads it first
        with self._driver_lock:
            self._driver = ArmDriver(
                port,
                self.values.get_int("baudrate"),
                self.values.get_float("timeout_s"),
                envelope=self._layout.work_envelope,
                log=self.traffic_log("arm"),
            )
            self._driver.open()
            identity = self._driver.identify()
            self._homed = False  # a fresh connection may be a firmware that was reset
        self._arm_health.connected_to(port, f"{identity.model}, {identity.firmware}, {identity.serial}")
        return [self._arm_health]

    def disconnect(self) -> None:
        locked = self._driver_lock.acquire(timeout=2.0)  # a goal unwinding after halt() lets go quickly
        try:
            if self._driver is not None:
                self._driver.close()
            self._driver = None
            self._arm_health.disconnected()
        finally:
            if locked:
                self._driver_lock.release()

    def halt(self) -> None:
        driver = self._driver
        if driver is None:
            return
        try:
            driver.stop()
        except Exception as error:  # the e-stop path must never raise
            self.get_logger().error(f"could not send the quickstop (M410): {error}")

    # ------------------------------------------------------------------ transfer action
    def _on_cancel(self, goal: ServerGoalHandle) -> CancelResponse:
        if goal is self._current_goal:
            self.get_logger().info("transfer cancelled: stopping the arm")
            self.stop_requested.set()
            self.halt()
        return CancelResponse.ACCEPT

    def _execute(self, goal: ServerGoalHandle) -> ArmTransfer.Result:
        request = goal.request
        reason = self.refusal()
        transfer: TransferRequest | None = None
        if not reason:
            assert self._layout is not None
            try:
                transfer = validate_request(
                    self._layout, request.from_station, request.to_station, request.payload
                )
            except ConfigError as error:
                reason = f"refused: {error}"
        if reason or transfer is None:
            return self._end(goal, False, reason or "refused")
        try:
            with self.operation("transfer") as stop:
                self._current_goal = goal
                try:
                    return self._transfer(goal, transfer, stop)
                finally:
                    self._current_goal = None
        except DeviceError as error:  # busy: another goal got in first
            return self._end(goal, False, str(error))

    def _transfer(
        self, goal: ServerGoalHandle, transfer: TransferRequest, stop: threading.Event
    ) -> ArmTransfer.Result:
        assert self._layout is not None
        source = transfer.from_station or "where the tool is"
        self.get_logger().info(f"transfer {transfer.payload.name} from {source} to {transfer.to_station}")
        with self._driver_lock:
            driver, view = self._driver, self._view
            if driver is None or view is None:
                return self._end(goal, False, "the arm is not connected; configure the node.")
            driver.clear_stop()  # a stop sent while idle belongs to no goal (stop is checked below)
            runner = TransferRunner(
                driver,
                self._layout,
                GoalObserver(view, goal, transfer.payload),
                stop,
                zone=self._zone,
                settle_s=self.values.get_float("settle_s"),
                poll_period_s=self._period_s,
                home_timeout_s=self.values.get_float("home_timeout_s"),
            )
            try:
                self._reconnect_if_needed(driver)
                outcome = runner.run(transfer, home_first=not self._homed)
            except DeviceError as error:
                self._homed = self._homed or runner.homed
                return self._failed(goal, error, runner.position_m)
            finally:
                self._homed = self._homed or runner.homed
                view.tool_moved(runner.position_m)
        self._arm_health.succeeded()
        what = (
            f"{transfer.payload.name.lower()} moved from {transfer.from_station} to {transfer.to_station}"
            if transfer.carries
            else f"tool moved to {transfer.to_station}"
        )
        return self._end(
            goal, True, f"{what}; the tool is at {_fmt(outcome.position_m)} m.", outcome.position_m
        )

    def _reconnect_if_needed(self, driver: ArmDriver) -> None:
        if self._arm_health.connected:
            return
        self.get_logger().warning("arm: reconnecting")
        driver.reconnect()
        self._homed = False
        self._arm_health.connected_to(self._arm_health.port, self._arm_health.identity)

    def _failed(
        self, goal: ServerGoalHandle, error: DeviceError, position_m: Vec3 | None
    ) -> ArmTransfer.Result:
        where = f" The tool is at {_fmt(position_m)} m." if position_m is not None else ""
        if isinstance(error, DeviceStoppedError) and goal.is_cancel_requested:
            return self._end(goal, False, f"cancelled: the arm stopped.{where}", position_m, cancelled=True)
        if self.estopped.is_set():
            message = f"e-stop engaged ({self.estop_reason}): the arm stopped.{where}"
        elif self.lifecycle_state != "active":
            message = f"the arm node was {self.lifecycle_state} during the transfer: the arm stopped.{where}"
        elif isinstance(error, ZoneRefusedError):
            message = f"refused before moving: {error}"
        else:
            self.record_error(self._arm_health, error)
            message = f"transfer failed: {error}{where}"
        return self._end(goal, False, message, position_m)

    def _end(
        self,
        goal: ServerGoalHandle,
        success: bool,
        message: str,
        position_m: Vec3 | None = None,
        cancelled: bool = False,
    ) -> ArmTransfer.Result:
        result = ArmTransfer.Result(success=success, message=message)
        view = self._view
        position = position_m or (view.position_m if view is not None else None)
        if position is not None and view is not None:
            result.final_pose = view.pose(position)
        if success:
            goal.succeed()
            self.get_logger().info(result.message)
        elif cancelled:
            goal.canceled()
            self.get_logger().info(result.message)
        else:
            goal.abort()
            self.get_logger().warning(result.message)
        return result

    # ------------------------------------------------------------------ zone holder and publishing
    def zone_holder_changed(self, holder: str) -> None:
        self._zone_holder = holder
        view = self._view
        if view is not None:
            view.zone_holder_changed(holder)

    def _on_zones(self, message: DiagnosticStatus) -> None:
        holder = next((item.value for item in message.values if item.key == "press"), None)
        if holder is not None:
            self.zone_holder_changed(holder)

    def _tick(self) -> None:
        active = self.lifecycle_state == "active"
        if active:
            self._poll_when_idle()
        view, frames = self._view, self._frames
        if view is not None:
            view.publish(active)
            position = view.position_m
            if active and frames is not None and position is not None:
                frames.tool_at(position)

    def _poll_when_idle(self) -> None:
        """Read the position now and then while no transfer runs (a transfer polls it itself)."""
        now = time.monotonic()
        if (
            now - self._last_poll < self.values.get_float("idle_poll_period_s")
            or not self._arm_health.connected
        ):
            return
        if not self._driver_lock.acquire(blocking=False):
            return
        try:
            self._last_poll = now
            if self._driver is not None and self._view is not None:
                self._view.tool_moved(self._driver.position().as_tuple)
        except DeviceError as error:
            self.record_error(self._arm_health, error)
        finally:
            self._driver_lock.release()


def _fmt(point: Vec3) -> str:
    return "(" + ", ".join(f"{v:.3f}" for v in point) + ")"


def main() -> int:
    return run_node(ArmNode, threads=4)


if __name__ == "__main__":
    raise SystemExit(main())
