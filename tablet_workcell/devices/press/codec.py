"""Codec of the press protocol (docs/devices/press.md): frames, commands, replies, stream lines.

Pure functions on bytes: no I/O, no clock. Every frame is ``<body>*<CRC>\\r\\n`` where CRC
is the CRC-16/CCITT-FALSE of the body as four hex digits (the reference argues why not an
NMEA XOR byte). The host encodes commands with the ``encode_*`` functions and decodes what
the press sends with :func:`decode`; the press side (the simulator) uses
:func:`parse_command` and the ``reply_*`` functions, so both ends share one grammar.

Wire units are the press's (MPa, N, mm, µm, ms, s, Hz, µm/s); parsed values are SI.
"""

from __future__ import annotations

import math
import re

from tablet_workcell.devices.errors import DeviceOutOfRangeError, DeviceProtocolError
from tablet_workcell.devices.press.codes import CHECKSUM, ERRORS, SYNTAX
from tablet_workcell.devices.press.framing import MAX_BODY_CHARS, TERMINATOR, crc16, frame, unframe
from tablet_workcell.devices.press.messages import (
    DEVICE,
    LETTER_OF_PHASE,
    PHASE_LETTERS,
    Ack,
    BreakingSummary,
    Command,
    CompactionSummary,
    DieFill,
    DieState,
    EjectionSummary,
    ErrorReply,
    Identity,
    Message,
    Phase,
    PressState,
    PressStatus,
    Sample,
    Summary,
    Target,
)

__all__ = [  # the values are re-exported: callers import the protocol from here
    "DEVICE",
    "MAX_BODY_CHARS",
    "TERMINATOR",
    "Ack",
    "BreakingSummary",
    "Command",
    "CompactionSummary",
    "DieFill",
    "DieState",
    "EjectionSummary",
    "ErrorReply",
    "Identity",
    "Message",
    "Phase",
    "PressState",
    "PressStatus",
    "Sample",
    "Summary",
    "Target",
    "crc16",
    "decode",
    "frame",
    "unframe",
]

_NUMBER = re.compile(r"-?\d{1,9}(\.\d{1,6})?")
_CODE = re.compile(r"\d\d")
_MNEMONIC = re.compile(r"[A-Z]{2,4}")


def _fixed(value: float, decimals: int, what: str) -> str:
    if not math.isfinite(value):
        raise DeviceOutOfRangeError(DEVICE, f"{what} must be a finite number, got {value!r}")
    return f"{value:.{decimals}f}"


def is_number(text: str) -> bool:
    """Whether ``text`` is a decimal number as the protocol writes them (no exponent, no sign +)."""
    return _NUMBER.fullmatch(text) is not None


def _number(text: str, what: str, device: str) -> float:
    if not _NUMBER.fullmatch(text):
        raise DeviceProtocolError(device, f"{what} {text!r} is not a decimal number")
    return float(text)


def _count(text: str, what: str, device: str) -> int:
    if not text.isdigit() or len(text) > 9:
        raise DeviceProtocolError(device, f"{what} {text!r} is not a count")
    return int(text)


# ---------------------------------------------------------------- host -> press


def encode_command(name: str, *args: str) -> bytes:
    """A command frame, e.g. ``encode_command("TGT", "P", "150.00")``."""
    return frame(" ".join((name, *args)))


def encode_identify() -> bytes:
    return encode_command("IDN")


def encode_status() -> bytes:
    return encode_command("STA")


def encode_die_query() -> bytes:
    return encode_command("DIE")


def encode_target_pressure(pressure_pa: float) -> bytes:
    return encode_command("TGT", "P", _fixed(pressure_pa / 1e6, 2, "target pressure"))


def encode_target_force(force_n: float) -> bytes:
    return encode_command("TGT", "F", _fixed(force_n, 1, "target force"))


def encode_target_query() -> bytes:
    return encode_command("TGT")


def encode_dwell(dwell_s: float) -> bytes:
    return encode_command("DWL", _fixed(dwell_s, 3, "dwell time"))


def encode_rate(rate_hz: int) -> bytes:
    return encode_command("RATE", str(int(rate_hz)))


