"""Dosing-head bus codec: the documented exchanges, every error code, CRC, fuzzing, round trips."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tablet_workcell.devices.dosing import codec
from tablet_workcell.devices.dosing.codec import FeederJamError, HopperEmptyError
from tablet_workcell.devices.errors import (
    DeviceBusyError,
    DeviceError,
    DeviceOutOfRangeError,
    DeviceProtocolError,
    DeviceReportedError,
)


def test_crc8_check_value() -> None:
    assert codec.crc8(b"123456789") == 0xF4  # CRC-8/SMBUS check value
    assert codec.crc8(b"") == 0


def test_documented_requests() -> None:
    assert codec.encode_request(1, "STA") == b">01 STA*" + b"%02X" % codec.crc8(b"01 STA") + b"\r\n"
    assert (
        codec.encode_run(1, 12.5)
        == b">01 RUN 12.50 MGS*" + b"%02X" % codec.crc8(b"01 RUN 12.50 MGS") + b"\r\n"
    )
    assert codec.encode_run(2, 50, "PCT").startswith(b">02 RUN 50.00 PCT*")
    assert codec.encode_request(0, "STP").startswith(b">00 STP*")  # broadcast
    for frame in [b">01 IDN*01\r\n", b">01 STP*29\r\n", b">01 CLR*7A\r\n"]:  # examples in the doc
        request = codec.parse_request(frame)
        assert codec.encode_request(request.address, request.command, *request.args) == frame


def test_requests_are_checked_before_they_are_sent() -> None:
    with pytest.raises(DeviceProtocolError, match="not one of"):
        codec.encode_request(1, "FEED")
    with pytest.raises(DeviceOutOfRangeError, match="address 32"):
        codec.encode_request(32, "STA")
    with pytest.raises(DeviceOutOfRangeError, match="must be 0 or more"):
        codec.encode_run(1, -1.0)
    with pytest.raises(DeviceOutOfRangeError):
        codec.encode_run(1, float("nan"))
    with pytest.raises(DeviceProtocolError, match="without spaces"):
        codec.encode_request(1, "RUN", "1 2", "MGS")


def reply(body: str) -> bytes:
    return f"<{body}*{codec.crc8(body.encode()):02X}\r\n".encode()


def test_documented_replies() -> None:
    identity = codec.parse_identity(codec.parse_reply(reply("01 IDN A DH-20 SN-0001 1.3.0 lactose 20.00")))
    assert identity == codec.HeadIdentity("DH-20", "SN-0001", "1.3.0", "lactose", 20.0)
    assert codec.parse_rate(codec.parse_reply(reply("01 RUN A 12.50"))) == 12.5
    status = codec.parse_status(codec.parse_reply(reply("01 STA A F 12.50 4987.31 12.69 00")))
    assert status.state == "feeding" and status.rate_mg_per_s == 12.5
    assert status.hopper_mass_kg == pytest.approx(4987.31e-6) and status.total_fed_kg == pytest.approx(
        12.69e-6
    )
    idle = codec.parse_status(codec.parse_reply(reply("03 STA A I 0.00 0.00 5000.00 00")))
    assert idle.state == "idle"
    error = codec.parse_status(codec.parse_reply(reply("01 STA A E 0.00 0.00 5000.00 10")))
    assert error.state == "error" and error.error_code == "10"
    assert codec.parse_reply(reply("01 STP A")).accepted


@pytest.mark.parametrize(
    ("code", "error", "words"),
    [
        ("01", DeviceReportedError, "unknown command"),
        ("02", DeviceReportedError, "malformed parameters"),
        ("03", DeviceOutOfRangeError, "rate out of range"),
        ("04", DeviceReportedError, "checksum mismatch"),
        ("05", DeviceBusyError, "error state"),
        ("08", DeviceReportedError, "drive fault"),
        ("10", HopperEmptyError, "hopper empty"),
        ("11", FeederJamError, "jammed"),
        ("99", DeviceReportedError, "undocumented"),
    ],
)
def test_every_error_code_is_typed(code: str, error: type[Exception], words: str) -> None:
    parsed = codec.parse_reply(reply(f"01 RUN E{code}"))
    assert not parsed.accepted and parsed.error_code == code
    with pytest.raises(error, match=words) as raised:
        codec.parse_rate(parsed)
    assert isinstance(raised.value, DeviceError) and raised.value.code == f"E{code}"
    assert "head 01 refused RUN" in str(raised.value)


def test_unknown_commands_are_echoed_in_the_error_reply() -> None:
    parsed = codec.parse_reply(reply("01 FEED E01"))
    assert parsed.command == "FEED" and parsed.error_code == "01"


@pytest.mark.parametrize(
    ("frame", "words"),
    [
        (reply("01 STA A F 12.50 4987.31 12.69 00").replace(b"12.50", b"13.50"), "fails its checksum"),
        (b"<01 STA A*ZZ\r\n", "is not"),
        (reply("01 STA A F 12.50 4987.31 12.69 00")[:-8] + b"\r\n", "is not"),
        (reply("01 STA"), "does not name a command and a status"),
        (reply("01 STA X"), "is not '<command> A"),
        (reply("01 STA A Q 1 2 3 00"), "STA reply needs"),
        (reply("01 STA A F 1 x 3 00"), "not numbers"),
        (reply("01 STA A F 1 2 3 0"), "not two digits"),
        (reply("01 STA A F 1 2 1e99 00"), "sensible range"),
        (reply("01 IDN A DH-20 SN 1.0 lactose"), "IDN reply needs"),
        (reply("01 RUN A"), "RUN reply needs"),
        (b">01 STA*" + b"%02X" % codec.crc8(b"01 STA") + b"\r\n", "is not '<AA"),  # a request, not a reply
        (b"<01 STA A\xff*00\r\n", "non-printable"),
    ],
)
def test_damaged_replies_are_protocol_errors(frame: bytes, words: str) -> None:
    with pytest.raises(DeviceProtocolError, match=words):
        parsed = codec.parse_reply(frame)
        {"STA": codec.parse_status, "IDN": codec.parse_identity, "RUN": codec.parse_rate}[parsed.command](
            parsed
        )


def test_checksum_failures_carry_the_crc_code() -> None:
    with pytest.raises(DeviceProtocolError) as raised:
        codec.parse_request(b">01 STA*00\r\n")
    assert raised.value.code == "CRC"


def test_head_side_encoders() -> None:
    assert codec.encode_reply(1, "STP") == reply("01 STP A")
    assert codec.encode_error_reply(2, "RUN", "10") == reply("02 RUN E10")
    with pytest.raises(DeviceProtocolError, match="two digits"):
        codec.encode_error_reply(2, "RUN", "1")


def parse_any(data: bytes) -> object:
    parsed = codec.parse_reply(data)
    return {"STA": codec.parse_status, "IDN": codec.parse_identity, "RUN": codec.parse_rate}.get(
        parsed.command, codec.raise_for_error
    )(parsed)


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=60), head_side=st.booleans())
def test_no_byte_sequence_crashes_a_parser(data: bytes, head_side: bool) -> None:
    with contextlib.suppress(DeviceError):
        codec.parse_request(data) if head_side else parse_any(data)


WORD = st.text(alphabet=st.sampled_from("AEFIRSTNUDLCP0123456789.-_"), min_size=1, max_size=8)


@settings(max_examples=200, deadline=None)
@given(address=st.integers(0, 31), words=st.lists(WORD, min_size=1, max_size=6))
def test_well_framed_junk_never_crashes_a_parser(address: int, words: list[str]) -> None:
    body = f"{address:02d} " + " ".join(words)
    with contextlib.suppress(DeviceError):
        parse_any(f"<{body}*{codec.crc8(body.encode()):02X}\r\n".encode())


@settings(max_examples=200, deadline=None)
@given(
    address=st.integers(1, 31),
    state=st.sampled_from(sorted(codec.STATES)),
    rate=st.floats(0, 1000, allow_nan=False),
    hopper=st.floats(0, 1e6, allow_nan=False),
    total=st.floats(0, 1e6, allow_nan=False),
    error=st.integers(0, 99),
)
def test_status_round_trips(
    address: int, state: str, rate: float, hopper: float, total: float, error: int
) -> None:
    fields = (state, f"{rate:.2f}", f"{hopper:.2f}", f"{total:.2f}", f"{error:02d}")
    status = codec.parse_status(codec.parse_reply(codec.encode_reply(address, "STA", fields)))
    assert status.state == codec.STATES[state] and status.error_code == f"{error:02d}"
    assert status.rate_mg_per_s == pytest.approx(rate, abs=0.006)
    assert status.hopper_mass_kg == pytest.approx(hopper * 1e-6, abs=0.006e-6)


@settings(max_examples=200, deadline=None)
@given(
    address=st.integers(0, 31),
    rate=st.floats(0, 99999, allow_nan=False),
    unit=st.sampled_from(codec.RATE_UNITS),
)
def test_run_requests_round_trip(address: int, rate: float, unit: str) -> None:
    request = codec.parse_request(codec.encode_run(address, rate, unit))  # type: ignore[arg-type]
    assert request.address == address and request.command == "RUN"
    assert float(request.args[0]) == pytest.approx(rate, abs=0.006) and request.args[1] == unit
