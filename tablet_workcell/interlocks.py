"""Interlocks between stations and the heartbeat watchdog: the safety node's logic, without ROS.

* :class:`ZoneArbiter`: a shared zone (the press's working volume) is held by one
  station at a time. The press holds it for a compaction or breaking test, the arm for
  as long as its tool is inside; so the press never closes on the arm and the arm never
  reaches into a moving press. A hold does not expire by itself: if its holder dies, the
  watchdog engages the e-stop and an operator releases the zone after checking the cell.
* :class:`HeartbeatWatchdog`: every station publishes its status periodically. A station
  that has been heard and then falls silent for longer than the timeout may be moving
  with nobody in control, so the watchdog asks for the e-stop.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from tablet_workcell.errors import WorkcellError
from tablet_workcell.parameters import ParamSpec

INTERLOCK_PARAMETERS = (
    ParamSpec("zones", "str_array", ["press"], "shared zones held by one station at a time"),
    ParamSpec(
        "watched_stations",
        "str_array",
        ["arm", "dispenser", "press", "syringe_pump", "disintegration"],
        "stations whose heartbeat (station status) the watchdog watches once heard",
    ),
    ParamSpec(
        "heartbeat_timeout_s",
        "float",
        2.0,
        "silence after which a watched station triggers the e-stop [s]",
        minimum=0.1,
        maximum=60.0,
    ),
)


class ZoneRequestError(WorkcellError):
    """A zone request naming an unknown zone or missing its station."""


@dataclass(frozen=True)
class ZoneDecision:
    granted: bool
    holder: str
    message: str


class ZoneArbiter:
    """Exclusive holds on named zones. Not thread-safe: the node serialises requests."""

    def __init__(self, zones: Iterable[str]) -> None:
        self._holders: dict[str, str] = {zone: "" for zone in zones}

    @property
    def holders(self) -> dict[str, str]:
        return dict(self._holders)

    def _check(self, station: str, zone: str) -> None:
        if zone not in self._holders:
            known = ", ".join(sorted(self._holders)) or "none"
            raise ZoneRequestError(f"unknown zone {zone!r}; the configured zones are: {known}.")
        if not station.strip():
            raise ZoneRequestError("a zone request must name the requesting station.")

    def acquire(self, station: str, zone: str, estopped: bool = False) -> ZoneDecision:
        self._check(station, zone)
        holder = self._holders[zone]
        if holder == station:
            return ZoneDecision(True, holder, f"{station} already holds the {zone} zone")
        if holder:
            return ZoneDecision(False, holder, f"{zone} zone is held by {holder}; {station} must wait")
        if estopped:
            return ZoneDecision(False, "", f"e-stop engaged: {station} may not take the {zone} zone")
        self._holders[zone] = station
        return ZoneDecision(True, station, f"{station} holds the {zone} zone")

    def release(self, station: str, zone: str, operator_id: str = "") -> ZoneDecision:
        self._check(station, zone)
        holder = self._holders[zone]
        if not holder:
            return ZoneDecision(True, "", f"{zone} zone was free")
        if holder != station and not operator_id.strip():
            return ZoneDecision(
                False,
                holder,
                f"{zone} zone is held by {holder}; only {holder} or an operator (operator_id) may free it",
            )
        self._holders[zone] = ""
        by = f"operator {operator_id.strip()}" if holder != station else station
        return ZoneDecision(True, "", f"{zone} zone released by {by}")

    def held_by(self, station: str) -> list[str]:
        return [zone for zone, holder in self._holders.items() if holder == station]


class HeartbeatWatchdog:
    """Last heard time per station; reports stations silent past the timeout once each."""

    def __init__(self, stations: Iterable[str], timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._watched = set(stations)
        self._last: dict[str, float] = {}
        self._reported: set[str] = set()

    def heard(self, station: str, now_s: float) -> None:
        if station in self._watched:
            self._last[station] = now_s
            self._reported.discard(station)

    def signed_off(self, station: str) -> None:
        """The station shut down on purpose (it said so): stop watching it until heard again."""
        self._last.pop(station, None)
        self._reported.discard(station)

    def silent(self, now_s: float) -> list[tuple[str, float]]:
        """Newly silent stations with their silence [s] (each reported once until heard again)."""
        found = []
        for station, last in sorted(self._last.items()):
            silence = now_s - last
            if silence > self.timeout_s and station not in self._reported:
                self._reported.add(station)
                found.append((station, silence))
        return found
