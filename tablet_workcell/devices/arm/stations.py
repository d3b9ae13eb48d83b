"""Named station moves and pick-and-place transfers, built on the arm driver and the layout.

Every trip has the same shape: straight up to the safe travel height, across at that
height, straight down onto the station. The safe height is above the press zone (the
layout guarantees it), so only the last leg down to the press station, and the first leg
up from it, can enter the press zone; before any leg that does, ``may_enter_press_zone``
is asked (the safety node's zone arbiter: has the arm been granted the press zone, is
the press still?) and a refusal stops the trip before the arm moves.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from tablet_workcell.devices.arm.driver import ArmDriver
from tablet_workcell.devices.arm.layout import CellLayout, Vec3
from tablet_workcell.devices.errors import DeviceBusyError

LOG = logging.getLogger(__name__)


class StationMover:
    """Moves the arm between the stations of a :class:`CellLayout`."""

    def __init__(
        self,
        arm: ArmDriver,
        layout: CellLayout,
        may_enter_press_zone: Callable[[], bool] | None = None,
        settle_s: float = 0.2,
    ) -> None:
        self.arm = arm
        self.layout = layout
        self.may_enter_press_zone = may_enter_press_zone or (lambda: True)
        self.settle_s = settle_s

    def path_to(self, name: str, start_m: Vec3) -> list[tuple[Vec3, float]]:
        """The legs (target, speed) from ``start_m`` to station ``name``: up, across, down."""
        return path_to_station(self.layout, name, start_m)

    def _follow(self, legs: list[tuple[Vec3, float]], start_m: Vec3, why: str) -> None:
        zone = self.layout.press_zone
        here = start_m
        for target, speed in legs:
            if zone.intersects_segment(here, target) and not self.may_enter_press_zone():
                raise DeviceBusyError(
                    "arm",
                    f"{why}: the path from {_fmt(here)} to {_fmt(target)} m enters the press zone and "
                    "the press zone is not free (the press may move); wait for the zone to be granted.",
                )
            self.arm.move_to(*target, speed)
            here = target

    def move_to_station(self, name: str) -> None:
        """Up to the safe height, across, and down onto station ``name``."""
        start = self.arm.position().as_tuple
        LOG.info("arm: to station %s", name)
        self._follow(self.path_to(name, start), start, f"moving to station {name!r}")

    def lift(self) -> None:
        """Straight up to the safe travel height from wherever the tool is."""
        x, y, z = self.arm.position().as_tuple
        if z < self.layout.safe_travel_height_m - 1e-6:
            target = (x, y, self.layout.safe_travel_height_m)
            self._follow([(target, self.layout.approach_speed_m_per_s)], (x, y, z), "lifting")

    def transfer(self, source: str, destination: str) -> None:
        """Pick at ``source`` (suction on), carry at the safe height, place at ``destination``."""
        self.layout.station(destination)  # an unknown name fails before anything moves
        self.move_to_station(source)
        self.arm.grip(self.settle_s)
        self.move_to_station(destination)
        self.arm.release(self.settle_s)
        self.lift()


def path_to_station(layout: CellLayout, name: str, start_m: Vec3) -> list[tuple[Vec3, float]]:
    """The legs (target, speed) from ``start_m`` to station ``name``: up, across, down."""
    target = layout.station(name).position_m
    safe_z = layout.safe_travel_height_m
    travel, approach = layout.travel_speed_m_per_s, layout.approach_speed_m_per_s
    legs: list[tuple[Vec3, float]] = []
    if start_m[2] < safe_z - 1e-6:
        legs.append(((start_m[0], start_m[1], safe_z), approach))
    if abs(start_m[0] - target[0]) > 1e-6 or abs(start_m[1] - target[1]) > 1e-6:
        legs.append(((target[0], target[1], safe_z), travel))
    legs.append((target, approach))
    return legs


def _fmt(point: Vec3) -> str:
    return "(" + ", ".join(f"{v:.3f}" for v in point) + ")"
