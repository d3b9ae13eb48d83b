"""NE-1000 RS-232 basic mode: commands to bytes, reply packets to typed values.

New Era's basic mode (NE-1000 user manual, publication #1200-01, section 10.2.2) is a
master-slave protocol: the host sends ``[address] command [parameters] CR`` and the pump
answers every command with one packet ``STX address status [data] ETX``. The address is
two digits, the status one letter (``I`` infusing, ``W`` withdrawing, ``S`` stopped,
``P`` paused, ``T`` pause phase, ``U`` user wait, ``X`` purging) or an alarm ``A?`` plus
its type (``R`` reset, ``S`` stalled, ``T`` safe-mode timeout, ``E`` program error,
``O`` phase out of range). A refused command carries ``?`` (not recognised), ``?NA``
(not applicable now), ``?OOR`` (data out of range), ``?COM`` (invalid packet) or ``?IGN``
(ignored, a new phase started) in place of the data.

Numbers have at most four digits and three decimals, so the unit of a rate or volume is
how a host keeps precision; :func:`format_number` refuses what four digits cannot hold
instead of silently rounding it away. Pure functions only: no I/O, no clock.
"""

from __future__ import annotations

import enum
import math
import re
from dataclasses import dataclass

from tablet_workcell.devices.errors import (
    DeviceBusyError,
    DeviceOutOfRangeError,
    DeviceProtocolError,
    DeviceReportedError,
)

DEVICE = "syringe_pump"
STX = b"\x02"
ETX = b"\x03"
CR = b"\r"
MAX_ADDRESS = 99
MAX_DIGITS = 4
MAX_DECIMALS = 3


class PumpStatus(enum.Enum):
    """The prompt letter of every reply: what the pumping program is doing."""

    INFUSING = "I"
    WITHDRAWING = "W"
    STOPPED = "S"
    PAUSED = "P"
    PAUSE_PHASE = "T"
    USER_WAIT = "U"
    PURGING = "X"

    @property
    def moving(self) -> bool:
        """Whether the plunger is being driven right now."""
        return self in (PumpStatus.INFUSING, PumpStatus.WITHDRAWING, PumpStatus.PURGING)


class PumpAlarm(enum.Enum):
    """Alarm types (``A?`` + letter); the alarm is cleared by being reported once."""

    RESET = "R"
    STALLED = "S"
    SAFE_MODE_TIMEOUT = "T"
    PROGRAM_ERROR = "E"
    PHASE_OUT_OF_RANGE = "O"

    @property
    def sentence(self) -> str:
        return {
            PumpAlarm.RESET: "the pump was reset (its power was interrupted); check the settings",
            PumpAlarm.STALLED: "the pump motor stalled; check for a blocked line or an empty syringe",
            PumpAlarm.SAFE_MODE_TIMEOUT: "safe-mode communication timed out",
            PumpAlarm.PROGRAM_ERROR: "the pumping program has an error",
            PumpAlarm.PHASE_OUT_OF_RANGE: "the pumping program phase is out of range",
        }[self]


class Direction(enum.Enum):
    INFUSE = "INF"
    WITHDRAW = "WDR"


class RateUnit(enum.Enum):
    """Rate units of ``RAT``; the value is how many µL/min one unit is."""

    UL_PER_MIN = "UM"
    ML_PER_MIN = "MM"
    UL_PER_HOUR = "UH"
    ML_PER_HOUR = "MH"

    @property
    def ul_per_min(self) -> float:
        return {"UM": 1.0, "MM": 1000.0, "UH": 1.0 / 60.0, "MH": 1000.0 / 60.0}[self.value]


class VolumeUnit(enum.Enum):
    UL = "UL"
    ML = "ML"

    @property
    def ul(self) -> float:
        return 1.0 if self is VolumeUnit.UL else 1000.0


#: error code after ``?`` -> (error class, sentence)
ERRORS: dict[str, tuple[type[Exception], str]] = {
    "": (DeviceReportedError, "the pump did not recognise the command"),
    "NA": (DeviceBusyError, "the command is not applicable now (e.g. changing units while pumping)"),
    "OOR": (DeviceOutOfRangeError, "the command's data is out of the pump's range"),
    "COM": (DeviceReportedError, "the pump received an invalid communications packet"),
    "IGN": (DeviceReportedError, "the pump ignored the command because a new program phase started"),
}


@dataclass(frozen=True)
class Reply:
    """One reply packet: who answered, its state (or alarm) and the data of a query."""

    address: int
    status: PumpStatus | None
    alarm: PumpAlarm | None
    data: str = ""


