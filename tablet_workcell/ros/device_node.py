"""Lifecycle base of the instrument nodes (arm, dispenser, press, disintegration pump).

The lifecycle maps onto an instrument's life:

* configure: open the port(s) and identify the instrument (retrying until the port
  appears, up to ``connect_timeout_s``: a simulator or USB adapter may come up later);
* activate: motion allowed; actions accept goals;
* deactivate: stop every motion now; goals are refused;
* cleanup / shutdown / error: stop and release the port.

Shared behaviour: the latched e-stop (``/safety/estop``) stops every motion the moment it
arrives (``halt()`` is called from the subscription, on its own callback group, while an
action may be running) and refuses goals until an operator resets it; the station status
(``/workcell/station_status``) is the heartbeat the safety watchdog watches; diagnostics
(``/diagnostics``, diagnostic_msgs) carry the connection health of each instrument.
Subclasses implement ``connect``, ``disconnect`` and ``halt``.
"""

from __future__ import annotations

import abc
import contextlib
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn

from tablet_workcell.devices.errors import DeviceDisconnectedError, DeviceError
from tablet_workcell.devices.health import DeviceHealth
from tablet_workcell.devices.node_parameters import DEVICE_NODE_PARAMETERS
from tablet_workcell.devices.transport import TrafficLog
from tablet_workcell.msg import EstopState, StationStatus
from tablet_workcell.parameters import ParamSpec
from tablet_workcell.ros.parameters import ParameterValues, declare_parameters
from tablet_workcell.ros.qos import LATCHED, STATUS

ESTOP_TOPIC = "/safety/estop"
STATION_STATUS_TOPIC = "/workcell/station_status"
DIAGNOSTICS_TOPIC = "/diagnostics"
RETRY_S = 0.5


