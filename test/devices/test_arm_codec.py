"""Marlin G-code lines and replies: documented examples, every error line, fuzzing."""

from __future__ import annotations

import functools
import operator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tablet_workcell.devices.arm import codec, gcode
from tablet_workcell.devices.arm.gcode import LineError
from tablet_workcell.devices.arm.motion import plan_move
from tablet_workcell.devices.errors import DeviceOutOfRangeError, DeviceProtocolError


# ------------------------------------------------------------------ host -> firmware
def test_a_captured_host_trace_is_reproduced_byte_for_byte() -> None:
    # A host talking to Marlin, as captured on 3dprinting.stackexchange.com question 3118.
    lines = [gcode.encode_line(cmd, n) for n, cmd in enumerate(["M106", "G28", "M107"])]
    assert lines == [b"N0 M106*36\n", b"N1 G28*18\n", b"N2 M107*39\n"]
    assert all(gcode.parse_line(raw).error is None for raw in lines)


@settings(max_examples=200, deadline=None)
@given(
    st.from_regex(r"[GM][0-9]{1,3}( [XYZFPS]-?[0-9]{1,3}\.[0-9]{3}){0,4}", fullmatch=True),
    st.integers(0, 10**6),
)
def test_numbered_lines_round_trip_through_marlins_parser(command: str, number: int) -> None:
    raw = gcode.encode_line(command, number)
    body = raw.decode().split("*")[0]
    assert int(raw.decode().split("*")[1]) == functools.reduce(operator.xor, body.encode(), 0)
    line = gcode.parse_line(raw)
    assert line.error is None and line.line_number == number and line.text == command
    code = command.split(" ", maxsplit=1)[0]
    assert line.command == code[0] + str(int(code[1:]))


def test_moves_are_written_in_mm_with_micrometre_resolution() -> None:
    assert gcode.format_move(120.0, -50.5, 80.0, 6000.0) == "G1 X120.000 Y-50.500 Z80.000 F6000.0"
    assert gcode.format_move(z_mm=-0.0001, rapid=True) == "G0 Z0.000"
    with pytest.raises(DeviceOutOfRangeError, match="feed rate"):
        gcode.format_move(1.0, feed_mm_per_min=0.0)
    with pytest.raises(DeviceOutOfRangeError, match="finite"):
        gcode.format_move(float("nan"))
    with pytest.raises(DeviceProtocolError, match="one line"):
        gcode.encode_line("G1 X1*5")


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (b"N5 G28*99", LineError.CHECKSUM_MISMATCH),
        (b"N5 G28", LineError.NO_CHECKSUM),
        (b"G28*23", LineError.NO_LINE_NUMBER),
        (b"N5 G28*x", LineError.CHECKSUM_MISMATCH),
    ],
)
def test_marlin_refuses_lines_with_a_bad_number_or_checksum(raw: bytes, error: LineError) -> None:
    assert gcode.parse_line(raw).error is error


def test_words_flags_and_comments_are_read_as_marlin_reads_them() -> None:
    line = gcode.parse_line(b"g1 x10 Y-2.5 z.5 F3000 ; to the tray")
    assert (line.command, line.words) == ("G1", {"X": 10.0, "Y": -2.5, "Z": 0.5, "F": 3000.0})
    assert gcode.parse_line(b"M114 R").has("R") and gcode.parse_line(b"M114 R").value("R") is None
    assert gcode.parse_line(b"G0").value("X", 7.0) == 7.0
    assert gcode.command_text(gcode.parse_line(b"M118 E1 sync-3")) == "E1 sync-3"
    assert gcode.parse_line(b"; only a comment").text == ""


# ------------------------------------------------------------------ firmware -> host
@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"ok\n", codec.Ok()),
        (b"ok N12 P15 B3\n", codec.Ok(12)),
        (b"echo:busy: processing\n", codec.Busy("processing")),
        (b'echo:Unknown command: "G999 X1"\n', codec.UnknownCommand("G999 X1")),
        (b"echo:Home XYZ First\n", codec.HomeFirst("XYZ")),
        (b"echo:Home Z first\n", codec.HomeFirst("Z")),
        (b"Error:Printer halted. kill() called!\n", codec.Halted("Printer halted. kill() called!")),
        (b"Error:checksum mismatch, Last Line: 41\n", codec.LineRejected(LineError.CHECKSUM_MISMATCH, 41)),
        (b"Error:No Checksum with line number, Last Line: 7\n", codec.LineRejected(LineError.NO_CHECKSUM, 7)),
        (
            b"Error:No Line Number with checksum, Last Line: 7\n",
            codec.LineRejected(LineError.NO_LINE_NUMBER, 7),
        ),
        (
            b"Error:Line Number is not Last Line Number+1, Last Line: 9\n",
            codec.LineRejected(LineError.LINE_NUMBER, 9),
        ),
        (b"Error:Printer stopped due to errors. Fix the error and use M999 to restart.\n", None),
        (b"Resend: 42\n", codec.Resend(42)),
        (b"start\n", codec.Start()),
        (b"echo:Marlin 2.1.2.1\n", codec.Echo("Marlin 2.1.2.1")),
        (b"Cap:EMERGENCY_PARSER:1\n", codec.Capability("EMERGENCY_PARSER", "1")),
        (b"X#0.00 Yk127.00\n", codec.Unrecognized("X#0.00 Yk127.00")),
        (b"o\xffk\n", None),
    ],
)
def test_every_documented_reply_line_is_classified(raw: bytes, expected: codec.ReplyLine | None) -> None:
    line = codec.parse_reply_line(raw)
    if expected is None:
        assert isinstance(line, codec.FirmwareError | codec.Unrecognized)
    else:
        assert line == expected


