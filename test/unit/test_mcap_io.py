"""MCAP recordings: definitions, writing, reading back with rclpy and rosbags, faults, the session."""

from __future__ import annotations

import errno
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rclpy.serialization import deserialize_message, serialize_message
from rosbags.typesys import get_types_from_msg
from sqlalchemy import select
from sqlalchemy.orm import Session
from std_msgs.msg import Header

from tablet_workcell.data import schema
from tablet_workcell.data.mcap_io import (
    McapRecorder,
    OfferedQos,
    choose_compression,
    read_recording,
    recording_path,
    verify_with_rosbags,
)
from tablet_workcell.data.msg_definitions import (
    DELIMITER,
    MessageDefinitionError,
    MessageDefinitions,
    RecordingError,
    message_definition,
)
from tablet_workcell.data.recording import RecordingSession
from tablet_workcell.data.recording_config import RateLimiter, should_record
from tablet_workcell.data.store import ExperimentStore
from tablet_workcell.image_wire import encode_image
from tablet_workcell.msg import CellStatus, EstopState, StationStatus

SHARE = Path(sys.prefix) / "share"


def sections(text: str) -> list[str]:
    """Type names of the sections of a concatenated definition (the root first, as '')."""
    return [""] + [part.split("\n", 1)[0].removeprefix("MSG: ") for part in text.split(DELIMITER + "\n")[1:]]


def cell_status() -> CellStatus:
    status = CellStatus(mode=CellStatus.MODE_ESTOPPED, estop_active=True, estop_reason="door open")
    status.header.stamp.sec, status.header.frame_id = 42, "cell"
    status.stations = [
        StationStatus(station="press", state=StationStatus.STATE_FAULT, simulated=True, message="jam"),
        StationStatus(station="arm", state=StationStatus.STATE_IDLE),
    ]
    status.campaign_id, status.experiments_completed = "c7", 3
    return status


# ---------------------------------------------------------------------- definitions
def test_header_definition_is_the_msg_file_followed_by_time() -> None:
    text = message_definition("std_msgs/msg/Header")
    header = (SHARE / "std_msgs/msg/Header.msg").read_text()
    time_msg = (SHARE / "builtin_interfaces/msg/Time.msg").read_text()
    assert text == f"{header}\n{DELIMITER}\nMSG: builtin_interfaces/msg/Time\n{time_msg}"
    fields = get_types_from_msg(text, "std_msgs/msg/Header")["std_msgs/msg/Header"][1]
    assert [name for name, _ in fields] == ["stamp", "frame_id"]


def test_image_and_nested_custom_types_list_every_dependency_once() -> None:
    assert sections(message_definition("sensor_msgs/msg/Image")) == [
        "",
        "std_msgs/msg/Header",
        "builtin_interfaces/msg/Time",
    ]
    # StationStatus (same-package short name) uses Header too: it appears once, after its first use.
    assert sections(message_definition("tablet_workcell/msg/CellStatus")) == [
        "",
        "std_msgs/msg/Header",
        "builtin_interfaces/msg/Time",
        "tablet_workcell/msg/StationStatus",
    ]
    assert message_definition("tablet_workcell/CellStatus") == message_definition(
        "tablet_workcell/msg/CellStatus"
    )


def write_package(prefix: Path, package: str, messages: dict[str, str]) -> None:
    folder = prefix / "share" / package / "msg"
    folder.mkdir(parents=True)
    for name, text in messages.items():
        (folder / f"{name}.msg").write_text(text)


def test_field_syntax_arrays_bounds_constants_and_short_names(tmp_path: Path) -> None:
    write_package(
        tmp_path,
        "demo_msgs",
        {
            "Sample": (
                "# a comment line naming other_msgs/Nothing\n"
                "int32 LIMIT=5  # constants are not fields\n"
                'string GREETING="a # in a string"\n'
                "Header header\n"
                "float64[9] matrix\n"
                "int32[<=5] bounded\n"
                "string<=10 short_name\n"
                "string<=8[<=3] names\n"
                "Point[] points\n"
                "geometry_msgs/Vector3 offset\n"
                "uint8 flags 7  # default value\n"
            ),
            "Point": "float64 x\nfloat64 y\n",
        },
    )
    definitions = MessageDefinitions([tmp_path, Path(sys.prefix)])
    assert definitions.dependencies("demo_msgs/msg/Sample") == [
        "demo_msgs/msg/Point",
        "geometry_msgs/msg/Vector3",
        "std_msgs/msg/Header",
    ]
    text = definitions.full_text("demo_msgs/msg/Sample")
    assert sections(text) == [
        "",
        "demo_msgs/msg/Point",
        "geometry_msgs/msg/Vector3",
        "std_msgs/msg/Header",
        "builtin_interfaces/msg/Time",
    ]
    types = get_types_from_msg(text, "demo_msgs/msg/Sample")
    assert set(types) >= {"demo_msgs/msg/Sample", "demo_msgs/msg/Point", "geometry_msgs/msg/Vector3"}
    constants, fields = types["demo_msgs/msg/Sample"]
    assert [c[0] for c in constants] == ["LIMIT", "GREETING"]
    assert [f[0] for f in fields] == [
        "header",
        "matrix",
        "bounded",
        "short_name",
        "names",
        "points",
        "offset",
        "flags",
    ]


