"""Whole-cell status from per-station reports and the e-stop, without ROS.

Stations publish their own status; a station that stops reporting is shown OFFLINE
after ``stale_after_s`` rather than keeping its last (possibly "idle") state forever,
and a station that the configuration expects but never reported is OFFLINE from the
start, so the operator sees a missing instrument instead of a short list.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import IntEnum

from tablet_workcell.parameters import ParamSpec

CELL_STATUS_PARAMETERS = (
    ParamSpec("publish_period_s", "float", 0.5, "period of /workcell/status [s]", minimum=0.02, maximum=60.0),
    ParamSpec(
        "stale_after_s",
        "float",
        3.0,
        "a station silent for longer than this is shown OFFLINE [s]",
        minimum=0.1,
        maximum=600.0,
    ),
    ParamSpec(
        "expected_stations",
        "str_array",
        [],
        "stations the cell should have; those never heard from are shown OFFLINE",
    ),
)


class StationState(IntEnum):
    """Mirrors tablet_workcell/msg/StationStatus STATE_* constants."""

    OFFLINE = 0
    UNCONFIGURED = 1
    IDLE = 2
    BUSY = 3
    FAULT = 4
    ESTOPPED = 5


class CellMode(IntEnum):
    """Mirrors tablet_workcell/msg/CellStatus MODE_* constants."""

    IDLE = 0
    RUNNING = 1
    PAUSED = 2
    ESTOPPED = 3
    FAULT = 4


@dataclass(frozen=True)
class StationReport:
    station: str
    state: StationState
    simulated: bool = False
    operation: str = ""
    message: str = ""
    received_s: float = 0.0  # receiver's monotonic clock [s]


@dataclass(frozen=True)
class CellSnapshot:
    mode: CellMode
    estop_active: bool
    estop_reason: str
    stations: tuple[StationReport, ...]


class CellStatusAggregator:
    """Folds station reports and the e-stop into one cell status."""

    def __init__(self, stale_after_s: float, expected_stations: Sequence[str] = ()) -> None:
        self._stale_after_s = stale_after_s
        self._stations: dict[str, StationReport] = {
            name: StationReport(name, StationState.OFFLINE, message="not heard from yet")
            for name in expected_stations
        }
        self._never_heard = set(expected_stations)
        self._estop_active = False
        self._estop_reason = ""

    def update_station(self, report: StationReport) -> None:
        self._stations[report.station] = report
        self._never_heard.discard(report.station)

    def update_estop(self, active: bool, reason: str) -> None:
        self._estop_active = active
        self._estop_reason = reason if active else ""

    def snapshot(self, now_s: float) -> CellSnapshot:
        stations = []
        for name in sorted(self._stations):
            report = self._stations[name]
            silent_for = now_s - report.received_s
            if name not in self._never_heard and silent_for > self._stale_after_s:
                report = replace(
                    report, state=StationState.OFFLINE, message=f"no status for {silent_for:.1f} s"
                )
            stations.append(report)
        return CellSnapshot(self._mode(stations), self._estop_active, self._estop_reason, tuple(stations))

    def _mode(self, stations: Sequence[StationReport]) -> CellMode:
        states = {report.state for report in stations}
        if self._estop_active:
            return CellMode.ESTOPPED
        if StationState.FAULT in states:
            return CellMode.FAULT
        if StationState.BUSY in states:
            return CellMode.RUNNING
        return CellMode.IDLE
