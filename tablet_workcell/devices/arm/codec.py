"""Marlin's serial replies: each line classified into a typed value, and written back.

Marlin answers every command line with ``ok`` once it has taken the command (a move is
taken when it is queued in the planner, ``M400`` only when all motion has finished).
Before the ``ok`` come the command's own lines: ``X:10.00 Y:20.00 Z:5.00 Count X:800
Y:1600 Z:400`` for ``M114``, ``FIRMWARE_NAME:...`` and ``Cap:`` lines for ``M115``,
``echo:Soft endstops: ON  Min: ...`` for ``M211``. Problems are ``echo:`` notices
(``echo:Unknown command: "G999"``, ``echo:Home XYZ First``) or ``Error:`` lines; a bad
line number or checksum is followed by ``Resend: <n>``; ``M112`` answers
``Error:Printer halted. kill() called!`` and nothing more until the board is reset. A
long blocking command prints ``echo:busy: processing`` every couple of seconds.

The writers here are the simulator's side of the same lines. Pure functions only.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from tablet_workcell.devices.arm.gcode import LineError
from tablet_workcell.devices.errors import DeviceProtocolError

DEVICE = "arm"
KILLED_TEXT = "Printer halted. kill() called!"

Vec3 = tuple[float, float, float]


@dataclass(frozen=True)
class Ok:
    line_number: int | None = None  # ADVANCED_OK: "ok N12 P15 B3"


@dataclass(frozen=True)
class Busy:
    reason: str  # "processing", "paused for user", ...


@dataclass(frozen=True)
class Echo:
    text: str


@dataclass(frozen=True)
class UnknownCommand:
    command: str


@dataclass(frozen=True)
class HomeFirst:
    axes: str  # the axes that must be homed, e.g. "XYZ"


@dataclass(frozen=True)
class Halted:
    """``M112`` or a fatal error: the firmware stopped and answers nothing until reset."""

    text: str


@dataclass(frozen=True)
class LineRejected:
    """A line refused for its number or checksum; a ``Resend`` follows."""

    reason: LineError
    last_line: int


@dataclass(frozen=True)
class FirmwareError:
    text: str


@dataclass(frozen=True)
class Resend:
    line_number: int


@dataclass(frozen=True)
class Position:
    x_mm: float
    y_mm: float
    z_mm: float
    e_mm: float | None = None
    counts: tuple[int, int, int] | None = None  # stepper positions in steps


@dataclass(frozen=True)
class FirmwareInfo:
    fields: tuple[tuple[str, str], ...]

    def get(self, key: str, default: str = "") -> str:
        return dict(self.fields).get(key, default)


@dataclass(frozen=True)
class Capability:
    name: str
    value: str


@dataclass(frozen=True)
class SoftEndstops:
    enabled: bool
    min_mm: Vec3
    max_mm: Vec3


@dataclass(frozen=True)
class Start:
    """``start``: the board has just booted (reset, power-up, or the port was opened)."""


@dataclass(frozen=True)
class Unrecognized:
    """A line that is none of Marlin's: damaged on the wire."""

    text: str


ReplyLine = (
    Ok
    | Busy
    | Echo
    | UnknownCommand
    | HomeFirst
    | Halted
    | LineRejected
    | FirmwareError
    | Resend
    | Position
    | FirmwareInfo
    | Capability
    | SoftEndstops
    | Start
    | Unrecognized
)

_NUM = r"(-?\d+(?:\.\d+)?)"
_POSITION = re.compile(
    rf"^X:{_NUM} Y:{_NUM} Z:{_NUM}(?: E:{_NUM})?(?: Count X:\s*(-?\d+) Y:\s*(-?\d+) Z:\s*(-?\d+))?$"
)
_SOFT = re.compile(
    rf"^echo:Soft endstops: (ON|OFF)\s+Min:\s+X{_NUM} Y{_NUM} Z{_NUM}\s+Max:\s+X{_NUM} Y{_NUM} Z{_NUM}$"
)
_LINE_ERRORS = {e.value.lower(): e for e in LineError}


