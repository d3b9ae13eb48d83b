"""cell_status: one /workcell/status (tablet_workcell/msg/CellStatus) for the whole cell.

Folds every station's ``/workcell/station_status`` and the latched ``/safety/estop``
into the cell's mode (see tablet_workcell.cell_status for the rules).
"""

from __future__ import annotations

import time

from rclpy.node import Node

from tablet_workcell.cell_status import (
    CELL_STATUS_PARAMETERS,
    CellStatusAggregator,
    StationReport,
    StationState,
)
from tablet_workcell.msg import CellStatus, EstopState, StationStatus
from tablet_workcell.ros.parameters import declare_parameters
from tablet_workcell.ros.qos import LATCHED, STATUS
from tablet_workcell.ros.runner import run_node

CELL_STATUS_TOPIC = "/workcell/status"


class CellStatusNode(Node):
    def __init__(self) -> None:
        super().__init__("cell_status")
        values = declare_parameters(self, CELL_STATUS_PARAMETERS)
        self._aggregator = CellStatusAggregator(
            values.get_float("stale_after_s"), values.get_str_list("expected_stations")
        )
        self._publisher = self.create_publisher(CellStatus, CELL_STATUS_TOPIC, STATUS)
        self.create_subscription(StationStatus, "/workcell/station_status", self._on_station, STATUS)
        self.create_subscription(EstopState, "/safety/estop", self._on_estop, LATCHED)
        self.create_timer(values.get_float("publish_period_s"), self._publish)

    def _on_station(self, message: StationStatus) -> None:
        try:
            state = StationState(message.state)
        except ValueError:
            self.get_logger().warning(f"station {message.station!r} sent unknown state {message.state}")
            state = StationState.FAULT
        self._aggregator.update_station(
            StationReport(
                message.station,
                state,
                message.simulated,
                message.current_operation,
                message.message,
                received_s=time.monotonic(),
            )
        )

    def _on_estop(self, message: EstopState) -> None:
        self._aggregator.update_estop(message.active, message.reason)
        # Publish at once: operators and the orchestrator must not wait a period for an e-stop.
        self._publish()

    def _publish(self) -> None:
        snapshot = self._aggregator.snapshot(time.monotonic())
        message = CellStatus(
            mode=int(snapshot.mode), estop_active=snapshot.estop_active, estop_reason=snapshot.estop_reason
        )
        message.header.stamp = self.get_clock().now().to_msg()
        for report in snapshot.stations:
            station = StationStatus(
                station=report.station,
                state=int(report.state),
                simulated=report.simulated,
                current_operation=report.operation,
                message=report.message,
            )
            message.stations.append(station)
        self._publisher.publish(message)


def main() -> int:
    return run_node(CellStatusNode)


if __name__ == "__main__":
    raise SystemExit(main())