def test_missing_definitions_are_named_with_the_fix(tmp_path: Path) -> None:
    write_package(tmp_path, "demo_msgs", {"Uses": "missing_msgs/Thing thing\n"})
    definitions = MessageDefinitions([tmp_path])
    with pytest.raises(MessageDefinitionError, match=r"no message definition for 'nope_msgs/msg/X'") as info:
        definitions.full_text("nope_msgs/msg/X")
    assert "pip install ros-nope-msgs" in str(info.value) and "AMENT_PREFIX_PATH" in str(info.value)
    with pytest.raises(MessageDefinitionError, match=r"missing_msgs/msg/Thing.*used by demo_msgs/msg/Uses"):
        definitions.full_text("demo_msgs/msg/Uses")
    with pytest.raises(MessageDefinitionError, match="not a ROS 2 message type name"):
        definitions.full_text("no slashes")
    assert isinstance(MessageDefinitionError("x"), RecordingError)


def test_ament_prefix_path_is_searched_before_the_venv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_package(tmp_path, "overlay_msgs", {"Only": "bool here\n"})
    monkeypatch.setenv("AMENT_PREFIX_PATH", str(tmp_path))
    definitions = MessageDefinitions()
    assert definitions.prefixes[0] == tmp_path and definitions.prefixes[-1] == Path(sys.prefix)
    assert definitions.full_text("overlay_msgs/msg/Only") == "bool here\n"


# ---------------------------------------------------------------------- writing and reading
def record_examples(recorder: McapRecorder, frame: np.ndarray) -> dict[str, list[bytes]]:
    header = Header(frame_id="base")
    header.stamp.sec, header.stamp.nanosec = 7, 500
    image = encode_image(frame, "bgr8", 1_000_000_123, "camera")
    written = {
        "/header": [serialize_message(header)],
        "/camera/image": [image],
        "/workcell/status": [serialize_message(cell_status()), serialize_message(CellStatus())],
    }
    recorder.add_channel("/header", "std_msgs/msg/Header")
    recorder.add_channel("/camera/image", "sensor_msgs/msg/Image", [OfferedQos(reliable=False, depth=5)])
    recorder.add_channel("/workcell/status", "tablet_workcell/msg/CellStatus", [OfferedQos()])
    time_ns = 1_000
    for topic, messages in written.items():
        for data in messages:
            time_ns += 1_000
            recorder.write(topic, data, time_ns, time_ns - 10)
    return written


@pytest.mark.parametrize("compression", ["auto", "lz4", "none"])
def test_round_trip_through_rclpy_and_rosbags(tmp_path: Path, compression: str) -> None:
    frame = np.arange(480 * 640 * 3, dtype=np.uint32).astype(np.uint8).reshape(480, 640, 3)
    with McapRecorder.for_campaign(tmp_path, "c7", compression=compression) as recorder:
        written = record_examples(recorder, frame)
    summary = recorder.close()
    assert summary.path == tmp_path / "c7" / "c7_0.mcap" and summary.path.is_file()
    assert not recorder.part_path.exists()

    read = list(read_recording(summary.path))
    assert [m.data for m in read] == [data for messages in written.values() for data in messages]
    assert deserialize_message(read[-2].data, CellStatus) == cell_status()
    assert [m.topic for m in read_recording(summary.path, topics=["/header"])] == ["/header"]

    by_topic: dict[str, list[Any]] = {}
    for item in verify_with_rosbags(summary.path):
        by_topic.setdefault(item.topic, []).append(item.message)
    status = by_topic["/workcell/status"][0]
    assert (status.mode, status.estop_active, status.estop_reason) == (3, True, "door open")
    assert [(s.station, s.state, s.simulated, s.message) for s in status.stations] == [
        ("press", StationStatus.STATE_FAULT, True, "jam"),
        ("arm", StationStatus.STATE_IDLE, False, ""),
    ]
    assert (status.header.stamp.sec, status.header.frame_id, status.experiments_completed) == (42, "cell", 3)
    assert by_topic["/workcell/status"][1].stations == []
    image = by_topic["/camera/image"][0]
    assert (image.height, image.width, image.encoding, image.step) == (480, 640, "bgr8", 1920)
    assert np.array_equal(image.data, frame.reshape(-1))
    header = by_topic["/header"][0]
    assert (header.stamp.sec, header.stamp.nanosec, header.frame_id) == (7, 500, "base")


