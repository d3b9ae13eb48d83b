"""What a transfer does, step by step, before anything moves (pure: no I/O, no time).

A transfer is planned whole from the tool's position at its start: the legs to the
source station (phase ``approach``), suction on (``grasp``), the legs to the destination
(``transfer``), suction off (``release``) and the lift back to the safe travel height
(``retract``). A plain move (no source station, nothing carried) is the legs to the
destination (phase ``move``) and ends with the tool at the station. Every leg knows
whether its straight path passes through the press zone, so the interlock can be asked
for before the arm moves, and each step has an estimated duration, which weighs it in
the progress reported while the transfer runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntEnum
from typing import Literal

from tablet_workcell.devices.arm.layout import CellLayout, Vec3
from tablet_workcell.devices.arm.stations import path_to_station
from tablet_workcell.errors import ConfigError

StepKind = Literal["move", "grip", "release"]


class Payload(IntEnum):
    """What the tool carries (the values of ``ArmTransfer.PAYLOAD_*``)."""

    NONE = 0
    DIE = 1
    TABLET = 2


@dataclass(frozen=True)
class TransferRequest:
    """``from_station`` empty: move the empty tool to ``to_station``; else pick and place."""

    from_station: str
    to_station: str
    payload: Payload

    @property
    def carries(self) -> bool:
        return bool(self.from_station)


@dataclass(frozen=True)
class Step:
    kind: StepKind
    phase: str
    start_m: Vec3  # where the tool is when the step begins
    target_m: Vec3  # where it is when the step ends (== start_m for grip/release)
    speed_m_per_s: float  # 0.0 for grip/release
    enters_press_zone: bool
    duration_s: float  # estimate, for progress only
    station: str = ""  # the station a grip/release happens at

    @property
    def length_m(self) -> float:
        return math.dist(self.start_m, self.target_m)


def validate_request(layout: CellLayout, from_station: str, to_station: str, payload: int) -> TransferRequest:
    """The request as a :class:`TransferRequest`, or ConfigError saying what is wrong with it."""
    try:
        kind = Payload(payload)
    except ValueError:
        raise ConfigError(
            f"payload {payload} is not one of NONE (0), DIE (1), TABLET (2); choose what the arm carries."
        ) from None
    if not to_station:
        raise ConfigError("to_station is empty; name the station the arm should go to.")
    layout.station(to_station)
    if from_station:
        layout.station(from_station)
        if from_station == to_station:
            raise ConfigError(
                f"from_station and to_station are both {to_station!r}; a transfer needs two stations."
            )
        if kind is Payload.NONE:
            raise ConfigError(
                f"a transfer from {from_station!r} picks something up: set payload to DIE or TABLET, "
                "or leave from_station empty to move the empty tool."
            )
    elif kind is not Payload.NONE:
        raise ConfigError(
            f"payload {kind.name} needs a from_station to pick it up at; name the station it is at."
        )
    return TransferRequest(from_station, to_station, kind)


def _legs(layout: CellLayout, station: str, start_m: Vec3, phase: str, steps: list[Step]) -> Vec3:
    here = start_m
    for target, speed in path_to_station(layout, station, here):
        steps.append(
            Step(
                "move",
                phase,
                here,
                target,
                speed,
                layout.press_zone.intersects_segment(here, target),
                math.dist(here, target) / speed,
            )
        )
        here = target
    return here


def plan_transfer(layout: CellLayout, request: TransferRequest, start_m: Vec3, settle_s: float) -> list[Step]:
    """Every step of ``request`` from the tool position ``start_m``, in order."""
    steps: list[Step] = []
    if not request.carries:
        _legs(layout, request.to_station, start_m, "move", steps)
        return steps
    at_source = _legs(layout, request.from_station, start_m, "approach", steps)
    steps.append(Step("grip", "grasp", at_source, at_source, 0.0, False, settle_s, request.from_station))
    at_destination = _legs(layout, request.to_station, at_source, "transfer", steps)
    steps.append(
        Step("release", "release", at_destination, at_destination, 0.0, False, settle_s, request.to_station)
    )
    safe_z = layout.safe_travel_height_m
    if at_destination[2] < safe_z - 1e-6:
        lifted = (at_destination[0], at_destination[1], safe_z)
        speed = layout.approach_speed_m_per_s
        steps.append(
            Step(
                "move",
                "retract",
                at_destination,
                lifted,
                speed,
                layout.press_zone.intersects_segment(at_destination, lifted),
                math.dist(at_destination, lifted) / speed,
            )
        )
    return steps


def progress(steps: list[Step], index: int, fraction: float) -> float:
    """Share of the transfer done (0..1) when step ``index`` is ``fraction`` done."""
    total = sum(step.duration_s for step in steps)
    if total <= 0.0:
        return 1.0
    done = sum(step.duration_s for step in steps[:index])
    if index < len(steps):
        done += steps[index].duration_s * min(max(fraction, 0.0), 1.0)
    return min(done / total, 1.0)


def leg_fraction(step: Step, position_m: Vec3) -> float:
    """How far along a move the tool is (0..1), from its position projected on the leg."""
    length = step.length_m
    if length < 1e-9:
        return 1.0
    along = sum((p - s) * (t - s) for p, s, t in zip(position_m, step.start_m, step.target_m, strict=True))
    return min(max(along / (length * length), 0.0), 1.0)


def needs_press_zone(steps: list[Step], after: int = 0) -> bool:
    """Whether any step from index ``after`` on passes through the press zone."""
    return any(step.enters_press_zone for step in steps[after:])
