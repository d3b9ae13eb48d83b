"""Framing of the press protocol: ``<body>*<CRC-16 hex>\\r\\n``, checked on every frame.

CRC-16/CCITT-FALSE (polynomial 0x1021, initial value 0xFFFF, no reflection), the CRC the
NE-1000 pumps' safe mode uses; docs/devices/press.md argues it against an NMEA XOR byte.
"""

from __future__ import annotations

import binascii

from tablet_workcell.devices.errors import DeviceProtocolError
from tablet_workcell.devices.press.messages import DEVICE

TERMINATOR = b"\r\n"
MAX_BODY_CHARS = 200


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF); ``crc16(b"123456789") == 0x29B1``."""
    return binascii.crc_hqx(data, 0xFFFF)


def _printable(text: str) -> bool:
    return all(" " <= ch <= "~" for ch in text) and "*" not in text


def frame(body: str) -> bytes:
    """``body`` with its checksum and CR LF, ready for the wire."""
    if not body or len(body) > MAX_BODY_CHARS or not _printable(body):
        raise ValueError(f"a frame body must be 1..{MAX_BODY_CHARS} printable ASCII characters without '*'.")
    data = body.encode("ascii")
    return data + f"*{crc16(data):04X}".encode("ascii") + TERMINATOR


def unframe(raw: bytes, device: str = DEVICE) -> str:
    """The body of one frame (with or without its CR LF), checksum verified."""
    data = raw[:-2] if raw.endswith(TERMINATOR) else raw
    shown = bytes(raw[:80])
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise DeviceProtocolError(device, f"frame {shown!r} holds non-ASCII bytes (line noise?)") from None
    body, star, checksum = text.rpartition("*")
    if not star:
        raise DeviceProtocolError(device, f"frame {shown!r} has no '*' checksum; the line was cut or garbled")
    if "*" in body:
        raise DeviceProtocolError(
            device, f"frame {shown!r} holds two checksums: a cut line ran into the next"
        )
    if not body or len(body) > MAX_BODY_CHARS or not _printable(body):
        raise DeviceProtocolError(device, f"frame {shown!r} is not a press frame (bad characters or length)")
    if len(checksum) != 4 or any(ch not in "0123456789ABCDEFabcdef" for ch in checksum):
        raise DeviceProtocolError(device, f"frame {shown!r} has a malformed checksum {checksum!r}")
    expected = crc16(body.encode("ascii"))
    if int(checksum, 16) != expected:
        raise DeviceProtocolError(
            device, f"frame {shown!r} fails its checksum (sent {checksum}, computed {expected:04X}); garbled"
        )
    return body
