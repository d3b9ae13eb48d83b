"""Runs a planned transfer on the arm: live progress, the press-zone interlock, stops.

Why not :meth:`StationMover.transfer`: a node needs the tool's position *during* each
leg (feedback, joint states), to hold the press zone exactly as long as the tool is in
it, and to stop within a poll period when cancelled. So each leg is sent without
waiting (``G1``), then the real-time position (``M114 R``) is polled until the tool has
arrived, and ``M400`` confirms it; the stop event wakes the poll at once.

The press-zone interlock (:class:`ZoneGuard`, the safety node's zone arbiter in the cell):

* the zone is asked for *before the arm moves at all* when any leg of the transfer will
  pass through the zone (and before homing, when the tool's position is still unknown).
  A refusal therefore costs nothing: the arm never picks up a die it could not deliver;
* it is kept while the tool is inside, and given back as soon as the tool has left the
  zone for the last time in this transfer;
* a transfer that ends early (stop, fault) with the tool still inside keeps holding it;
  the next transfer starts by leading the tool out and then gives it back.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import Protocol

from tablet_workcell.devices.arm.driver import ArmDriver
from tablet_workcell.devices.arm.layout import CellLayout, Vec3
from tablet_workcell.devices.arm.transfer_plan import (
    Step,
    TransferRequest,
    leg_fraction,
    needs_press_zone,
    plan_transfer,
    progress,
)
from tablet_workcell.devices.errors import DeviceBusyError, DeviceError, DeviceStoppedError

LOG = logging.getLogger(__name__)
ARRIVED_M = 1e-4  # positions are reported to 10 µm; within 0.1 mm the leg is done


class ZoneRefusedError(DeviceBusyError):
    """The press zone could not be had (another station holds it, or no answer)."""


class ZoneGuard(Protocol):
    """The arm's side of the press-zone interlock."""

    @property
    def held(self) -> bool:
        """Whether the arm holds the zone now."""

    def acquire(self, why: str) -> None:
        """Hold the zone (no-op when held); raise :class:`ZoneRefusedError` naming the holder."""

    def release(self) -> None:
        """Give the zone back; never raises (a failed release is logged, the hold stays)."""


class TransferObserver(Protocol):
    """What a transfer reports while it runs (the node turns it into feedback and markers)."""

    def progress(self, phase: str, fraction: float, position_m: Vec3 | None) -> None:
        """``position_m`` None: not known yet (before homing)."""

    def suction(self, on: bool, station: str) -> None:
        """The suction was switched at ``station`` (something picked up or put down)."""


@dataclass(frozen=True)
class TransferOutcome:
    position_m: Vec3
    steps: int