def encode_compact() -> bytes:
    return encode_command("CMP")


def encode_eject() -> bytes:
    return encode_command("EJT")


def encode_breaking_test(platen_speed_m_per_s: float | None = None) -> bytes:
    if platen_speed_m_per_s is None:
        return encode_command("BRK")
    return encode_command("BRK", _fixed(platen_speed_m_per_s * 1e6, 0, "platen speed"))


def encode_stop() -> bytes:
    return encode_command("STP")


def encode_clear() -> bytes:
    return encode_command("CLR")


def parse_command(raw: bytes, device: str = DEVICE) -> Command:
    """A host frame as the press reads it; DeviceProtocolError (code 04 or 02) when unreadable."""
    try:
        body = unframe(raw, device)
    except DeviceProtocolError as error:
        raise DeviceProtocolError(device, str(error).removeprefix(f"{device}: "), CHECKSUM) from None
    name, *args = body.split(" ")
    if not name or any(not arg for arg in args):
        raise DeviceProtocolError(device, f"command {body!r} has empty fields (double spaces?)", SYNTAX)
    return Command(name.upper(), tuple(args))


# ---------------------------------------------------------------- press -> host (encoding)


def reply_ack(command: str, *fields: str) -> bytes:
    return frame(" ".join(("OK", command, *fields)))


def reply_error(code: str, detail: str = "") -> bytes:
    info = ERRORS[code]
    return frame(" ".join(part for part in ("ER", code, info.mnemonic, detail) if part))


def reply_sample(sample: Sample) -> bytes:
    return frame(
        f"D {_fixed(sample.time_s * 1e3, 3, 'time')} {_fixed(sample.force_n, 2, 'force')} "
        f"{_fixed(sample.displacement_m * 1e6, 2, 'displacement')} {LETTER_OF_PHASE[sample.phase]}"
    )


def reply_summary(summary: Summary) -> bytes:
    if isinstance(summary, CompactionSummary):
        fields = [
            "CMP",
            "CAP" if summary.capped else "OK",
            _fixed(summary.max_force_n, 2, "max force"),
            _fixed(summary.min_gap_m * 1e6, 2, "min gap"),
            _fixed(summary.fill_height_m * 1e6, 2, "fill height"),
            _fixed(summary.tablet_thickness_m * 1e6, 2, "thickness"),
            _fixed(summary.ejection_force_n, 2, "ejection force"),
            _fixed(summary.dwell_s, 3, "dwell"),
        ]
    elif isinstance(summary, EjectionSummary):
        fields = [
            "EJT",
            "CAP" if summary.capped else "OK",
            _fixed(summary.ejection_force_n, 2, "ejection force"),
            _fixed(summary.tablet_thickness_m * 1e6, 2, "thickness"),
        ]
    else:
        fields = [
            "BRK",
            "OK" if summary.fractured else "NOF",
            _fixed(summary.breaking_force_n, 2, "breaking force"),
            _fixed(summary.travel_at_break_m * 1e6, 2, "travel"),
        ]
    return frame(" ".join(["END", *fields, str(summary.sample_count)]))


# ---------------------------------------------------------------- press -> host (decoding)


def decode(raw: bytes, device: str = DEVICE) -> Message:
    """One frame from the press as a typed message; DeviceProtocolError when it does not parse.

    An ``ER`` frame is returned as :class:`ErrorReply` (not raised), because in a stream it
    ends the cycle and the caller decides; :func:`expect_ack` raises it.
    """
    body = unframe(raw, device)
    kind, _, rest = body.partition(" ")
    fields = rest.split(" ") if rest else []
    if kind == "OK" and fields and _MNEMONIC.fullmatch(fields[0]):
        return Ack(fields[0], tuple(fields[1:]))
    if kind == "D" and len(fields) == 4 and fields[3] in PHASE_LETTERS:
        return Sample(
            _number(fields[0], "sample time", device) / 1e3,
            _number(fields[1], "force", device),
            _number(fields[2], "displacement", device) / 1e6,
            PHASE_LETTERS[fields[3]],
        )
    if kind == "END" and fields:
        return _decode_summary(fields, body, device)
    if kind == "ER" and len(fields) >= 2 and _CODE.fullmatch(fields[0]):
        return ErrorReply(fields[0], fields[1], " ".join(fields[2:]))
    raise DeviceProtocolError(device, f"unexpected frame {body!r} from the press")


