"""The press's error codes: what each means, what the operator does, and the error it raises.

One table serves the codec (turning ``ER <code>`` replies into typed errors), the
simulator (sending them) and the protocol reference (docs/devices/press.md lists the
same codes; a test keeps the two in step).
"""

from __future__ import annotations

from dataclasses import dataclass

from tablet_workcell.devices.errors import (
    DeviceBusyError,
    DeviceError,
    DeviceOutOfRangeError,
    DeviceProtocolError,
    DeviceReportedError,
    DeviceStoppedError,
)


@dataclass(frozen=True)
class ErrorInfo:
    """One error code of the press."""

    mnemonic: str  # the single word after the code on the wire
    meaning: str  # what happened, as a sentence fragment
    action: str  # what the operator (or the driver) should do
    kind: type[DeviceError]  # the exception a driver raises
    latches: bool = False  # the press enters FAULT and refuses motion until CLR


UNKNOWN_COMMAND = "01"
SYNTAX = "02"
RANGE = "03"
CHECKSUM = "04"
BUSY = "05"
NO_DIE = "06"
DIE_EMPTY = "07"
NO_TABLET = "08"
TAKEOFF_OCCUPIED = "09"
INTERLOCK = "10"
OVERLOAD = "11"
MOTION = "12"
LATCHED = "13"
ABORTED = "14"
NO_TARGET = "15"

ERRORS: dict[str, ErrorInfo] = {
    UNKNOWN_COMMAND: ErrorInfo(
        "UNKNOWN",
        "the press does not know this command",
        "check the mnemonic against the protocol reference and the firmware version (IDN)",
        DeviceProtocolError,
    ),
    SYNTAX: ErrorInfo(
        "SYNTAX",
        "the command's arguments are missing, extra or not numbers",
        "send the arguments the protocol reference lists, numbers with a '.' decimal point",
        DeviceProtocolError,
    ),
    RANGE: ErrorInfo(
        "RANGE",
        "a value is outside the press's range",
        "use a value inside the range the reply names (IDN gives the force limit and punch size)",
        DeviceOutOfRangeError,
    ),
    CHECKSUM: ErrorInfo(
        "CHECKSUM",
        "the press received a frame with a missing or wrong checksum",
        "resend the command; if it repeats, check the cable, its shield and the baud rate (230400 8N1)",
        DeviceProtocolError,
    ),
    BUSY: ErrorInfo(
        "BUSY",
        "a cycle is running; only IDN, STA, DIE and STP are accepted",
        "wait for the cycle's END line, or send STP",
        DeviceBusyError,
    ),
    NO_DIE: ErrorInfo(
        "NODIE",
        "no die is in the press",
        "place the die in the die holder (robot transfer) and repeat",
        DeviceReportedError,
    ),
    DIE_EMPTY: ErrorInfo(
        "EMPTY",
        "the die holds no powder",
        "fill the die at the dispensing station, then compact",
        DeviceReportedError,
    ),
    NO_TABLET: ErrorInfo(
        "NOTABLET",
        "there is no tablet to eject (die not pressed) or to test (take-off position empty)",
        "compact first, or place a tablet at the take-off position for the breaking test",
        DeviceReportedError,
    ),
    TAKEOFF_OCCUPIED: ErrorInfo(
        "TAKEOFF",
        "a tablet still lies at the take-off position, where the next one would be ejected",
        "remove the tablet (robot pick, or BRK to test it) and repeat",
        DeviceReportedError,
    ),
    INTERLOCK: ErrorInfo(
        "INTERLOCK",
        "the guard door is open (the interlock stops all motion)",
        "close the guard door, then send CLR if a cycle was stopped",
        DeviceReportedError,
        latches=True,
    ),
    OVERLOAD: ErrorInfo(
        "OVERLOAD",
        "the punch force exceeded the load cell's limit and the press stopped",
        "inspect the die and punches for a double fill or a foreign body, send CLR, then eject the "
        "compact (EJT)",
        DeviceReportedError,
        latches=True,
    ),
    MOTION: ErrorInfo(
        "MOTION",
        "the drive lost its position (following error or stall) and the press stopped",
        "check the punches move freely, send CLR; call service if it repeats",
        DeviceReportedError,
        latches=True,
    ),
    LATCHED: ErrorInfo(
        "LATCHED",
        "a fault is latched; motion commands are refused",
        "remove the cause (STA names the last error) and send CLR",
        DeviceReportedError,
    ),
    ABORTED: ErrorInfo(
        "ABORTED",
        "the cycle was stopped by STP",
        "a partial compact may be in the die: eject it (EJT) before the next fill",
        DeviceStoppedError,
    ),
    NO_TARGET: ErrorInfo(
        "NOTARGET",
        "no target pressure or force has been set",
        "send TGT P <MPa> or TGT F <N> before CMP",
        DeviceReportedError,
    ),
}


def describe(code: str) -> ErrorInfo | None:
    """The table entry of ``code``, or None for a code this driver does not know."""
    return ERRORS.get(code)