class DeviceNode(LifecycleNode, abc.ABC):
    """A lifecycle node that owns one or more instruments."""

    station = "device"

    def __init__(self, node_name: str, specs: Sequence[ParamSpec]) -> None:
        super().__init__(node_name)
        self.values: ParameterValues = declare_parameters(self, (*DEVICE_NODE_PARAMETERS, *specs))
        self.simulated = self.values.get_bool("simulated")
        self.actions_group = ReentrantCallbackGroup()
        self._safety_group = MutuallyExclusiveCallbackGroup()  # e-stop never waits for an action
        self.health: list[DeviceHealth] = []
        self.traffic: dict[str, TrafficLog] = {}
        self.estopped = threading.Event()
        self.estop_reason = ""
        self.stop_requested = threading.Event()  # set by e-stop, deactivate, cancel
        self._operation = ""
        self._operation_lock = threading.Lock()
        self._fault = ""
        self._closing = threading.Event()  # the process is shutting down: stop waiting for ports
        self._status_pub = self.create_publisher(StationStatus, STATION_STATUS_TOPIC, STATUS)
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, DIAGNOSTICS_TOPIC, 10)
        self.create_subscription(
            EstopState, ESTOP_TOPIC, self._on_estop, LATCHED, callback_group=self._safety_group
        )
        self.create_timer(
            self.values.get_float("status_period_s"), self._publish_status, callback_group=self._safety_group
        )
        if self.values.get_bool("autostart"):
            self._autostart_timer = self.create_timer(0.0, self._autostart)

    # ------------------------------------------------------------------ subclass hooks
    @abc.abstractmethod
    def connect(self) -> list[DeviceHealth]:
        """Open the ports, identify the instruments; raise DeviceError when one does not answer."""

    @abc.abstractmethod
    def disconnect(self) -> None:
        """Release the ports (after ``halt``); never raises."""

    @abc.abstractmethod
    def halt(self) -> None:
        """Stop every motion now; thread-safe, fast, never raises (the e-stop calls it)."""

    # ------------------------------------------------------------------ lifecycle
    def _autostart(self) -> None:
        self._autostart_timer.cancel()
        if self.trigger_configure() == TransitionCallbackReturn.SUCCESS:
            self.trigger_activate()

    @property
    def lifecycle_state(self) -> str:
        return str(self._state_machine.current_state[1])

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        deadline = time.monotonic() + self.values.get_float("connect_timeout_s")
        while True:
            try:
                self.health = self.connect()
                self._fault = ""
                for health in self.health:
                    self.get_logger().info(f"{health.device}: {health.identity} on {health.port}")
                return TransitionCallbackReturn.SUCCESS
            except DeviceError as error:
                self._fault = str(error)
                self.disconnect()
                if not isinstance(error, DeviceDisconnectedError) or time.monotonic() >= deadline:
                    self.get_logger().error(f"configure failed: {error}")
                    return TransitionCallbackReturn.FAILURE
            if self._closing.wait(RETRY_S):  # waiting for a port to appear, unless shutting down
                self.get_logger().info("configure given up: shutting down")
                return TransitionCallbackReturn.FAILURE

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.stop_requested.clear()
        self.get_logger().info(
            "active: motion allowed" + (" (e-stop engaged)" if self.estopped.is_set() else "")
        )
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.stop_requested.set()
        self.halt()
        return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def _release(self) -> None:
        """Stop motion, release the ports, keep the traffic log (cleanup, shutdown, error, exit)."""
        self.stop_requested.set()
        self.halt()
        self.disconnect()
        self._save_traffic()

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        return self.on_cleanup(state)

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.get_logger().error("error processing: stopping and releasing the instruments")
        return self.on_cleanup(state)

    def sign_off(self) -> None:
        """Shutting down on purpose (Ctrl-C, the launcher): stop motion and say so.

        The OFFLINE status tells the safety watchdog this station left on purpose, so a
        deliberate shutdown of the cell does not trip the e-stop; a crash sends nothing.
        ``run_node`` calls this from the signal handler while the context is still valid.
        """
        self._closing.set()
        self.stop_requested.set()
        self.halt()
        status = StationStatus(
            station=self.station, state=StationStatus.STATE_OFFLINE, simulated=self.simulated
        )
        status.message = "shut down"
        status.header.stamp = self.get_clock().now().to_msg()
        self._status_pub.publish(status)

    def destroy_node(self) -> None:
        """Stop motion and release the ports before the node goes."""
        self._closing.set()
        self._release()
        super().destroy_node()

    # ------------------------------------------------------------------ helpers for subclasses
    def traffic_log(self, device: str) -> TrafficLog | None:
        """A traffic log for ``device`` when ``traffic_log_dir`` is set."""
        if not self.values.get_str("traffic_log_dir"):
            return None
        return self.traffic.setdefault(device, TrafficLog())

    def _save_traffic(self) -> None:
        folder = self.values.get_str("traffic_log_dir")
        if not folder or not self.traffic:
            return
        Path(folder).mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%dT%H%M%S")
        for device, log in self.traffic.items():
            log.save(Path(folder) / f"{self.get_name()}_{device}_{stamp}.jsonl")

    def refusal(self) -> str:
        """Why a new motion goal must be refused now; empty when it may run."""
        if self.estopped.is_set():
            return f"e-stop engaged ({self.estop_reason}); an operator must reset it first"
        if self.lifecycle_state != "active":
            return f"{self.get_name()} is {self.lifecycle_state}, not active; activate it first"
        if self._operation:
            return f"{self.get_name()} is busy with {self._operation}"
        return ""

    @contextlib.contextmanager
    def operation(self, name: str) -> Iterator[threading.Event]:
        """Mark the station busy for one operation; yields the stop event to pass to drivers."""
        with self._operation_lock:
            if self._operation:
                raise DeviceError(self.get_name(), f"busy with {self._operation}, cannot start {name}")
            self._operation = name
        self.stop_requested.clear()
        if self.estopped.is_set():
            self.stop_requested.set()
        try:
            yield self.stop_requested
        finally:
            with self._operation_lock:
                self._operation = ""

    def reconnect_if_lost(self) -> None:
        """Before an operation: when an instrument's port was lost, release every port and
        connect again. Raises the DeviceError when that fails (recorded in diagnostics)."""
        if self.health and all(health.connected for health in self.health):
            return
        previous = list(self.health)
        self.get_logger().warning("an instrument is not connected; reconnecting before the operation")
        self.disconnect()
        try:
            self.health = self.connect()
        except DeviceError as error:
            self.disconnect()
            self.health = previous  # keep reporting every instrument in diagnostics
            named = [h for h in previous if error.device and error.device.startswith(h.device)]
            if named or previous:
                self.record_error((named or previous)[0], error)
            raise

    def record_error(self, health: DeviceHealth, error: DeviceError) -> None:
        health.failed(error)
        self._fault = str(error)
        self.get_logger().error(str(error))

    # ------------------------------------------------------------------ safety and status
    def _on_estop(self, message: EstopState) -> None:
        if message.active:
            first = not self.estopped.is_set()
            self.estopped.set()
            self.estop_reason = message.reason
            self.stop_requested.set()
            self.halt()
            if first:
                self.get_logger().warning(f"e-stop: all motion stopped ({message.reason})")
        elif self.estopped.is_set():
            self.estopped.clear()
            self.estop_reason = ""
            self.get_logger().info(f"e-stop reset by {message.source}")

    def _state_code(self) -> int:
        if self.estopped.is_set():
            return StationStatus.STATE_ESTOPPED
        state = self.lifecycle_state
        if state not in ("active", "inactive"):  # unconfigured, configuring, cleaning up, finalized
            return StationStatus.STATE_FAULT if self._fault else StationStatus.STATE_UNCONFIGURED
        if any(not h.connected for h in self.health):
            return StationStatus.STATE_FAULT
        return StationStatus.STATE_BUSY if self._operation else StationStatus.STATE_IDLE

    def _publish_status(self) -> None:
        if self._closing.is_set():
            return  # signed off: a late heartbeat would make the watchdog wait for more
        now = self.get_clock().now().to_msg()
        status = StationStatus(
            station=self.station,
            state=self._state_code(),
            simulated=self.simulated,
            current_operation=self._operation,
            message=self._fault or self.lifecycle_state,
        )
        status.header.stamp = now
        self._status_pub.publish(status)
        array = DiagnosticArray()
        array.header.stamp = now
        for health in self.health:
            array.status.append(
                DiagnosticStatus(
                    level=bytes([health.level()]),
                    name=f"{self.get_name()}: {health.device}",
                    message=health.summary(),
                    hardware_id=health.identity,
                    values=[KeyValue(key=k, value=v) for k, v in health.values().items()],
                )
            )
        if not self.health:
            array.status.append(
                DiagnosticStatus(
                    level=DiagnosticStatus.ERROR if self._fault else DiagnosticStatus.STALE,
                    name=self.get_name(),
                    message=self._fault or f"{self.lifecycle_state}: no instrument connected",
                )
            )
        self._diagnostics_pub.publish(array)
