"""NE-1000 basic mode codec: the manual's formats, every refusal and alarm, fuzzing."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tablet_workcell.devices.errors import (
    DeviceBusyError,
    DeviceError,
    DeviceOutOfRangeError,
    DeviceProtocolError,
    DeviceReportedError,
)
from tablet_workcell.devices.syringe_pump import codec
from tablet_workcell.devices.syringe_pump.codec import (
    Command,
    Direction,
    PumpAlarm,
    PumpStatus,
    Rate,
    RateUnit,
    VolumeUnit,
)


# ------------------------------------------------------------------ commands (manual quick start)
@pytest.mark.parametrize(
    ("request_bytes", "expected"),
    [
        (codec.encode_set_diameter(4.78), b"0DIA 4.780\r"),
        (codec.encode_set_diameter(26.59, address=None), b"DIA 26.59\r"),
        (codec.encode_set_rate(Rate(50.0, RateUnit.UL_PER_MIN)), b"0RAT 50.00 UM\r"),
        (codec.encode_set_rate(Rate(1.5, RateUnit.ML_PER_HOUR), address=3), b"3RAT 1.500 MH\r"),
        (codec.encode_set_volume(5.0), b"0VOL 5.000\r"),
        (codec.encode_set_volume_unit(VolumeUnit.ML), b"0VOL ML\r"),
        (codec.encode_set_direction(Direction.INFUSE), b"0DIR INF\r"),
        (codec.encode_set_direction(Direction.WITHDRAW), b"0DIR WDR\r"),
        (codec.encode_clear_dispensed(Direction.INFUSE), b"0CLD INF\r"),
        (codec.encode_run(), b"0RUN\r"),
        (codec.encode_stop(), b"0STP\r"),
        (codec.encode_query("VER"), b"0VER\r"),
        (codec.encode_query("DIS", address=12), b"12DIS\r"),
        (codec.encode_query(""), b"0\r"),
    ],
)
def test_commands_are_encoded_as_the_manual_writes_them(request_bytes: bytes, expected: bytes) -> None:
    assert request_bytes == expected


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (4.78, "4.780"),
        (26.59, "26.59"),
        (123.4, "123.4"),
        (1234.0, "1234"),
        (0.0123, "0.012"),
        (0.0, "0.000"),
    ],
)
def test_numbers_have_at_most_four_digits_and_three_decimals(value: float, text: str) -> None:
    assert codec.format_number(value) == text


@pytest.mark.parametrize("value", [10000.0, -1.0, float("nan"), float("inf")])
def test_numbers_the_pump_cannot_write_are_refused_before_sending(value: float) -> None:
    with pytest.raises(DeviceOutOfRangeError, match=r"must be|does not fit"):
        codec.format_number(value, "rate")


def test_an_address_outside_the_network_range_is_refused() -> None:
    with pytest.raises(DeviceOutOfRangeError, match="between 0 and 99"):
        codec.encode("RUN", address=100)


# ------------------------------------------------------------------ replies
def test_status_only_replies_carry_the_address_and_prompt() -> None:
    for status in PumpStatus:
        reply = codec.parse_reply(b"\x0200" + status.value.encode() + b"\x03")
        assert reply == codec.Reply(0, status, None, "")
    assert codec.parse_reply(b"\x0207I\x03").address == 7


def test_query_replies_parse_into_values() -> None:
    assert codec.parse_diameter_mm(codec.parse_reply(b"\x0200S4.780\x03").data) == 4.78
    assert codec.parse_rate("50.00UM") == Rate(50.0, RateUnit.UL_PER_MIN)
    assert codec.parse_rate("1.500MH").ul_per_min == pytest.approx(25.0)
    assert codec.parse_volume("5.000UL").ul == 5.0
    assert codec.parse_volume("1.250ML").ul == 1250.0
    assert codec.parse_direction("WDR") is Direction.WITHDRAW
    dispensed = codec.parse_dispensed("I1.250W0.500ML")
    assert (dispensed.infused_ul, dispensed.withdrawn_ul) == (1250.0, 500.0)
    assert codec.parse_version("NE1000V3.928") == codec.Version("1000", "3.928")


@pytest.mark.parametrize(
    ("frame", "error", "code"),
    [
        (b"\x0200S?\x03", DeviceReportedError, "?"),
        (b"\x0200I?NA\x03", DeviceBusyError, "?NA"),
        (b"\x0200S?OOR\x03", DeviceOutOfRangeError, "?OOR"),
        (b"\x0200S?COM\x03", DeviceReportedError, "?COM"),
        (b"\x0200I?IGN\x03", DeviceReportedError, "?IGN"),
    ],
)
def test_every_refusal_raises_its_typed_error_with_the_pumps_code(
    frame: bytes, error: type[DeviceError], code: str
) -> None:
    with pytest.raises(error) as raised:
        codec.parse_reply(frame)
    assert raised.value.code == code and raised.value.device == "syringe_pump"


@pytest.mark.parametrize("alarm", list(PumpAlarm))
def test_every_alarm_is_a_reply_with_its_type(alarm: PumpAlarm) -> None:
    reply = codec.parse_reply(b"\x0200A?" + alarm.value.encode() + b"\x03")
    assert reply.alarm is alarm and reply.status is None and alarm.sentence


@pytest.mark.parametrize(
    "frame",
    [
        b"00S\x03",  # no STX
        b"\x0200S",  # no ETX (truncated)
        b"\x020S\x03",  # one-digit address
        b"\x02XXS\x03",
        b"\x0200Q\x03",  # unknown status
        b"\x0200A?Z\x03",  # unknown alarm
        b"\x0200S?XYZ\x03",  # unknown error
        b"\x0200S\xff\x03",
    ],
)
def test_malformed_replies_are_protocol_errors(frame: bytes) -> None:
    with pytest.raises(DeviceProtocolError):
        codec.parse_reply(frame)


@pytest.mark.parametrize(
    ("parser", "data"),
    [
        (codec.parse_rate, "50.00XX"),
        (codec.parse_volume, "12345UL"),
        (codec.parse_dispensed, "I1.0W"),
        (codec.parse_direction, "UP"),
        (codec.parse_version, "NE1000"),
        (codec.parse_diameter_mm, "4.7.8"),
    ],
)
def test_query_data_in_the_wrong_format_is_a_protocol_error(parser: object, data: str) -> None:
    with pytest.raises(DeviceProtocolError):
        parser(data)  # type: ignore[operator]


def test_the_tail_of_a_lost_packet_before_a_new_one_is_skipped() -> None:
    assert codec.parse_reply(b"\x0200S4.7\x0200I\x03").status is PumpStatus.INFUSING


# ------------------------------------------------------------------ the pump's side
@pytest.mark.parametrize(
    ("line", "command"),
    [
        (b"0DIA 4.78", Command(0, "DIA", "4.78")),
        (b"dia 4.78", Command(None, "DIA", "4.78")),
        (b"12 rat 50 um", Command(12, "RAT", "50UM")),
        (b"*STP", Command(-1, "STP", "")),
        (b"0", Command(0, "", "")),
        (b"VOL\tUL", Command(None, "VOL", "UL")),
    ],
)
def test_the_pump_strips_spaces_and_upper_cases(line: bytes, command: Command) -> None:
    assert codec.parse_command(line) == command


# ------------------------------------------------------------------ properties
@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=40))
def test_no_byte_sequence_crashes_the_reply_parser(data: bytes) -> None:
    for frame in (data, codec.STX + data + codec.ETX):
        try:
            reply = codec.parse_reply(frame)
        except DeviceError:
            continue
        assert isinstance(reply, codec.Reply)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=30))
def test_no_text_crashes_the_data_parsers(data: str) -> None:
    for parser in (
        codec.parse_rate,
        codec.parse_volume,
        codec.parse_dispensed,
        codec.parse_direction,
        codec.parse_version,
        codec.parse_diameter_mm,
    ):
        with contextlib.suppress(DeviceError):
            parser(data)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=40))
def test_no_line_crashes_the_pumps_command_parser(line: bytes) -> None:
    assert isinstance(codec.parse_command(line), Command)


@settings(max_examples=200, deadline=None)
@given(
    st.integers(0, 99),
    st.sampled_from([*PumpStatus, *PumpAlarm]),
    st.from_regex(r"[A-Z0-9.]{0,12}", fullmatch=True),
)
def test_replies_round_trip(address: int, status: PumpStatus | PumpAlarm, data: str) -> None:
    reply = codec.parse_reply(codec.encode_reply(address, status, data))
    assert reply.address == address
    if isinstance(status, PumpAlarm):
        assert reply.alarm is status
    else:
        assert (reply.status, reply.data) == (status, data)


@settings(max_examples=200, deadline=None)
@given(st.floats(0.0, 9999.0), st.sampled_from(list(RateUnit)), st.integers(0, 99))
def test_rate_commands_round_trip_through_the_pumps_parser(
    value: float, unit: RateUnit, address: int
) -> None:
    command = codec.parse_command(codec.encode_set_rate(Rate(value, unit), address)[:-1])
    assert (command.address, command.name) == (address, "RAT")
    assert command.argument.endswith(unit.value)
    written = codec.parse_number(command.argument[:-2])
    assert written == pytest.approx(value, abs=0.0005 + value * 1e-3)
