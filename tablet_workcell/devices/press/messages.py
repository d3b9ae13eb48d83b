"""The press protocol's values: phases, states, and the messages a frame decodes to.

Plain frozen dataclasses in SI units (the codec converts from the wire's MPa, µm, ms).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum, IntEnum

from tablet_workcell.devices.errors import DeviceError
from tablet_workcell.devices.press.codes import ERRORS

DEVICE = "press"


class Phase(IntEnum):
    """Phase of a streamed sample; 0-2 match CompactionPhase and the ROS record message."""

    LOADING = 0
    DWELL = 1
    UNLOADING = 2
    EJECTION = 3
    BREAKING = 4


PHASE_LETTERS = {"L": Phase.LOADING, "D": Phase.DWELL, "U": Phase.UNLOADING, "E": Phase.EJECTION}
PHASE_LETTERS["B"] = Phase.BREAKING
LETTER_OF_PHASE = {phase: letter for letter, phase in PHASE_LETTERS.items()}


class PressState(Enum):
    IDLE = "IDLE"
    COMPACT = "COMPACT"
    EJECT = "EJECT"
    BREAK = "BREAK"
    FAULT = "FAULT"


class DieFill(Enum):
    NONE = "NONE"  # no die in the holder
    EMPTY = "EMPTY"
    FILLED = "FILLED"  # powder, not yet compacted
    PRESSED = "PRESSED"  # a compact is in the die (after STP or a fault): eject it


@dataclass(frozen=True)
class Command:
    """A host command as the press reads it."""

    name: str
    args: tuple[str, ...]


@dataclass(frozen=True)
class Ack:
    """``OK <command> [fields]``: the command was accepted."""

    command: str
    fields: tuple[str, ...]


@dataclass(frozen=True)
class Sample:
    """One streamed sample, SI units: time since the stroke started, force, travel."""

    time_s: float
    force_n: float
    displacement_m: float
    phase: Phase


@dataclass(frozen=True)
class CompactionSummary:
    capped: bool  # the ejection profile showed capping or lamination
    max_force_n: float
    min_gap_m: float  # in-die thickness under peak load
    fill_height_m: float  # powder bed height at first punch contact
    tablet_thickness_m: float  # ejected tablet, after elastic recovery
    ejection_force_n: float
    dwell_s: float
    sample_count: int


@dataclass(frozen=True)
class EjectionSummary:
    capped: bool
    ejection_force_n: float
    tablet_thickness_m: float
    sample_count: int


@dataclass(frozen=True)
class BreakingSummary:
    fractured: bool  # False: no fracture seen before the platen's travel limit
    breaking_force_n: float
    travel_at_break_m: float
    sample_count: int


Summary = CompactionSummary | EjectionSummary | BreakingSummary


@dataclass(frozen=True)
class ErrorReply:
    """``ER <code> <mnemonic> [detail]``: the press refused or stopped."""

    code: str
    mnemonic: str
    detail: str

    def to_exception(self, device: str = DEVICE) -> DeviceError:
        """The typed error of this code, as a sentence with the press's own fix."""
        info = ERRORS.get(self.code)
        if info is None:
            detail = f" ({self.detail})" if self.detail else ""
            return DeviceError(
                device,
                f"the press reported error {self.mnemonic}{detail}, unknown to this driver; "
                "see the press's manual for its firmware",
                self.code,
            )
        detail = f" ({self.detail})" if self.detail else ""
        return info.kind(device, f"{info.meaning}{detail}; {info.action}", self.code)


Message = Ack | Sample | CompactionSummary | EjectionSummary | BreakingSummary | ErrorReply


@dataclass(frozen=True)
class Identity:
    model: str
    serial: str
    firmware: str
    max_force_n: float
    punch_diameter_m: float

    @property
    def punch_area_m2(self) -> float:
        return math.pi * self.punch_diameter_m**2 / 4.0

    @property
    def max_pressure_pa(self) -> float:
        return self.max_force_n / self.punch_area_m2


@dataclass(frozen=True)
class PressStatus:
    state: PressState
    die: DieFill
    takeoff_occupied: bool
    door_closed: bool
    last_error: str  # "00" when none


@dataclass(frozen=True)
class Target:
    pressure_pa: float  # 0 when not set
    force_n: float


@dataclass(frozen=True)
class DieState:
    die: DieFill
    takeoff_occupied: bool
