"""The press codec: every documented frame, every error code, checksum failures, fuzzing."""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tablet_workcell.devices.errors import (
    DeviceBusyError,
    DeviceError,
    DeviceOutOfRangeError,
    DeviceProtocolError,
    DeviceReportedError,
    DeviceStoppedError,
)
from tablet_workcell.devices.press import codec, codes
from tablet_workcell.devices.press.codec import (
    Ack,
    BreakingSummary,
    CompactionSummary,
    DieFill,
    EjectionSummary,
    ErrorReply,
    Phase,
    PressState,
    Sample,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "devices" / "press.md"
FRAME_IN_DOC = re.compile(r"^\s*(?:>> |<< )?([ -)+-~]+\*[0-9A-F]{4})$")


def doc_frames() -> list[str]:
    return [m.group(1) for line in DOC.read_text().splitlines() if (m := FRAME_IN_DOC.match(line))]


def test_crc_is_ccitt_false_with_its_check_value() -> None:
    assert codec.crc16(b"123456789") == 0x29B1
    assert codec.frame("123456789") == b"123456789*29B1\r\n"


def test_every_frame_in_the_reference_has_a_valid_checksum_and_parses() -> None:
    frames = doc_frames()
    assert len(frames) > 45
    for text in frames:
        raw = text.encode() + b"\r\n"
        body = codec.unframe(raw)
        if body.split(" ")[0] in {"OK", "D", "END", "ER"}:
            assert isinstance(
                codec.decode(raw), Ack | Sample | CompactionSummary | BreakingSummary | ErrorReply
            )
        else:
            assert codec.parse_command(raw).name == body.split(" ")[0]


def test_the_reference_lists_every_error_code_with_its_mnemonic() -> None:
    text = DOC.read_text()
    for code, info in codes.ERRORS.items():
        assert re.search(rf"^\| {code} \| {info.mnemonic} \|", text, re.MULTILINE), code
        assert info.kind.__name__ in text


@pytest.mark.parametrize(
    ("encoded", "expected"),
    [
        (codec.encode_identify(), b"IDN*27A2\r\n"),
        (codec.encode_status(), b"STA*519C\r\n"),
        (codec.encode_die_query(), b"DIE*A2C4\r\n"),
        (codec.encode_target_pressure(150e6), b"TGT P 150.00*80FF\r\n"),
        (codec.encode_target_force(7539.8), b"TGT F 7539.8*4C3A\r\n"),
        (codec.encode_target_query(), b"TGT*C0B8\r\n"),
        (codec.encode_dwell(2.0), b"DWL 2.000*46AD\r\n"),
        (codec.encode_rate(250), b"RATE 250*04C3\r\n"),
        (codec.encode_compact(), b"CMP*A904\r\n"),
        (codec.encode_eject(), b"EJT*C2B7\r\n"),
        (codec.encode_breaking_test(), b"BRK*2E23\r\n"),
        (codec.encode_breaking_test(500e-6), b"BRK 500*605F\r\n"),
        (codec.encode_stop(), b"STP*538C\r\n"),
        (codec.encode_clear(), b"CLR*BA77\r\n"),
    ],
)
def test_commands_encode_as_documented(encoded: bytes, expected: bytes) -> None:
    assert encoded == expected


def ack(text: str) -> Ack:
    message = codec.decode(codec.frame(text))
    assert isinstance(message, Ack)
    return message


def test_replies_parse_into_si_values() -> None:
    identity = codec.parse_identity(
        codec.expect_ack(codec.decode(b"OK IDN TWC-MP20 MP20-0417 1.3.0 20000 8.00*A4A5\r\n"), "IDN")
    )
    assert (identity.model, identity.serial, identity.firmware) == ("TWC-MP20", "MP20-0417", "1.3.0")
    assert identity.max_force_n == 20000.0 and identity.punch_diameter_m == pytest.approx(8e-3)
    assert identity.max_pressure_pa == pytest.approx(397.887e6, rel=1e-5)
    status = codec.parse_status(ack("OK STA FAULT PRESSED CLEAR CLOSED 11"))
    assert status.state is PressState.FAULT and status.die is DieFill.PRESSED
    assert not status.takeoff_occupied and status.door_closed and status.last_error == "11"
    die = codec.parse_die(ack("OK DIE FILLED TABLET"))
    assert die.die is DieFill.FILLED and die.takeoff_occupied
    target = codec.parse_target(ack("OK TGT 150.00 7539.8"))
    assert target.pressure_pa == pytest.approx(150e6) and target.force_n == pytest.approx(7539.8)
    assert codec.parse_dwell(ack("OK DWL 2.000")) == 2.0
    assert codec.parse_rate(ack("OK RATE 250")) == 250


def same(decoded: object, expected: object) -> bool:
    """Equal type and fields, numbers within float rounding of the unit conversion."""
    if type(decoded) is not type(expected):
        return False
    return bool(vars(decoded) == pytest.approx(vars(expected), rel=1e-12, abs=1e-15))


def test_stream_lines_parse() -> None:
    raw_sample = b"D 2218.685 7541.56 4437.58 L*9493\r\n"
    assert same(codec.decode(raw_sample), Sample(2.218685, 7541.56, 4437.58e-6, Phase.LOADING))
    summary = codec.decode(b"END CMP OK 7547.54 1408.81 5855.57 1476.18 26.80 0.500 832*4632\r\n")
    assert same(
        summary, CompactionSummary(False, 7547.54, 1408.81e-6, 5855.57e-6, 1476.18e-6, 26.8, 0.5, 832)
    )
    breaking = codec.decode(b"END BRK OK 121.99 69.57 101*1D53\r\n")
    assert same(breaking, BreakingSummary(True, 121.99, 69.57e-6, 101))
    ejection = codec.decode(codec.frame("END EJT CAP 12.50 1500.00 40"))
    assert same(ejection, EjectionSummary(True, 12.5, 1500e-6, 40))
    assert same(
        codec.decode(codec.frame("END BRK NOF 0.80 40.00 50")), BreakingSummary(False, 0.8, 40e-6, 50)
    )


@pytest.mark.parametrize("code", sorted(codes.ERRORS))
def test_every_error_code_becomes_its_typed_error(code: str) -> None:
    info = codes.ERRORS[code]
    message = codec.decode(codec.reply_error(code, "detail text"))
    assert message == ErrorReply(code, info.mnemonic, "detail text")
    with pytest.raises(info.kind) as caught:
        codec.expect_ack(message, "CMP")
    assert caught.value.code == code and caught.value.device == "press"
    assert "detail text" in str(caught.value) and info.action in str(caught.value)


def test_error_classes_of_the_codes_a_node_acts_on() -> None:
    def error_of(code: str) -> DeviceError:
        reply = codec.decode(codec.reply_error(code))
        assert isinstance(reply, ErrorReply)
        return reply.to_exception()

    assert isinstance(error_of(codes.RANGE), DeviceOutOfRangeError)
    assert isinstance(error_of(codes.BUSY), DeviceBusyError)
    assert isinstance(error_of(codes.ABORTED), DeviceStoppedError)
    for code in (codes.INTERLOCK, codes.OVERLOAD, codes.MOTION):
        assert isinstance(error_of(code), DeviceReportedError) and codes.ERRORS[code].latches
    assert isinstance(error_of(codes.CHECKSUM), DeviceProtocolError)


def test_an_unknown_error_code_is_still_a_device_error_with_its_code() -> None:
    reply = codec.decode(codec.frame("ER 77 NEWTHING"))
    assert isinstance(reply, ErrorReply)
    error = reply.to_exception()
    assert type(error) is DeviceError and error.code == "77" and "NEWTHING" in str(error)


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        (b"OK STP*F4CB\r\n", "fails its checksum"),
        (b"OK STQ*F4CA\r\n", "fails its checksum"),
        (b"OK STP\r\n", "no '\\*' checksum"),
        (b"OK STP*F4C\r\n", "malformed checksum"),
        (b"OK STP*F4CG\r\n", "malformed checksum"),
        (b"OK ST\xd0*F4CA\r\n", "non-ASCII"),
        (b"*F4CA\r\n", "not a press frame"),
        (b"D 1.0 2.0 3.0 L*0000D 1.0 2.0 3.0 L*0000\r\n", "two checksums"),
    ],
)
def test_checksum_failures_are_protocol_errors(raw: bytes, match: str) -> None:
    with pytest.raises(DeviceProtocolError, match=match):
        codec.decode(raw)