@dataclass(frozen=True)
class Rate:
    value: float
    unit: RateUnit

    @property
    def ul_per_min(self) -> float:
        return self.value * self.unit.ul_per_min


@dataclass(frozen=True)
class Volume:
    value: float
    unit: VolumeUnit

    @property
    def ul(self) -> float:
        return self.value * self.unit.ul


@dataclass(frozen=True)
class Dispensed:
    """Accumulated volumes since they were last cleared (``DIS``)."""

    infused: float
    withdrawn: float
    unit: VolumeUnit

    @property
    def infused_ul(self) -> float:
        return self.infused * self.unit.ul

    @property
    def withdrawn_ul(self) -> float:
        return self.withdrawn * self.unit.ul


@dataclass(frozen=True)
class Version:
    """``VER`` reply ``NE1000V3.928``: model number and firmware version."""

    model: str
    firmware: str


@dataclass(frozen=True)
class Command:
    """A command as the pump sees it (spaces stripped, upper case); the simulator's input."""

    address: int | None  # None: no address given; -1: "*" system command
    name: str
    argument: str = ""


# ---------------------------------------------------------------------- numbers
_NUMBER = re.compile(r"^(\d*)\.?(\d*)$")


def format_number(value: float, what: str = "value") -> str:
    """The pump's number format: at most 4 digits, at most 3 after the point."""
    if not math.isfinite(value) or value < 0.0:
        raise DeviceOutOfRangeError(DEVICE, f"{what} {value!r} must be a finite number of 0 or more.")
    for decimals in range(MAX_DECIMALS, -1, -1):
        text = f"{value:.{decimals}f}"
        if len(text.replace(".", "")) <= MAX_DIGITS:
            return text
    raise DeviceOutOfRangeError(
        DEVICE, f"{what} {value:g} does not fit the pump's 4 digits (at most 9999); choose a larger unit."
    )


def parse_number(text: str, what: str = "number") -> float:
    """A number as the pump writes it; anything else is a protocol error."""
    match = _NUMBER.match(text)
    if not text or match is None or not (match.group(1) or match.group(2)):
        raise DeviceProtocolError(DEVICE, f"{what} {text!r} is not a number the pump writes.")
    if len(match.group(1) + match.group(2)) > MAX_DIGITS or len(match.group(2)) > MAX_DECIMALS:
        raise DeviceProtocolError(
            DEVICE, f"{what} {text!r} has more digits than the pump writes (4, 3 decimals)."
        )
    return float(text)


# ---------------------------------------------------------------------- host -> pump
def encode(command: str, address: int | None = 0) -> bytes:
    """``[address]command CR``; the address selects one pump on a daisy-chained network."""
    if address is not None and not 0 <= address <= MAX_ADDRESS:
        raise DeviceOutOfRangeError(DEVICE, f"pump address {address} must be between 0 and {MAX_ADDRESS}.")
    prefix = "" if address is None else str(address)
    return (prefix + command).encode("ascii") + CR


def encode_set_diameter(diameter_mm: float, address: int | None = 0) -> bytes:
    return encode(f"DIA {format_number(diameter_mm, 'syringe diameter (mm)')}", address)


def encode_set_rate(rate: Rate, address: int | None = 0) -> bytes:
    return encode(f"RAT {format_number(rate.value, 'pumping rate')} {rate.unit.value}", address)


def encode_set_volume(value: float, address: int | None = 0) -> bytes:
    """Volume to be dispensed, in the pump's current volume units; 0 pumps continuously."""
    return encode(f"VOL {format_number(value, 'volume')}", address)


def encode_set_volume_unit(unit: VolumeUnit, address: int | None = 0) -> bytes:
    return encode(f"VOL {unit.value}", address)


def encode_set_direction(direction: Direction, address: int | None = 0) -> bytes:
    return encode(f"DIR {direction.value}", address)


def encode_clear_dispensed(direction: Direction, address: int | None = 0) -> bytes:
    return encode(f"CLD {direction.value}", address)


def encode_query(name: str, address: int | None = 0) -> bytes:
    """A command without parameters is a query (``DIA``, ``RAT``, ``VOL``, ...); ``""`` asks status."""
    return encode(name, address)


def encode_run(address: int | None = 0) -> bytes:
    return encode("RUN", address)


def encode_stop(address: int | None = 0) -> bytes:
    return encode("STP", address)


