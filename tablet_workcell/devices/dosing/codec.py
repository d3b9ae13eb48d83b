"""Dosing-head bus protocol (defined in docs/devices/dosing_head.md): bytes in, typed values out.

Line-based ASCII on one addressed serial bus, one head per powder::

    host -> head   >01 RUN 12.50 MGS*3A\\r\\n
    head -> host   <01 RUN A 12.50*7F\\r\\n        (or <01 RUN E03*..\\r\\n)

A frame is a start character (``>`` from the host, ``<`` from a head), the two-digit
address (01-31; 00 = broadcast, never answered), the command, its fields separated by
single spaces, ``*`` and a CRC-8 of everything between the start character and the ``*``
as two upper-case hex digits, then CR LF. Replies echo the command, so a reply always
names what it answers, then ``A`` (accepted) and data, or ``E`` and a two-digit error
code. Pure functions: no I/O, no clock.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from tablet_workcell.devices.errors import (
    DeviceBusyError,
    DeviceOutOfRangeError,
    DeviceProtocolError,
    DeviceReportedError,
)

DEVICE = "dosing"
TERMINATOR = b"\r\n"
BROADCAST = 0
MAX_ADDRESS = 31
COMMANDS = ("IDN", "RUN", "STP", "STA", "CLR")
RATE_UNITS = ("MGS", "PCT")  # milligrams per second, percent of the head's maximum rate
STATES = {"I": "idle", "F": "feeding", "E": "error"}
_TOKEN = re.compile(r"[!-)+-;=?-~]+")  # printable, no space, no '*', no '<' or '>'
_FRAME = re.compile(r"(?P<start>[<>])(?P<body>(?P<address>\d\d) (?P<rest>[^*]*))\*(?P<crc>[0-9A-F]{2})")


class HopperEmptyError(DeviceReportedError):
    """The head's hopper is empty (E10): refill it, then clear the error."""


class FeederJamError(DeviceReportedError):
    """The head's screw or vibratory tray is blocked (E11) or no powder reaches the balance."""


#: error code -> (error class, what it means and what to do)
ERRORS: dict[str, tuple[type[DeviceReportedError] | type[DeviceOutOfRangeError], str]] = {
    "01": (DeviceReportedError, "unknown command; the head speaks IDN, RUN, STP, STA and CLR"),
    "02": (DeviceReportedError, "malformed parameters; see docs/devices/dosing_head.md for the syntax"),
    "03": (DeviceOutOfRangeError, "rate out of range (0 to the head's maximum rate); lower the rate"),
    "04": (DeviceReportedError, "checksum mismatch: the head received a damaged frame; resend it"),
    "05": (DeviceBusyError, "the head is in its error state; read STA, remove the cause, send CLR"),
    "08": (DeviceReportedError, "drive fault; send CLR, and have the head serviced if it repeats"),
    "10": (HopperEmptyError, "hopper empty; refill the hopper, then send CLR"),
    "11": (FeederJamError, "feeder jammed (motor stalled); clear the blockage, then send CLR"),
}


@dataclass(frozen=True)
class Request:
    address: int
    command: str
    args: tuple[str, ...]


@dataclass(frozen=True)
class Reply:
    address: int
    command: str
    accepted: bool
    error_code: str  # "" when accepted
    fields: tuple[str, ...]


@dataclass(frozen=True)
class HeadIdentity:
    model: str
    serial: str
    firmware: str
    powder: str
    max_rate_mg_per_s: float


@dataclass(frozen=True)
class HeadStatus:
    state: Literal["idle", "feeding", "error"]
    rate_mg_per_s: float  # commanded rate
    hopper_mass_kg: float  # powder left in the hopper
    total_fed_kg: float  # powder fed since power-on
    error_code: str  # "00" when none