class TransferRunner:
    """One transfer at a time on one arm; every wait is bounded and wakes on ``stop_event``."""

    def __init__(
        self,
        arm: ArmDriver,
        layout: CellLayout,
        observer: TransferObserver,
        stop_event: threading.Event,
        zone: ZoneGuard | None = None,
        settle_s: float = 0.2,
        poll_period_s: float = 0.05,
        home_timeout_s: float = 120.0,
    ) -> None:
        self.arm = arm
        self.layout = layout
        self.observer = observer
        self.stop_event = stop_event
        self.zone = zone
        self.settle_s = settle_s
        self.poll_period_s = poll_period_s
        self.home_timeout_s = home_timeout_s
        self.homed = False
        self.position_m: Vec3 | None = None
        self._position_known = True

    # ------------------------------------------------------------------ entry point
    def run(self, request: TransferRequest, home_first: bool) -> TransferOutcome:
        """Home if asked, then every step of ``request``; raises DeviceError subclasses."""
        self._position_known = not home_first
        try:
            if home_first:
                self._check_stop("homing")
                self._acquire_zone("homing: the tool's position is unknown until the arm is homed")
                self.observer.progress("homing", 0.0, None)
                self._check_stop("homing")
                self.position_m = self.arm.home(self.home_timeout_s).as_tuple
                self.homed = self._position_known = True
            start = self._read_position()
            steps = plan_transfer(self.layout, request, start, self.settle_s)
            if needs_press_zone(steps):
                self._acquire_zone(self._why(steps))
            else:
                self._release_zone_if_outside(start)
            self.observer.progress(steps[0].phase if steps else "move", 0.0, start)
            for index, step in enumerate(steps):
                self._check_stop(step.phase)
                if step.enters_press_zone:
                    self._acquire_zone(self._why(steps[index:]))
                if step.kind == "move":
                    self._move(steps, index)
                    if not needs_press_zone(steps, index + 1):
                        self._release_zone_if_outside(step.target_m)
                else:
                    self._suction(steps, index)
            end = self._read_position()
            self.observer.progress(steps[-1].phase if steps else "move", 1.0, end)
            return TransferOutcome(end, len(steps))
        finally:
            self._settle_zone()

    # ------------------------------------------------------------------ steps
    def _move(self, steps: list[Step], index: int) -> None:
        step = steps[index]
        timeout_s = 2.0 * step.duration_s + 2.0 * self.arm.transport.timeout_s + 1.0
        self.arm.move_to(*step.target_m, step.speed_m_per_s, wait=False)
        deadline = time.monotonic() + timeout_s
        while True:
            self._check_stop(step.phase)
            here = self._read_position()
            self.observer.progress(step.phase, progress(steps, index, leg_fraction(step, here)), here)
            if math.dist(here, step.target_m) <= ARRIVED_M or time.monotonic() >= deadline:
                break
            self.stop_event.wait(self.poll_period_s)
        self.arm.wait_idle(max(deadline - time.monotonic(), 0.0) + self.arm.transport.timeout_s)
        self._check_stop(step.phase)
        self.position_m = step.target_m

    def _suction(self, steps: list[Step], index: int) -> None:
        step = steps[index]
        self.observer.progress(step.phase, progress(steps, index, 0.0), step.start_m)
        if step.kind == "grip":
            self.arm.grip(self.settle_s)
        else:
            self.arm.release(self.settle_s)
        self.observer.suction(step.kind == "grip", step.station)
        self._check_stop(step.phase)
        self.observer.progress(step.phase, progress(steps, index + 1, 0.0), step.target_m)

    def _read_position(self) -> Vec3:
        self.position_m = self.arm.position().as_tuple
        return self.position_m

    def _check_stop(self, phase: str) -> None:
        """Raise when a stop was asked for (M410 again, in case the stop came before the move)."""
        if self.stop_event.is_set():
            self.arm.stop()
            raise DeviceStoppedError("arm", f"the transfer was stopped during {phase}.")

    # ------------------------------------------------------------------ press zone
    def _why(self, steps: list[Step]) -> str:
        leg = next(step for step in steps if step.enters_press_zone)
        return (
            f"{leg.phase}: the path from {_fmt(leg.start_m)} to {_fmt(leg.target_m)} m passes "
            "through the press zone"
        )

    def _acquire_zone(self, why: str) -> None:
        if self.zone is not None and not self.zone.held:
            self.zone.acquire(why)

    def _release_zone_if_outside(self, position_m: Vec3) -> None:
        if self.zone is not None and self.zone.held and not self.layout.press_zone.contains(position_m):
            self.zone.release()

    def _settle_zone(self) -> None:
        """After the transfer, ended or not: give the zone back unless the tool is inside."""
        if self.zone is None or not self.zone.held:
            return
        if not self._position_known:
            LOG.warning("arm: keeping the press zone, homing did not finish so the tool may be inside")
            return
        try:
            here = self._read_position()
        except DeviceError as error:
            LOG.warning("arm: keeping the press zone, the tool's position is unknown (%s)", error)
            return
        if self.layout.press_zone.contains(here):
            LOG.warning(
                "arm: the tool stopped inside the press zone at %s m; the arm keeps holding the zone "
                "until a transfer takes the tool out",
                _fmt(here),
            )
            return
        self.zone.release()


def _fmt(point: Vec3) -> str:
    return "(" + ", ".join(f"{v:.3f}" for v in point) + ")"
