"""safety: the latched emergency stop of the cell.

* ``/safety/estop`` (tablet_workcell/msg/EstopState, transient-local): the latch state;
  nodes that start late still receive it. Motion-capable nodes stop on ``active``.
* ``/safety/set_estop`` (tablet_workcell/srv/EmergencyStop): engage (always allowed)
  or reset (needs an operator id).
* ``/safety/zone_access`` (tablet_workcell/srv/ZoneAccess): exclusive holds on shared zones
  (the press zone: the press holds it while it moves, the arm while its tool is inside),
  so the press never closes on the arm and the arm never reaches into a moving press.
* ``/safety/zones`` (diagnostic_msgs/DiagnosticStatus, transient-local): who holds each
  zone (``values``: key = zone, value = holder, empty when free), on every change; the
  arm colours the press zone in RViz from it.
* Watchdog: every watched station's ``/workcell/station_status`` is its heartbeat; a
  station heard once and then silent for ``heartbeat_timeout_s`` engages the e-stop
  (it may be moving with nobody in control).
* ``/workcell/station_status``: this node's own health for the cell status.
"""

from __future__ import annotations

import time

from diagnostic_msgs.msg import DiagnosticStatus, KeyValue
from rclpy.clock import Clock, ClockType
from rclpy.node import Node

from tablet_workcell.interlocks import INTERLOCK_PARAMETERS, HeartbeatWatchdog, ZoneArbiter, ZoneRequestError
from tablet_workcell.msg import EstopState as EstopStateMsg
from tablet_workcell.msg import StationStatus
from tablet_workcell.ros.parameters import declare_parameters
from tablet_workcell.ros.qos import LATCHED, STATUS
from tablet_workcell.ros.runner import run_node
from tablet_workcell.safety import SAFETY_PARAMETERS, EstopLatch, EstopResetRefusedError, EstopState
from tablet_workcell.srv import EmergencyStop, ZoneAccess

ESTOP_TOPIC = "/safety/estop"
ESTOP_SERVICE = "/safety/set_estop"
ZONE_SERVICE = "/safety/zone_access"
ZONES_TOPIC = "/safety/zones"
STATION_STATUS_TOPIC = "/workcell/station_status"


class SafetyNode(Node):
    def __init__(self) -> None:
        super().__init__("safety")
        values = declare_parameters(self, (*SAFETY_PARAMETERS, *INTERLOCK_PARAMETERS))
        self._zones = ZoneArbiter(values.get_str_list("zones"))
        self._watchdog = HeartbeatWatchdog(
            values.get_str_list("watched_stations"), values.get_float("heartbeat_timeout_s")
        )
        self._latch = EstopLatch(engaged=values.get_bool("engaged_at_start"))
        self._estop_publisher = self.create_publisher(EstopStateMsg, ESTOP_TOPIC, LATCHED)
        self._status_publisher = self.create_publisher(StationStatus, STATION_STATUS_TOPIC, STATUS)
        self._zones_publisher = self.create_publisher(DiagnosticStatus, ZONES_TOPIC, LATCHED)
        self.create_service(EmergencyStop, ESTOP_SERVICE, self._on_set_estop)
        self.create_service(ZoneAccess, ZONE_SERVICE, self._on_zone_access)
        self.create_subscription(StationStatus, STATION_STATUS_TOPIC, self._on_station_status, STATUS)
        self.create_timer(values.get_float("status_period_s"), self._publish_status)
        # A steady-clock timer: the watchdog must run even when simulated time stalls.
        self.create_timer(
            min(0.1, values.get_float("heartbeat_timeout_s") / 4),
            self._check_heartbeats,
            clock=Clock(clock_type=ClockType.STEADY_TIME),
        )
        self._publish_estop(self._latch.state)
        self._publish_zones()
        self.get_logger().info(f"e-stop {'ENGAGED' if self._latch.state.active else 'clear'} at start-up")

    def _to_message(self, state: EstopState) -> EstopStateMsg:
        message = EstopStateMsg(active=state.active, reason=state.reason, source=state.source)
        message.header.stamp = self.get_clock().now().to_msg()
        return message

    def _publish_estop(self, state: EstopState) -> None:
        self._estop_publisher.publish(self._to_message(state))

    def _on_set_estop(
        self, request: EmergencyStop.Request, response: EmergencyStop.Response
    ) -> EmergencyStop.Response:
        try:
            if request.engage:
                state, changed = self._latch.engage(request.reason, request.operator_id or "unidentified")
                response.message = "e-stop engaged" if changed else "e-stop was already engaged"
                if changed:
                    self.get_logger().error(f"E-STOP ENGAGED by {state.source}: {state.reason}")
            else:
                state, changed = self._latch.reset(request.operator_id)
                response.message = f"e-stop reset by {state.source}" if changed else "e-stop was not engaged"
                if changed:
                    self.get_logger().warning(response.message)
            response.success = True
        except EstopResetRefusedError as error:
            state = self._latch.state
            response.success = False
            response.message = str(error)
            self.get_logger().warning(str(error))
        if response.success:
            self._publish_estop(state)
        response.state = self._to_message(state)
        return response

    def _engage(self, reason: str, source: str) -> None:
        state, changed = self._latch.engage(reason, source)
        if changed:
            self.get_logger().error(f"E-STOP ENGAGED by {source}: {reason}")
            self._publish_estop(state)

    def _on_station_status(self, message: StationStatus) -> None:
        # Wall time, not ROS time: a stalled /clock must not hide a dead station.
        if message.state == StationStatus.STATE_OFFLINE:
            self._watchdog.signed_off(message.station)  # a deliberate shutdown, not a dead station
        else:
            self._watchdog.heard(message.station, time.monotonic())

    def _check_heartbeats(self) -> None:
        for station, silence in self._watchdog.silent(time.monotonic()):
            held = self._zones.held_by(station)
            holding = f", holding the {', '.join(held)} zone" if held else ""
            self._engage(f"watchdog: no heartbeat from {station} for {silence:.1f} s{holding}", "watchdog")

    def _on_zone_access(
        self, request: ZoneAccess.Request, response: ZoneAccess.Response
    ) -> ZoneAccess.Response:
        before = self._zones.holders
        try:
            if request.acquire:
                decision = self._zones.acquire(
                    request.station, request.zone, estopped=self._latch.state.active
                )
            else:
                decision = self._zones.release(request.station, request.zone, request.operator_id)
        except ZoneRequestError as error:
            response.granted, response.message = False, str(error)
            return response
        response.granted, response.holder, response.message = (
            decision.granted,
            decision.holder,
            decision.message,
        )
        if not decision.granted:
            self.get_logger().warning(decision.message)
        if self._zones.holders != before:
            self._publish_zones()
        return response

    def _publish_zones(self) -> None:
        holders = self._zones.holders
        self._zones_publisher.publish(
            DiagnosticStatus(
                level=DiagnosticStatus.OK,
                name="safety: zones",
                message=", ".join(f"{zone}: {holder or 'free'}" for zone, holder in sorted(holders.items())),
                values=[KeyValue(key=zone, value=holder) for zone, holder in sorted(holders.items())],
            )
        )

    def _publish_status(self) -> None:
        status = StationStatus(station="safety", simulated=False)
        status.header.stamp = self.get_clock().now().to_msg()
        active = self._latch.state.active
        status.state = StationStatus.STATE_ESTOPPED if active else StationStatus.STATE_IDLE
        status.message = self._latch.state.reason
        self._status_publisher.publish(status)


def main() -> int:
    return run_node(SafetyNode)


if __name__ == "__main__":
    raise SystemExit(main())