# ---------------------------------------------------------------------- framing
def crc8(data: bytes) -> int:
    """CRC-8 (polynomial 0x07, initial value 0, no reflection; ``b"123456789"`` -> 0xF4)."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def _frame(start: str, address: int, words: tuple[str, ...]) -> bytes:
    if not 0 <= address <= MAX_ADDRESS:
        raise DeviceOutOfRangeError(DEVICE, f"address {address} must be 0 (broadcast) to {MAX_ADDRESS}")
    for word in words:
        if not _TOKEN.fullmatch(word):
            raise DeviceProtocolError(DEVICE, f"field {word!r} must be printable ASCII without spaces, * < >")
    body = f"{address:02d} " + " ".join(words)
    return f"{start}{body}*{crc8(body.encode('ascii')):02X}".encode("ascii") + TERMINATOR


def _unframe(data: bytes, start: str, device: str) -> tuple[int, list[str]]:
    body = data[:-2] if data.endswith(TERMINATOR) else data
    if any(byte < 0x20 or byte > 0x7E for byte in body):
        raise DeviceProtocolError(device, f"frame {data!r} holds non-printable bytes; the line is damaged")
    match = _FRAME.fullmatch(body.decode("ascii"))
    if match is None or match["start"] != start:
        raise DeviceProtocolError(device, f"frame {data!r} is not '{start}AA CMD ...*CC'")
    expected = crc8(match["body"].encode("ascii"))
    if int(match["crc"], 16) != expected:
        raise DeviceProtocolError(
            device, f"frame {data!r} fails its checksum (computed {expected:02X}); the line is noisy", "CRC"
        )
    words = match["rest"].split(" ")
    if not all(_TOKEN.fullmatch(word) for word in words):
        raise DeviceProtocolError(device, f"frame {data!r} has empty or invalid fields")
    return int(match["address"]), words


# ---------------------------------------------------------------------- host side
def encode_request(address: int, command: str, *args: str) -> bytes:
    """``>01 STA*CC\\r\\n``; the command must be one of :data:`COMMANDS`."""
    if command not in COMMANDS:
        raise DeviceProtocolError(DEVICE, f"command {command!r} is not one of {COMMANDS}")
    return _frame(">", address, (command, *args))


def encode_run(address: int, rate: float, unit: Literal["MGS", "PCT"] = "MGS") -> bytes:
    """``RUN <rate> MGS`` (mg/s) or ``RUN <percent> PCT``; two decimals."""
    if unit not in RATE_UNITS or not rate >= 0.0 or rate >= 1e6:
        raise DeviceOutOfRangeError(
            DEVICE, f"rate {rate!r} {unit} must be 0 or more (below 1e6) in MGS or PCT"
        )
    return encode_request(address, "RUN", f"{rate:.2f}", unit)


def parse_reply(data: bytes, device: str = DEVICE) -> Reply:
    """Check framing and CRC of a head's reply; errors stay in the Reply (see :func:`raise_for_error`)."""
    address, words = _unframe(data, "<", device)
    if len(words) < 2:
        raise DeviceProtocolError(device, f"reply {data!r} does not name a command and a status")
    command, status, *fields = words
    if status == "A" and command in COMMANDS:
        return Reply(address, command, True, "", tuple(fields))
    if re.fullmatch(r"E\d\d", status) and not fields:  # E01 echoes the unknown command as received
        return Reply(address, command, False, status[1:], ())
    raise DeviceProtocolError(device, f"reply {data!r} is not '<command> A ...' or '<command> Enn'")


def error_for_code(code: str, device: str, context: str = "") -> Exception:
    """The typed error of a head's error code (unknown codes stay DeviceReportedError)."""
    error_class, meaning = ERRORS.get(code, (DeviceReportedError, "undocumented error code; see the manual"))
    prefix = f"{context}: " if context else ""
    return error_class(device, prefix + meaning, f"E{code}")


def raise_for_error(reply: Reply, device: str = DEVICE) -> Reply:
    if not reply.accepted:
        raise error_for_code(reply.error_code, device, f"head {reply.address:02d} refused {reply.command}")
    return reply


def _numbers(fields: tuple[str, ...], command: str, device: str) -> list[float]:
    try:
        values = [float(field) for field in fields]
    except ValueError:
        raise DeviceProtocolError(device, f"{command} reply fields {fields} are not numbers") from None
    if not all(abs(value) < 1e12 for value in values):  # also refuses nan and inf
        raise DeviceProtocolError(device, f"{command} reply fields {fields} are out of any sensible range")
    return values


def parse_identity(reply: Reply, device: str = DEVICE) -> HeadIdentity:
    """``<01 IDN A DH-20 SN-0001 1.3.0 lactose 20.00``."""
    raise_for_error(reply, device)
    if reply.command != "IDN" or len(reply.fields) != 5:
        raise DeviceProtocolError(
            device, f"IDN reply needs model serial firmware powder max-rate: {reply.fields}"
        )
    model, serial, firmware, powder, _ = reply.fields
    return HeadIdentity(model, serial, firmware, powder, _numbers(reply.fields[4:], "IDN", device)[0])


def parse_rate(reply: Reply, device: str = DEVICE) -> float:
    """``<01 RUN A 12.50``: the rate the head runs at, mg/s."""
    raise_for_error(reply, device)
    if reply.command != "RUN" or len(reply.fields) != 1:
        raise DeviceProtocolError(device, f"RUN reply needs the rate in mg/s: {reply.fields}")
    return _numbers(reply.fields, "RUN", device)[0]


def parse_status(reply: Reply, device: str = DEVICE) -> HeadStatus:
    """``<01 STA A F 12.50 4987.31 12.69 00``: state, rate mg/s, hopper mg, total fed mg, error."""
    raise_for_error(reply, device)
    if reply.command != "STA" or len(reply.fields) != 5 or reply.fields[0] not in STATES:
        raise DeviceProtocolError(device, f"STA reply needs state rate hopper total error: {reply.fields}")
    if not re.fullmatch(r"\d\d", reply.fields[4]):
        raise DeviceProtocolError(device, f"STA error field {reply.fields[4]!r} is not two digits")
    rate, hopper_mg, total_mg = _numbers(reply.fields[1:4], "STA", device)
    state = STATES[reply.fields[0]]
    return HeadStatus(state, rate, hopper_mg * 1e-6, total_mg * 1e-6, reply.fields[4])  # type: ignore[arg-type]


# ---------------------------------------------------------------------- head side (simulator)
def parse_request(data: bytes, device: str = DEVICE) -> Request:
    """A host frame; DeviceProtocolError (code ``CRC`` for a checksum mismatch) if damaged."""
    address, words = _unframe(data, ">", device)
    return Request(address, words[0], tuple(words[1:]))


def encode_reply(address: int, command: str, fields: tuple[str, ...] = ()) -> bytes:
    return _frame("<", address, (command, "A", *fields))


def encode_error_reply(address: int, command: str, code: str) -> bytes:
    if not re.fullmatch(r"\d\d", code):
        raise DeviceProtocolError(DEVICE, f"error code {code!r} must be two digits")
    return _frame("<", address, (command, f"E{code}"))