def parse_reply_line(raw: bytes) -> ReplyLine:
    """Classify one line from the firmware (with or without its newline)."""
    text = raw.decode("ascii", errors="replace").strip()
    if not text.isprintable() or not raw.isascii():
        return Unrecognized(text)
    if text == "ok" or text.startswith("ok "):
        match = re.match(r"^ok N(\d+)", text)
        return Ok(int(match.group(1)) if match else None)
    for prefix, parser in _PREFIXES:
        if text.startswith(prefix):
            return parser(text)
    match = _POSITION.match(text)
    if match is None:
        return Unrecognized(text)
    x, y, z, e, cx, cy, cz = match.groups()
    counts = (int(cx), int(cy), int(cz)) if cx is not None else None
    return Position(float(x), float(y), float(z), None if e is None else float(e), counts)


def _parse_resend(text: str) -> ReplyLine:
    number = text[len("Resend:") :].strip()
    return Resend(int(number)) if number.isdigit() else Unrecognized(text)


def _parse_firmware_info(text: str) -> ReplyLine:
    pairs = re.split(r"\s+(?=[A-Z_]+:)", text)
    return FirmwareInfo(tuple((key, value) for key, _, value in (p.partition(":") for p in pairs)))


def _parse_capability(text: str) -> ReplyLine:
    name, _, value = text[len("Cap:") :].partition(":")
    return Capability(name, value)


def _parse_error(text: str) -> ReplyLine:
    body = text[len("Error:") :].strip()
    if body.startswith(KILLED_TEXT) or body.startswith("Printer halted"):
        return Halted(body)
    reason, sep, last = body.partition(", Last Line:")
    kind = _LINE_ERRORS.get(reason.strip().lower())
    if kind is not None and sep and last.strip().lstrip("-").isdigit():
        return LineRejected(kind, int(last.strip()))
    return FirmwareError(body)


def _parse_echo(text: str) -> ReplyLine:
    body = text[len("echo:") :]
    if body.startswith("busy:"):
        return Busy(body[len("busy:") :].strip())
    match = re.match(r'^\s*Unknown command:\s*"(.*)"\s*$', body)
    if match:
        return UnknownCommand(match.group(1))
    match = re.match(r"^Home ([XYZ]+) First$", body.strip(), re.IGNORECASE)
    if match:
        return HomeFirst(match.group(1).upper())
    match = _SOFT.match(text)
    if match:
        values = [float(v) for v in match.groups()[1:]]
        return SoftEndstops(
            match.group(1) == "ON", (values[0], values[1], values[2]), (values[3], values[4], values[5])
        )
    return Echo(body.strip())


_PREFIXES: tuple[tuple[str, Callable[[str], ReplyLine]], ...] = (
    ("start", lambda text: Start() if text == "start" else Unrecognized(text)),
    ("Resend:", _parse_resend),
    ("Error:", _parse_error),
    ("echo:", _parse_echo),
    ("FIRMWARE_NAME:", _parse_firmware_info),
    ("Cap:", _parse_capability),
)


def require_position(lines: list[ReplyLine]) -> Position:
    """The position among a command's reply lines; its absence means the reply was damaged."""
    for line in lines:
        if isinstance(line, Position):
            return line
    raise DeviceProtocolError(DEVICE, f"the M114 reply has no position line (got {lines!r}).")


# ---------------------------------------------------------------------- the firmware's side
def write(text: str) -> bytes:
    return text.encode("ascii") + b"\n"


def format_position(position_mm: Vec3, counts: tuple[int, int, int]) -> bytes:
    x, y, z = position_mm
    return write(f"X:{x:.2f} Y:{y:.2f} Z:{z:.2f} Count X:{counts[0]} Y:{counts[1]} Z:{counts[2]}")


def format_soft_endstops(enabled: bool, min_mm: Vec3, max_mm: Vec3) -> bytes:
    low = " ".join(f"{a}{v:.2f}" for a, v in zip("XYZ", min_mm, strict=True))
    high = " ".join(f"{a}{v:.2f}" for a, v in zip("XYZ", max_mm, strict=True))
    return write(f"echo:Soft endstops: {'ON' if enabled else 'OFF'}  Min:  {low}   Max:  {high}")


def format_line_error(reason: LineError, last_line: int) -> bytes:
    """A refused line as Marlin reports it: the error, the resend request, then ``ok``."""
    return (
        write(f"Error:{reason.value}, Last Line: {last_line}")
        + write(f"Resend: {last_line + 1}")
        + write("ok")
    )


def format_unknown_command(command: str) -> bytes:
    return write(f'echo:Unknown command: "{command}"')


OK = write("ok")
BUSY = write("echo:busy: processing")
KILLED = write("Error:" + KILLED_TEXT)
