"""MT-SICS codec: every documented reply layout and error, fuzzing, encode -> parse round trips."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tablet_workcell.devices.balance import codec
from tablet_workcell.devices.errors import (
    DeviceBusyError,
    DeviceError,
    DeviceOutOfRangeError,
    DeviceProtocolError,
    DeviceReportedError,
)


@pytest.mark.parametrize("command", codec.COMMANDS)
def test_commands_are_upper_case_ascii_ended_by_cr_lf(command: codec.Command) -> None:
    assert codec.encode_command(command) == command.encode() + b"\r\n"


def test_commands_outside_the_subset_are_refused() -> None:
    with pytest.raises(DeviceProtocolError, match="not in the MT-SICS subset"):
        codec.encode_command("SIR")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("reply", "stable", "mass_kg", "unit"),
    [
        (b"S S     100.00 g\r\n", True, 0.1, "g"),  # the manual's example
        (b"S D     100.00 g\r\n", False, 0.1, "g"),  # SI while the reading moves
        (b"S S    0.02001 g\r\n", True, 20.01e-6, "g"),
        (b"S S   -0.00012 g\r\n", True, -0.12e-6, "g"),
        (b"S S      20.01 mg\r\n", True, 20.01e-6, "mg"),
        (b"S S     1.2345 kg\r\n", True, 1.2345, "kg"),
        (b"S S 0.5 g\r\n", True, 0.5e-3, "g"),  # narrower field from other firmware
        (b"S S     100.00 g  \r\n", True, 0.1, "g"),  # unit padded to three characters
    ],
)
def test_weight_replies(reply: bytes, stable: bool, mass_kg: float, unit: str) -> None:
    parsed = codec.parse_weight(reply)
    assert parsed.stable is stable and parsed.unit == unit
    assert parsed.mass_kg == pytest.approx(mass_kg, rel=1e-12)


@pytest.mark.parametrize(
    ("reply", "error", "code"),
    [
        (b"S I\r\n", DeviceBusyError, "S I"),
        (b"S +\r\n", DeviceOutOfRangeError, "S +"),
        (b"S -\r\n", DeviceOutOfRangeError, "S -"),
        (b"ES\r\n", DeviceReportedError, "ES"),
        (b"ET\r\n", DeviceReportedError, "ET"),
        (b"EL\r\n", DeviceReportedError, "EL"),
    ],
)
def test_weight_error_replies_carry_the_balances_code(
    reply: bytes, error: type[Exception], code: str
) -> None:
    with pytest.raises(error) as raised:
        codec.parse_weight(reply)
    assert isinstance(raised.value, DeviceError) and raised.value.code == code
    assert "balance:" in str(raised.value)


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (b"S I\r\n", "stability was not reached"),
        (b"S +\r\n", "overload"),
        (b"S -\r\n", "underload"),
        (b"ES\r\n", "syntax error"),
        (b"ET\r\n", "transmission error"),
        (b"EL\r\n", "logical error"),
    ],
)
def test_error_messages_say_what_happened(reply: bytes, message: str) -> None:
    with pytest.raises(DeviceError, match=message):
        codec.parse_weight(reply)


def test_zero_replies() -> None:
    codec.parse_zero(b"Z A\r\n")  # Z A: zero set, nothing to return
    for reply, error, words in [
        (b"Z I\r\n", DeviceBusyError, "zero setting not performed"),
        (b"Z +\r\n", DeviceOutOfRangeError, "upper limit of the zero setting range"),
        (b"Z -\r\n", DeviceOutOfRangeError, "lower limit of the zero setting range"),
        (b"EL\r\n", DeviceReportedError, "logical error"),
    ]:
        with pytest.raises(error, match=words):
            codec.parse_zero(reply)
    with pytest.raises(DeviceProtocolError, match="not a reply to Z"):
        codec.parse_zero(b"T A\r\n")


def test_tare_replies() -> None:
    tare = codec.parse_tare(b"T S     100.00 g\r\n")
    assert tare.stable and tare.mass_kg == pytest.approx(0.1)
    for reply, error, words in [
        (b"T I\r\n", DeviceBusyError, "taring not performed"),
        (b"T +\r\n", DeviceOutOfRangeError, "upper limit of the taring range"),
        (b"T -\r\n", DeviceOutOfRangeError, "lower limit of the taring range"),
    ]:
        with pytest.raises(error, match=words):
            codec.parse_tare(reply)
    with pytest.raises(DeviceProtocolError, match="not a 'T' weight reply"):
        codec.parse_tare(b"S S     100.00 g\r\n")


def test_text_replies_and_the_reset_reply() -> None:
    assert codec.parse_text(b'I4 A "0123456789"\r\n', "I4") == "0123456789"
    assert codec.parse_text(b'I3 A "1.10 18.6.4.1361.772"\r\n', "I3") == "1.10 18.6.4.1361.772"
    text = codec.parse_text(b'I2 A "WXS205SDU WXA-Bridge 220.00900 g"\r\n', "I2")
    data = codec.parse_balance_data(text)
    assert data.model == "WXS205SDU WXA-Bridge" and data.capacity_kg == pytest.approx(0.2200090)
    with pytest.raises(DeviceBusyError):
        codec.parse_text(b"I4 I\r\n", "I4")
    with pytest.raises(DeviceProtocolError, match=r'is not I2 A "<text>"'):
        codec.parse_text(b'I4 A "0123456789"\r\n', "I2")
    with pytest.raises(DeviceProtocolError, match="is not '<type> <capacity> <unit>'"):
        codec.parse_balance_data("XS205")
    with pytest.raises(DeviceProtocolError, match="positive mass"):
        codec.parse_balance_data("XS205 220 lb")


@pytest.mark.parametrize(
    ("reply", "words"),
    [
        (b"S S     100.00 lb\r\n", "unit 'lb'"),
        (b"S S     1OO.00 g\r\n", "not a 'S' weight reply"),
        (b"S S\r\n", "not a 'S' weight reply"),
        (b"S S     100.00 g\r\x00\n", "stray line break|non-ASCII"),
        (b"S S \xb5100.00 g\r\n", "non-ASCII"),
        (b"", "not a 'S' weight reply"),
    ],
)
def test_damaged_replies_are_protocol_errors(reply: bytes, words: str) -> None:
    with pytest.raises(DeviceProtocolError, match=words):
        codec.parse_weight(reply)


def test_reply_encoders_match_the_manual_layout() -> None:
    assert codec.encode_weight_reply("S", True, 100.0, "g", 2) == b"S S     100.00 g\r\n"
    assert codec.encode_weight_reply("S", False, -0.0001, "g", 2) == b"S D       0.00 g\r\n"
    assert codec.encode_status_reply("Z", "A") == b"Z A\r\n"
    assert codec.encode_text_reply("I4", "B021002593") == b'I4 A "B021002593"\r\n'
    assert codec.encode_error("ES") == b"ES\r\n"
    with pytest.raises(DeviceProtocolError, match="does not fit"):
        codec.format_value(123456789.5, 2)
    with pytest.raises(DeviceProtocolError, match="double quote"):
        codec.encode_text_reply("I4", 'a"b')


PARSERS: list[Callable[[bytes], object]] = [
    codec.parse_weight,
    codec.parse_tare,
    codec.parse_zero,
    lambda data: codec.parse_text(data, "I4"),
    lambda data: codec.parse_balance_data(data.decode("latin-1")),
]


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=40), parser=st.sampled_from(PARSERS))
def test_no_byte_sequence_crashes_a_parser(data: bytes, parser: Callable[[bytes], object]) -> None:
    with contextlib.suppress(DeviceError):
        parser(data)


@settings(max_examples=200, deadline=None)
@given(
    text=st.text(alphabet=st.sampled_from("SDIZTA+-0123456789. gm\"E4'"), max_size=24),
    parser=st.sampled_from(PARSERS),
)
def test_reply_like_text_never_crashes_a_parser(text: str, parser: Callable[[bytes], object]) -> None:
    with contextlib.suppress(DeviceError):
        parser(text.encode() + b"\r\n")


@settings(max_examples=200, deadline=None)
@given(
    identifier=st.sampled_from(["S", "T"]),
    stable=st.booleans(),
    unit=st.sampled_from(sorted(codec.UNIT_KG)),
    decimals=st.integers(0, 5),
    value=st.floats(-9999.0, 9999.0, allow_nan=False),
)
def test_weight_replies_round_trip(
    identifier: str, stable: bool, unit: str, decimals: int, value: float
) -> None:
    assume(len(f"{value:.{decimals}f}") <= codec.VALUE_WIDTH)  # what a balance can display
    encoded = codec.encode_weight_reply(identifier, stable, value, unit, decimals)  # type: ignore[arg-type]
    parsed = (codec.parse_weight if identifier == "S" else codec.parse_tare)(encoded)
    assert parsed.unit == unit and parsed.value == pytest.approx(round(value, decimals), abs=10**-decimals)
    assert parsed.stable is stable
    assert len(encoded.decode().split(" ", 2)[2].rsplit(" ", 1)[0]) == codec.VALUE_WIDTH


@settings(max_examples=200, deadline=None)
@given(text=st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E, exclude_characters='"')))
def test_text_replies_round_trip(text: str) -> None:
    assert codec.parse_text(codec.encode_text_reply("I4", text), "I4") == text