def test_the_m114_example_of_marlins_documentation() -> None:
    line = codec.parse_reply_line(b"X:0.00 Y:127.00 Z:145.00 E:0.00 Count X: 0 Y:10160 Z:116000\n")
    assert line == codec.Position(0.0, 127.0, 145.0, 0.0, (0, 10160, 116000))
    assert codec.parse_reply_line(b"X:1.50 Y:-2.00 Z:3.00") == codec.Position(1.5, -2.0, 3.0)


def test_the_m115_example_of_marlins_documentation() -> None:
    line = codec.parse_reply_line(
        b"FIRMWARE_NAME:Marlin 1.1.0 (Github) SOURCE_CODE_URL:https://github.com/MarlinFirmware/Marlin "
        b"PROTOCOL_VERSION:1.0 MACHINE_TYPE:RepRap EXTRUDER_COUNT:1 "
        b"UUID:cede2a2f-41a2-4748-9b12-c55c62f367ff\n"
    )
    assert isinstance(line, codec.FirmwareInfo)
    assert line.get("FIRMWARE_NAME") == "Marlin 1.1.0 (Github)"
    assert line.get("SOURCE_CODE_URL") == "https://github.com/MarlinFirmware/Marlin"
    assert line.get("MACHINE_TYPE") == "RepRap" and line.get("UUID").startswith("cede2a2f")


def test_soft_endstops_report_round_trips() -> None:
    raw = codec.format_soft_endstops(True, (-100.0, -350.0, 0.0), (450.0, 350.0, 320.0))
    assert raw == b"echo:Soft endstops: ON  Min:  X-100.00 Y-350.00 Z0.00   Max:  X450.00 Y350.00 Z320.00\n"
    assert codec.parse_reply_line(raw) == codec.SoftEndstops(
        True, (-100.0, -350.0, 0.0), (450.0, 350.0, 320.0)
    )


def test_a_refused_line_is_reported_with_resend_then_ok() -> None:
    lines = codec.format_line_error(LineError.CHECKSUM_MISMATCH, 41).splitlines()
    parsed = [codec.parse_reply_line(raw) for raw in lines]
    assert parsed == [codec.LineRejected(LineError.CHECKSUM_MISMATCH, 41), codec.Resend(42), codec.Ok()]


def test_a_reply_without_its_position_is_a_protocol_error() -> None:
    with pytest.raises(DeviceProtocolError, match="no position"):
        codec.require_position([codec.Ok()])


# ------------------------------------------------------------------ properties
@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=80))
def test_no_byte_sequence_crashes_the_reply_parser(raw: bytes) -> None:
    assert codec.parse_reply_line(raw) is not None


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=80))
def test_no_byte_sequence_crashes_the_firmwares_line_parser(raw: bytes) -> None:
    assert isinstance(gcode.parse_line(raw), gcode.GcodeLine)


@settings(max_examples=200, deadline=None)
@given(
    st.tuples(*[st.floats(-9999.0, 9999.0)] * 3),
    st.tuples(*[st.integers(-(10**6), 10**6)] * 3),
)
def test_positions_round_trip(position: tuple[float, float, float], counts: tuple[int, int, int]) -> None:
    line = codec.parse_reply_line(codec.format_position(position, counts))
    assert isinstance(line, codec.Position) and line.counts == counts
    assert (line.x_mm, line.y_mm, line.z_mm) == pytest.approx(position, abs=0.006)


@settings(max_examples=200, deadline=None)
@given(
    st.tuples(*[st.floats(-500.0, 500.0)] * 3),
    st.tuples(*[st.floats(-500.0, 500.0)] * 3),
    st.floats(1.0, 300.0),
    st.floats(0.0, 10.0),
)
def test_trapezoid_moves_go_from_start_to_end_monotonically(
    start: tuple[float, float, float], end: tuple[float, float, float], feed: float, t: float
) -> None:
    move = plan_move(start, end, feed, (250.0, 250.0, 120.0), 1500.0)
    assert move.position_at(move.duration_s) == pytest.approx(end)
    assert 0.0 <= move.travelled_mm(t) <= move.travelled_mm(t + 0.01) <= move.distance_mm + 1e-9
    for axis, limit in enumerate((250.0, 250.0, 120.0)):
        if move.distance_mm > 0:
            assert abs(end[axis] - start[axis]) / move.distance_mm * move.speed_mm_s <= limit + 1e-6