def test_summary_counts_size_and_sha256_match_the_file(tmp_path: Path) -> None:
    with McapRecorder.for_experiment(tmp_path, "c7", "c7-0001") as recorder:
        written = record_examples(recorder, np.zeros((4, 4, 3), np.uint8))
        assert recorder.message_count == 4
    summary = recorder.close()
    content = summary.path.read_bytes()
    assert summary.path.name == "c7-0001_0.mcap" and summary.experiment_id == "c7-0001"
    assert summary.sha256 == hashlib.sha256(content).hexdigest()
    assert summary.size_bytes == len(content)
    assert summary.message_count == 4 == sum(len(m) for m in written.values())
    assert summary.topics == {"/header": 1, "/camera/image": 1, "/workcell/status": 2}
    assert summary.started_at <= summary.ended_at


def test_files_are_never_overwritten(tmp_path: Path) -> None:
    first = McapRecorder.for_campaign(tmp_path, "c1")
    assert recording_path(tmp_path, "c1") == tmp_path / "c1" / "c1_1.mcap"  # the .part counts as taken
    with pytest.raises(RecordingError, match="never overwritten"):
        McapRecorder(first.path, "c1")
    first.close()
    with pytest.raises(RecordingError, match="cannot name a recording file"):
        recording_path(tmp_path, "../escape")


def test_a_block_that_fails_still_leaves_a_finished_file(tmp_path: Path) -> None:
    with pytest.raises(ZeroDivisionError), McapRecorder.for_campaign(tmp_path, "c1") as recorder:
        recorder.add_channel("/estop", "tablet_workcell/msg/EstopState")
        recorder.write("/estop", serialize_message(EstopState(active=True, reason="r")), 5)
        _ = 1 / 0
    [message] = read_recording(recorder.path)
    assert deserialize_message(message.data, EstopState).reason == "r"