# ---------------------------------------------------------------------- pump -> host
def parse_reply(frame: bytes) -> Reply:
    """One ``STX .. ETX`` packet; refusals (``?...``) raise the matching typed error."""
    start = frame.rfind(STX)  # bytes before the last STX are the tail of a lost packet
    if start < 0 or not frame.endswith(ETX) or len(frame) - start < 5:
        raise DeviceProtocolError(DEVICE, f"reply {frame!r} is not a complete STX..ETX packet.")
    try:
        body = frame[start + 1 : -1].decode("ascii")
    except UnicodeDecodeError as error:
        raise DeviceProtocolError(DEVICE, f"reply {frame!r} is not ASCII.") from error
    if not body[:2].isdigit() or not body.isprintable():
        raise DeviceProtocolError(DEVICE, f"reply {frame!r} does not start with a two-digit address.")
    address, letter, rest = int(body[:2]), body[2], body[3:]
    if letter == "A":
        alarm = {a.value: a for a in PumpAlarm}.get(rest[1:]) if rest.startswith("?") else None
        if alarm is None:
            raise DeviceProtocolError(DEVICE, f"reply {frame!r} has an unknown alarm {rest!r}.")
        return Reply(address, None, alarm)
    status = {s.value: s for s in PumpStatus}.get(letter)
    if status is None:
        raise DeviceProtocolError(DEVICE, f"reply {frame!r} has an unknown status letter {letter!r}.")
    if rest.startswith("?"):
        code = rest[1:]
        if code not in ERRORS:
            raise DeviceProtocolError(DEVICE, f"reply {frame!r} has an unknown error {rest!r}.")
        cls, sentence = ERRORS[code]
        raise cls(DEVICE, f"{sentence} (pump status {status.name.lower()})", "?" + code)
    return Reply(address, status, None, rest)


def _match(pattern: str, data: str, what: str) -> re.Match[str]:
    match = re.fullmatch(pattern, data)
    if match is None:
        raise DeviceProtocolError(DEVICE, f"{what} reply {data!r} is not in the pump's format.")
    return match


_NUM = r"(\d*\.?\d*)"


def parse_diameter_mm(data: str) -> float:
    return parse_number(data, "syringe diameter")


def parse_rate(data: str) -> Rate:
    match = _match(_NUM + r"(UM|MM|UH|MH)", data, "rate")
    return Rate(parse_number(match.group(1), "rate"), RateUnit(match.group(2)))


def parse_volume(data: str) -> Volume:
    match = _match(_NUM + r"(UL|ML)", data, "volume")
    return Volume(parse_number(match.group(1), "volume"), VolumeUnit(match.group(2)))


def parse_direction(data: str) -> Direction:
    if data not in ("INF", "WDR"):
        raise DeviceProtocolError(DEVICE, f"direction reply {data!r} is neither INF nor WDR.")
    return Direction(data)


def parse_dispensed(data: str) -> Dispensed:
    match = _match("I" + _NUM + "W" + _NUM + r"(UL|ML)", data, "dispensed volume")
    return Dispensed(
        parse_number(match.group(1), "infused volume"),
        parse_number(match.group(2), "withdrawn volume"),
        VolumeUnit(match.group(3)),
    )


def parse_version(data: str) -> Version:
    match = _match(r"NE(\d{3,4})V(\d+\.\d+)", data, "version")
    return Version(match.group(1), match.group(2))


# ---------------------------------------------------------------------- the pump's side
def parse_command(line: bytes) -> Command:
    """What the pump makes of a line: spaces and control bytes stripped, upper case."""
    text = "".join(chr(b) for b in line if 0x20 < b < 0x7F).upper()
    index = 0
    while index < len(text) and text[index].isdigit():
        index += 1
    address: int | None = int(text[:index]) if index else None
    if text[index : index + 1] == "*":
        address, index = -1, index + 1
    end = index
    while end < len(text) and text[end].isalpha() and end - index < 3:
        end += 1
    return Command(address, text[index:end], text[end:])


def encode_reply(address: int, status: PumpStatus | PumpAlarm, data: str = "") -> bytes:
    """The pump's packet; an alarm replaces the status and carries no data."""
    head = f"A?{status.value}" if isinstance(status, PumpAlarm) else status.value
    return STX + f"{address:02d}{head}{'' if isinstance(status, PumpAlarm) else data}".encode("ascii") + ETX


def encode_error_reply(address: int, status: PumpStatus, code: str) -> bytes:
    """A refusal: ``code`` is one of :data:`ERRORS` (``""`` for plain ``?``)."""
    return encode_reply(address, status, "?" + code)