def test_the_crc_catches_a_digit_transposition_an_xor_would_miss() -> None:
    good, swapped = b"TGT F 7539.8", b"TGT F 7593.8"
    xor = [0, 0]
    for i, body in enumerate((good, swapped)):
        for byte in body:
            xor[i] ^= byte
    assert xor[0] == xor[1]
    assert codec.crc16(good) != codec.crc16(swapped)
    forged = swapped + b"*" + f"{codec.crc16(good):04X}".encode() + b"\r\n"
    with pytest.raises(DeviceProtocolError, match="fails its checksum"):
        codec.parse_command(forged)


def test_lower_case_checksums_are_accepted() -> None:
    assert codec.decode(b"OK STP*f4ca\r\n") == Ack("STP", ())


def test_the_press_reads_commands_and_refuses_bad_frames_with_its_codes() -> None:
    assert codec.parse_command(b"TGT P 150.00*80FF") == codec.Command("TGT", ("P", "150.00"))
    with pytest.raises(DeviceProtocolError) as bad_crc:
        codec.parse_command(b"TGT P 150.00*80FE")
    assert bad_crc.value.code == codes.CHECKSUM
    with pytest.raises(DeviceProtocolError) as double_space:
        codec.parse_command(codec.frame("TGT  P 1"))
    assert double_space.value.code == codes.SYNTAX