def test_truncated_and_foreign_files_are_refused_with_a_clear_sentence(tmp_path: Path) -> None:
    with McapRecorder.for_campaign(tmp_path, "c1") as recorder:
        record_examples(recorder, np.zeros((8, 8, 3), np.uint8))
    content = recorder.path.read_bytes()
    cut = tmp_path / "cut.mcap"
    cut.write_bytes(content[: len(content) // 2])
    with pytest.raises(RecordingError, match=r"cut.mcap is truncated .*not finished.*mcap recover cut.mcap"):
        list(read_recording(cut))
    foreign = tmp_path / "notes.mcap"
    foreign.write_text("not a recording")
    with pytest.raises(RecordingError, match="is not an MCAP recording"):
        list(read_recording(foreign))
    with pytest.raises(RecordingError, match="no recording at"):
        list(read_recording(tmp_path / "absent.mcap"))


def test_write_errors_become_recording_errors_and_keep_the_part_file(tmp_path: Path) -> None:
    class FullDisk:
        def write(self, data: bytes) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

        def flush(self) -> None: ...

        def close(self) -> None: ...

    recorder = McapRecorder.for_campaign(tmp_path, "c1", chunk_size_bytes=1)
    recorder.add_channel("/estop", "tablet_workcell/msg/EstopState")
    real_file = recorder._stream.file
    recorder._stream.file = FullDisk()  # type: ignore[assignment]
    with pytest.raises(RecordingError, match=r"No space left on device.*free disk space"):
        recorder.write("/estop", serialize_message(EstopState()), 1)
    with pytest.raises(RecordingError, match="failed earlier"):
        recorder.write("/estop", serialize_message(EstopState()), 2)
    with pytest.raises(RecordingError, match="left unfinished"):
        recorder.close()
    real_file.close()
    assert recorder.part_path.exists() and not recorder.path.exists()


def test_compression_choice() -> None:
    assert choose_compression("auto").name == "ZSTD"  # zstandard is a dependency of mcap
    with pytest.raises(RecordingError, match="unknown"):
        choose_compression("gzip")


# ---------------------------------------------------------------------- policy
def test_rate_limiter_keeps_the_average_rate_of_a_faster_stream() -> None:
    limiter = RateLimiter(5.0)
    passed = [t for t in range(0, 10_000_000_000, 33_333_333) if limiter.allow(t)]
    assert 49 <= len(passed) <= 51
    assert min(np.diff(passed)) >= 100_000_000  # never a burst
    assert all(RateLimiter(0.0).allow(t) for t in range(0, 100, 10))
    assert limiter.allow(0)  # the clock went back (simulation restarted): starts over


def test_topic_selection() -> None:
    assert should_record("/camera/image", [])
    assert not should_record("/camera/image", ["/camera/*"])
    assert not should_record("/arm/_action/status", [])
    assert should_record("/arm/_action/status", [], include_hidden=True)


# ---------------------------------------------------------------------- session
def estop(active: bool) -> bytes:
    return serialize_message(EstopState(active=active, reason="test"))


def test_session_rotates_files_repeats_latched_state_and_registers_them(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    session = RecordingSession(tmp_path / "rec", "c1", store_url=url, max_file_bytes=200_000)
    latched_qos = [OfferedQos(reliable=True, transient_local=True, depth=1)]
    session.add_topic("/safety/estop", "tablet_workcell/msg/EstopState", latched_qos, latched=True)
    session.add_topic("/camera/image", "sensor_msgs/msg/Image")
    assert session.submit("/safety/estop", estop(True), 1, 1)
    frame = np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8)  # incompressible
    for index in range(6):
        assert session.submit("/camera/image", encode_image(frame, "bgr8", index, "cam"), 10 + index, 10)
    summaries = session.close()
    assert len(summaries) >= 2
    for summary in summaries:
        first = next(read_recording(summary.path))
        assert (first.topic, deserialize_message(first.data, EstopState).active) == ("/safety/estop", True)
    stats = session.stats()
    assert (stats.received, stats.dropped, stats.files_finished) == (7, 0, len(summaries))
    assert stats.recorded == 7 + len(summaries) - 1  # the latched message again in every new file
    with ExperimentStore.open(url) as store, Session(store.engine) as db:
        rows = db.scalars(select(schema.Recording).order_by(schema.Recording.id)).all()
        assert [(Path(r.path), r.sha256, r.message_count) for r in rows] == [
            (s.path, s.sha256, s.message_count) for s in summaries
        ]


def test_session_keeps_the_record_when_the_store_is_unavailable(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'not-a-folder'}/store.sqlite"
    (tmp_path / "not-a-folder").write_text("a file where the store's folder should be")
    session = RecordingSession(tmp_path / "rec", "c1", store_url=url)
    assert not session.check_store()
    session.add_topic("/safety/estop", "tablet_workcell/msg/EstopState")
    session.submit("/safety/estop", estop(False), 1, 1)
    [summary] = session.close()
    stats = session.stats()
    assert "could not register c1_0.mcap" in stats.last_error and stats.errors == 2
    pending = json.loads(summary.path.with_name("c1_0.mcap.unregistered.json").read_text())
    assert pending["sha256"] == summary.sha256 and pending["campaign_id"] == "c1"


def wait_for(condition: Any, what: str, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_session_drops_and_reports_while_the_disk_fails_then_resumes(tmp_path: Path) -> None:
    blocked = tmp_path / "rec"
    blocked.write_text("a file where the recording folder should be")
    session = RecordingSession(blocked, "c1", retry_after_s=0.0)
    session.add_topic("/safety/estop", "tablet_workcell/msg/EstopState")
    session.submit("/safety/estop", estop(True), 1, 1)
    wait_for(lambda: session.stats().dropped == 1, "the message to be dropped")
    stats = session.stats()
    assert stats.recorded == 0 and "cannot start a recording file" in stats.last_error
    blocked.unlink()  # the operator frees the disk: the next message opens a file
    session.submit("/safety/estop", estop(False), 2, 2)
    [summary] = session.close()
    [message] = read_recording(summary.path)
    assert deserialize_message(message.data, EstopState).active is False


def test_session_drops_beyond_its_buffer(tmp_path: Path) -> None:
    session = RecordingSession(tmp_path, "c1", buffer_bytes=10)
    session.add_topic("/safety/estop", "tablet_workcell/msg/EstopState")
    assert not session.submit("/safety/estop", estop(True) + bytes(100), 1, 1)
    session.close()
    assert session.stats().dropped == 1