def _decode_summary(fields: list[str], body: str, device: str) -> Summary:
    what, values = fields[0], fields[1:]
    shapes = {"CMP": (8, ("OK", "CAP")), "EJT": (4, ("OK", "CAP")), "BRK": (4, ("OK", "NOF"))}
    if what not in shapes or len(values) != shapes[what][0] or values[0] not in shapes[what][1]:
        raise DeviceProtocolError(device, f"cycle summary {body!r} does not have the documented fields")
    flag, count = values[0], _count(values[-1], "sample count", device)
    numbers = [_number(v, "summary value", device) for v in values[1:-1]]
    if what == "CMP":
        return CompactionSummary(
            flag == "CAP", numbers[0], numbers[1] / 1e6, numbers[2] / 1e6, numbers[3] / 1e6, numbers[4],
            numbers[5], count,
        )  # fmt: skip
    if what == "EJT":
        return EjectionSummary(flag == "CAP", numbers[0], numbers[1] / 1e6, count)
    return BreakingSummary(flag == "OK", numbers[0], numbers[1] / 1e6, count)


def expect_ack(message: Message, command: str, device: str = DEVICE) -> Ack:
    """The acknowledgement of ``command``; raises the press's typed error or a protocol error."""
    if isinstance(message, ErrorReply):
        raise message.to_exception(device)
    if not isinstance(message, Ack) or message.command != command:
        raise DeviceProtocolError(device, f"expected the reply to {command}, got {message!r}")
    return message


def _fields(ack: Ack, count: int, device: str) -> tuple[str, ...]:
    if len(ack.fields) != count:
        raise DeviceProtocolError(
            device, f"reply to {ack.command} has {len(ack.fields)} fields, the protocol has {count}"
        )
    return ack.fields


def parse_identity(ack: Ack, device: str = DEVICE) -> Identity:
    model, serial, firmware, force, diameter = _fields(ack, 5, device)
    return Identity(
        model,
        serial,
        firmware,
        _number(force, "max force", device),
        _number(diameter, "punch diameter", device) / 1e3,
    )


def _state(text: str, device: str) -> PressState:
    try:
        return PressState(text)
    except ValueError:
        raise DeviceProtocolError(device, f"{text!r} is not a state of the press") from None


def _die(text: str, device: str) -> DieFill:
    try:
        return DieFill(text)
    except ValueError:
        raise DeviceProtocolError(device, f"{text!r} is not a die state of the press") from None


def _flag(text: str, true: str, false: str, device: str) -> bool:
    if text not in (true, false):
        raise DeviceProtocolError(device, f"{text!r} is neither {true} nor {false}")
    return text == true


def parse_status(ack: Ack, device: str = DEVICE) -> PressStatus:
    state, die, takeoff, door, last = _fields(ack, 5, device)
    if not _CODE.fullmatch(last):
        raise DeviceProtocolError(device, f"last error {last!r} is not a two-digit code")
    return PressStatus(
        _state(state, device),
        _die(die, device),
        _flag(takeoff, "TABLET", "CLEAR", device),
        _flag(door, "CLOSED", "OPEN", device),
        last,
    )


def parse_die(ack: Ack, device: str = DEVICE) -> DieState:
    die, takeoff = _fields(ack, 2, device)
    return DieState(_die(die, device), _flag(takeoff, "TABLET", "CLEAR", device))


def parse_target(ack: Ack, device: str = DEVICE) -> Target:
    pressure, force = _fields(ack, 2, device)
    return Target(_number(pressure, "target pressure", device) * 1e6, _number(force, "target force", device))


def parse_dwell(ack: Ack, device: str = DEVICE) -> float:
    return _number(_fields(ack, 1, device)[0], "dwell time", device)


def parse_rate(ack: Ack, device: str = DEVICE) -> int:
    return _count(_fields(ack, 1, device)[0], "sample rate", device)