@pytest.mark.parametrize(
    "text",
    [
        "OK IDN TWC-MP20 MP20-0417 1.3.0 20000",  # a field short
        "OK STA IDLE FILLED CLEAR CLOSED",
        "OK STA SLEEPING FILLED CLEAR CLOSED 00",
        "OK STA IDLE FULL CLEAR CLOSED 00",
        "OK STA IDLE FILLED MAYBE CLOSED 00",
        "OK STA IDLE FILLED CLEAR CLOSED 1",
        "OK TGT 1e3 7539.8",
        "OK RATE -250",
    ],
)
def test_malformed_replies_are_protocol_errors(text: str) -> None:
    parse = {
        "IDN": codec.parse_identity,
        "STA": codec.parse_status,
        "TGT": codec.parse_target,
        "RATE": codec.parse_rate,
    }[text.split(" ")[1]]
    with pytest.raises(DeviceProtocolError):
        parse(ack(text))


@pytest.mark.parametrize(
    "text",
    [
        "D 1.0 2.0 3.0 X",
        "D 1.0 2.0 L",
        "D 1.0 nan 3.0 L",
        "END CMP OK 1 2 3",
        "END XYZ OK 1 2 3",
        "ER 3 RANGE",
        "HELLO",
    ],
)
def test_unexpected_frames_are_protocol_errors(text: str) -> None:
    with pytest.raises(DeviceProtocolError):
        codec.decode(codec.frame(text))


def test_a_reply_to_another_command_is_refused() -> None:
    with pytest.raises(DeviceProtocolError, match="expected the reply to STA"):
        codec.expect_ack(Ack("IDN", ()), "STA")


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_values_are_never_encoded(value: float) -> None:
    with pytest.raises(DeviceOutOfRangeError):
        codec.encode_target_pressure(value)
    with pytest.raises(DeviceOutOfRangeError):
        codec.encode_dwell(value)


# ---------------------------------------------------------------- properties

BODY = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E, exclude_characters="*"),
    min_size=1,
    max_size=200,
)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_no_byte_sequence_crashes_the_parsers(raw: bytes) -> None:
    for parse in (codec.decode, codec.parse_command, codec.unframe):
        with contextlib.suppress(DeviceError):
            parse(raw)


@settings(max_examples=200, deadline=None)
@given(BODY)
def test_well_framed_bodies_never_crash_the_decoder(body: str) -> None:
    try:
        message = codec.decode(codec.frame(body))
    except DeviceError:
        return
    if isinstance(message, Ack):
        for parse in (codec.parse_identity, codec.parse_status, codec.parse_die, codec.parse_target):
            with contextlib.suppress(DeviceError):
                parse(message)


@settings(max_examples=200, deadline=None)
@given(BODY)
def test_frame_round_trips(body: str) -> None:
    assert codec.unframe(codec.frame(body)) == body
    assert codec.unframe(codec.frame(body)[:-2]) == body


FINITE = st.floats(min_value=-1e5, max_value=1e5, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(st.floats(0.0, 1e4), FINITE, st.floats(-1e-1, 1e-1), st.sampled_from(list(Phase)))
def test_samples_round_trip_within_the_wire_resolution(t: float, f: float, x: float, phase: Phase) -> None:
    decoded = codec.decode(codec.reply_sample(Sample(t, f, x, phase)))
    assert isinstance(decoded, Sample) and decoded.phase is phase
    assert decoded.time_s == pytest.approx(t, abs=0.51e-6)
    assert decoded.force_n == pytest.approx(f, abs=0.0051)
    assert decoded.displacement_m == pytest.approx(x, abs=0.0051e-6)


@settings(max_examples=200, deadline=None)
@given(st.booleans(), st.lists(st.floats(0.0, 1e4), min_size=6, max_size=6), st.integers(0, 10**6))
def test_summaries_round_trip(flag: bool, values: list[float], count: int) -> None:
    summaries: list[codec.Summary] = [
        CompactionSummary(flag, values[0], values[1] * 1e-6, values[2] * 1e-6, values[3] * 1e-6, values[4],
                          round(values[5] / 1e3, 3), count),
        EjectionSummary(flag, values[0], values[1] * 1e-6, count),
        BreakingSummary(flag, values[0], values[1] * 1e-6, count),
    ]  # fmt: skip
    for summary in summaries:
        decoded = codec.decode(codec.reply_summary(summary))
        assert type(decoded) is type(summary)
        for name, value in vars(summary).items():
            assert getattr(decoded, name) == pytest.approx(value, abs=0.006)


@settings(max_examples=200, deadline=None)
@given(st.floats(1e6, 400e6), st.floats(0.0, 60.0))
def test_commands_round_trip_through_the_press_side_parser(pressure_pa: float, dwell_s: float) -> None:
    target = codec.parse_command(codec.encode_target_pressure(pressure_pa))
    assert target.name == "TGT" and float(target.args[1]) * 1e6 == pytest.approx(pressure_pa, abs=0.0051e6)
    dwell = codec.parse_command(codec.encode_dwell(dwell_s))
    assert float(dwell.args[0]) == pytest.approx(dwell_s, abs=0.00051)
