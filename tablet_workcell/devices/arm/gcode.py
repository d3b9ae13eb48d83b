"""G-code lines as a Marlin host sends them and as Marlin's command queue reads them.

A host numbers its lines and appends a checksum, ``N12 G1 X10*85``: the checksum is the
XOR of every byte before ``*``, so a byte damaged on the wire is caught and Marlin asks
for the line again (``Resend: 12``). ``M110 N0`` sets the line number. Words are a letter
and a number (``X120.5``); a letter alone is a flag (``M114 R``). Pure functions only.
"""

from __future__ import annotations

import enum
import math
import re
from dataclasses import dataclass, field

from tablet_workcell.devices.errors import DeviceOutOfRangeError, DeviceProtocolError

DEVICE = "arm"
EOL = b"\n"
_WORD = re.compile(r"([A-Z])\s*([-+]?(?:\d+\.?\d*|\.\d+))?")


def checksum(text: str) -> int:
    """Marlin's line checksum: XOR of the bytes before ``*``."""
    value = 0
    for byte in text.encode("ascii", errors="replace"):
        value ^= byte
    return value


def encode_line(command: str, line_number: int | None = None) -> bytes:
    """``N<n> <command>*<checksum>`` + newline, or the bare command when unnumbered."""
    if not command or "\n" in command or "*" in command or not command.isascii():
        raise DeviceProtocolError(
            DEVICE, f"G-code command {command!r} must be one line of ASCII without '*'."
        )
    if line_number is None:
        return command.encode("ascii") + EOL
    body = f"N{line_number} {command}"
    return f"{body}*{checksum(body)}".encode("ascii") + EOL


def format_number(value_mm: float) -> str:
    """Coordinates with 3 decimals (µm), as hosts write them."""
    if not math.isfinite(value_mm):
        raise DeviceOutOfRangeError(DEVICE, f"coordinate {value_mm!r} must be a finite number.")
    text = f"{value_mm:.3f}"
    return "0.000" if text == "-0.000" else text


def format_move(
    x_mm: float | None = None,
    y_mm: float | None = None,
    z_mm: float | None = None,
    feed_mm_per_min: float | None = None,
    rapid: bool = False,
) -> str:
    """``G1 X.. Y.. Z.. F..`` (``G0`` when ``rapid``); omitted axes do not move."""
    words = ["G0" if rapid else "G1"]
    for letter, value in (("X", x_mm), ("Y", y_mm), ("Z", z_mm)):
        if value is not None:
            words.append(letter + format_number(value))
    if feed_mm_per_min is not None:
        if not math.isfinite(feed_mm_per_min) or feed_mm_per_min <= 0.0:
            raise DeviceOutOfRangeError(DEVICE, f"feed rate {feed_mm_per_min!r} mm/min must be above 0.")
        words.append(f"F{feed_mm_per_min:.1f}")
    return " ".join(words)


class LineError(enum.Enum):
    """Why Marlin refuses a numbered line; the value is Marlin's message."""

    CHECKSUM_MISMATCH = "checksum mismatch"
    NO_CHECKSUM = "No Checksum with line number"
    NO_LINE_NUMBER = "No Line Number with checksum"
    LINE_NUMBER = "Line Number is not Last Line Number+1"


@dataclass(frozen=True)
class GcodeLine:
    """One line as the firmware reads it: the command (``G1``, ``M114``) and its words."""

    command: str
    words: dict[str, float | None] = field(default_factory=dict)
    line_number: int | None = None
    text: str = ""  # the command and its words, without number, checksum and comment
    error: LineError | None = None

    def value(self, letter: str, default: float | None = None) -> float | None:
        found = self.words.get(letter, default)
        return default if found is None else found

    def has(self, letter: str) -> bool:
        return letter in self.words


def parse_line(raw: bytes) -> GcodeLine:
    """Parse a line the way Marlin's queue does: line number and checksum first, comments dropped."""
    text = raw.decode("ascii", errors="replace").strip()
    line_number: int | None = None
    error: LineError | None = None
    star = text.rfind("*")
    checksum_ok = False
    if star >= 0:
        body, given = text[:star], text[star + 1 :].strip()
        checksum_ok = given.isdigit() and int(given) == checksum(body)
        text = body
    match = re.match(r"^N\s*(\d+)\s*", text)
    if match:  # Marlin: the line number, then the checksum, must both be there and right
        line_number = int(match.group(1))
        text = text[match.end() :]
        if star < 0:
            error = LineError.NO_CHECKSUM
        elif not checksum_ok:
            error = LineError.CHECKSUM_MISMATCH
    elif star >= 0:
        error = LineError.NO_LINE_NUMBER
    text = text.split(";", 1)[0].strip()
    upper = text.upper()
    command_match = re.match(r"^([GMT])\s*(\d+)(?:\.\d+)?", upper)
    if command_match is None:
        return GcodeLine(upper.split(" ", 1)[0] if upper else "", {}, line_number, text, error)
    command = command_match.group(1) + str(int(command_match.group(2)))
    rest = upper[command_match.end() :]
    words: dict[str, float | None] = {}
    for letter, number in _WORD.findall(rest):
        try:
            words[letter] = float(number) if number else None
        except ValueError:
            words[letter] = None
    return GcodeLine(command, words, line_number, text, error)


def command_text(line: GcodeLine) -> str:
    """The command's own text after its code (M118's message, for example)."""
    match = re.match(r"^[GMTgmt]\s*\d+(?:\.\d+)?\s?", line.text)
    return line.text[match.end() :] if match else line.text
