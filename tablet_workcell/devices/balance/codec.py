"""MT-SICS (Mettler Toledo Standard Interface Command Set) subset: bytes in, typed values out.

Pure functions, no I/O and no clock, so every reply layout of the reference manual can be
tested byte for byte and fuzzed. Commands are upper-case ASCII ended by CR LF; a reply
echoes the command's identifier, then a status and the data:

* weight replies ``S S     100.00 g``: identifier, status (``S`` stable, ``D`` dynamic),
  the value right-aligned in a 10-character field (sign directly before the first digit),
  the unit;
* status-only replies ``S I`` / ``S +`` / ``S -``, ``Z A`` / ``Z I`` / ``Z +`` / ``Z -``,
  ``T I`` / ``T +`` / ``T -``;
* text replies ``I4 A "B123456789"`` (strings in double quotes);
* general errors ``ES`` (syntax), ``ET`` (transmission), ``EL`` (logical).

Each error reply becomes the matching :mod:`~tablet_workcell.devices.errors` class with
the balance's own reply (``"S I"``, ``"ES"``) as its code. The replies to encode exist for
the simulator and for round-trip tests. See docs/devices/balance.md for the sources.
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

DEVICE = "balance"
TERMINATOR = b"\r\n"
VALUE_WIDTH = 10  # characters of the weight field, right-aligned
#: kilograms per unit the driver accepts as the balance's host unit
UNIT_KG: dict[str, float] = {"kg": 1.0, "g": 1e-3, "mg": 1e-6}
#: the subset this project speaks (I3 added for the firmware in identify())
COMMANDS = ("S", "SI", "Z", "T", "@", "I2", "I3", "I4")
Command = Literal["S", "SI", "Z", "T", "@", "I2", "I3", "I4"]

GENERAL_ERRORS: dict[str, str] = {
    "ES": "syntax error: the balance did not recognise the command; check the command set (I0) "
    "and that commands are sent in upper case",
    "ET": "transmission error: the balance received a faulty command (parity error or interface "
    "break); check the baud rate, parity and cable, then resend",
    "EL": "logical error: the balance cannot execute the command (e.g. a parameter it does not "
    "take); check the command",
}
_BUSY = (
    "not executable now: the balance is executing another command or stability was not reached "
    "before its timeout; shield the pan from draughts and vibration, then retry"
)
_STATUS_ERRORS: dict[str, tuple[type[Exception], str]] = {
    "S I": (DeviceBusyError, _BUSY),
    "S +": (DeviceOutOfRangeError, "overload: the load exceeds the weighing capacity; remove load"),
    "S -": (DeviceOutOfRangeError, "underload: the weighing pan is missing or not in place; fit the pan"),
    "Z I": (DeviceBusyError, "zero setting not performed, " + _BUSY),
    "Z +": (DeviceOutOfRangeError, "upper limit of the zero setting range exceeded; remove load, then zero"),
    "Z -": (DeviceOutOfRangeError, "lower limit of the zero setting range exceeded; fit the pan, then zero"),
    "T I": (DeviceBusyError, "taring not performed, " + _BUSY),
    "T +": (DeviceOutOfRangeError, "upper limit of the taring range exceeded; remove load"),
    "T -": (DeviceOutOfRangeError, "lower limit of the taring range exceeded; fit the pan, then tare"),
}
_WEIGHT = re.compile(r"(?P<id>S|T) (?P<status>[SD]) +(?P<value>-?\d+(?:\.\d+)?) (?P<unit>[A-Za-z]{1,3}) *")
_TEXT = re.compile(r'(?P<id>I2|I3|I4) A "(?P<text>[^"]*)"')
_STATUS = re.compile(r"(?P<id>S|Z|T|I2|I3|I4) (?P<status>[AI+-])")


@dataclass(frozen=True)
class WeightReply:
    """A weight reply (``S``, ``SI``) or the tare weight of a ``T`` reply."""

    stable: bool
    value: float  # in ``unit``
    unit: str
    text: str  # the digits exactly as the balance sent them

    @property
    def mass_kg(self) -> float:
        return self.value * UNIT_KG[self.unit]


@dataclass(frozen=True)
class BalanceData:
    """The ``I2`` text: balance type (may contain spaces), capacity and its unit."""

    model: str
    capacity: float
    unit: str

    @property
    def capacity_kg(self) -> float:
        return self.capacity * UNIT_KG[self.unit]


# ---------------------------------------------------------------------- commands
def encode_command(command: Command) -> bytes:
    """``S`` -> ``b"S\\r\\n"``; only the documented subset is accepted."""
    if command not in COMMANDS:
        raise DeviceProtocolError(DEVICE, f"command {command!r} is not in the MT-SICS subset {COMMANDS}")
    return command.encode("ascii") + TERMINATOR


# ---------------------------------------------------------------------- replies
def decode_line(data: bytes, device: str = DEVICE) -> str:
    """One reply without its CR LF; ES/ET/EL raise :class:`DeviceReportedError`."""
    body = data[:-2] if data.endswith(TERMINATOR) else data
    if b"\r" in body or b"\n" in body:
        raise DeviceProtocolError(device, f"reply {data!r} holds a stray line break; the line is damaged")
    if any(byte < 0x20 or byte > 0x7E for byte in body):
        raise DeviceProtocolError(device, f"reply {data!r} holds non-ASCII bytes; check the baud rate")
    line = body.decode("ascii")
    code = line.strip()
    if code in GENERAL_ERRORS:
        raise DeviceReportedError(device, GENERAL_ERRORS[code], code)
    return line


def _raise_status(line: str, device: str) -> None:
    """Raise the typed error of a status-only reply (``S I``, ``Z +``...) if ``line`` is one."""
    match = _STATUS.fullmatch(line.rstrip())
    if match is None:
        return
    code = f"{match['id']} {match['status']}"
    if code in _STATUS_ERRORS:
        error_class, message = _STATUS_ERRORS[code]
        raise error_class(device, message, code)
    if match["status"] == "I":  # I2 I / I3 I / I4 I
        raise DeviceBusyError(device, _BUSY, code)


def _weight(line: str, identifier: str, device: str) -> WeightReply:
    match = _WEIGHT.fullmatch(line)
    if match is None or match["id"] != identifier:
        raise DeviceProtocolError(device, f"reply {line!r} is not a {identifier!r} weight reply")
    unit = match["unit"]
    if unit not in UNIT_KG:
        raise DeviceProtocolError(
            device,
            f"weight unit {unit!r} is not one of {sorted(UNIT_KG)}; set the balance's host unit to g or mg",
        )
    return WeightReply(match["status"] == "S", float(match["value"]), unit, match["value"])


def parse_weight(data: bytes, device: str = DEVICE) -> WeightReply:
    """The reply to ``S`` or ``SI``: ``S S|D <value> <unit>`` or a typed error."""
    line = decode_line(data, device)
    _raise_status(line, device)
    return _weight(line, "S", device)


def parse_tare(data: bytes, device: str = DEVICE) -> WeightReply:
    """The reply to ``T``: ``T S <tare weight> <unit>`` or a typed error."""
    line = decode_line(data, device)
    _raise_status(line, device)
    return _weight(line, "T", device)


def parse_zero(data: bytes, device: str = DEVICE) -> None:
    """The reply to ``Z``: ``Z A`` (zero set) or a typed error."""
    line = decode_line(data, device)
    _raise_status(line, device)
    if line.rstrip() != "Z A":
        raise DeviceProtocolError(device, f"reply {line!r} is not a reply to Z")


def parse_text(data: bytes, identifier: Literal["I2", "I3", "I4"], device: str = DEVICE) -> str:
    """The quoted text of ``I2 A "..."`` / ``I3`` / ``I4`` (also the reply to ``@``, which is I4)."""
    line = decode_line(data, device)
    _raise_status(line, device)
    match = _TEXT.fullmatch(line.rstrip())
    if match is None or match["id"] != identifier:
        raise DeviceProtocolError(device, f'reply {line!r} is not {identifier} A "<text>"')
    return match["text"]


def parse_balance_data(text: str, device: str = DEVICE) -> BalanceData:
    """``"XS205DU 220.00000 g"`` -> type, capacity, unit (read from the right: the type may hold spaces)."""
    parts = text.split()
    if len(parts) < 3:
        raise DeviceProtocolError(device, f"I2 text {text!r} is not '<type> <capacity> <unit>'")
    *model, capacity, unit = parts
    try:
        value = float(capacity)
    except ValueError:
        raise DeviceProtocolError(device, f"I2 capacity {capacity!r} is not a number") from None
    if unit not in UNIT_KG or not value > 0:
        raise DeviceProtocolError(device, f"I2 capacity {capacity} {unit} is not a positive mass in g/mg/kg")
    return BalanceData(" ".join(model), value, unit)


# ---------------------------------------------------------------------- replies (simulator side)
def format_value(value: float, decimals: int) -> str:
    """The 10-character right-aligned weight field; raises if the value does not fit."""
    text = f"{value:.{decimals}f}"
    if text.startswith("-") and float(text) == 0.0:
        text = text[1:]  # no "-0.00"
    if len(text) > VALUE_WIDTH:
        raise DeviceProtocolError(DEVICE, f"weight {text} does not fit the {VALUE_WIDTH}-character field")
    return text.rjust(VALUE_WIDTH)


def encode_weight_reply(
    identifier: Literal["S", "T"], stable: bool, value: float, unit: str, decimals: int
) -> bytes:
    """``S S     100.00 g`` / ``S D ...`` / ``T S ...``."""
    status = "S" if stable else "D"
    return f"{identifier} {status} {format_value(value, decimals)} {unit}".encode("ascii") + TERMINATOR


def encode_status_reply(identifier: str, status: str) -> bytes:
    """``S I``, ``Z A``, ``T +``..."""
    return f"{identifier} {status}".encode("ascii") + TERMINATOR


def encode_text_reply(identifier: Literal["I2", "I3", "I4"], text: str) -> bytes:
    """``I4 A "B123456789"``."""
    if '"' in text:
        raise DeviceProtocolError(DEVICE, f"text {text!r} cannot hold a double quote")
    return f'{identifier} A "{text}"'.encode("ascii") + TERMINATOR


def encode_error(code: Literal["ES", "ET", "EL"]) -> bytes:
    return code.encode("ascii") + TERMINATOR
