"""ROS 2 recordings as MCAP files, written and read without ROS 2's recorder (no rclpy here).

A recording is an MCAP file with profile ``ros2``: one schema per message type holding
the rosbag2-style concatenated ``.msg`` definition (encoding ``ros2msg``), one channel per
topic (message encoding ``cdr``, rosbag2's ``offered_qos_profiles`` metadata) and the
messages as the serialized CDR bytes a ``raw=True`` subscription delivers. rosbag2,
Foxglove, the ``mcap`` CLI and the independent ``rosbags`` reader open these files.

Design choices:

* Definitions come from the installed ``.msg`` files (tablet_workcell.data.msg_definitions),
  the same lookup rosbag2 does; no sourced ROS 2 install is needed.
* A recording is written as ``<name>.mcap.part`` and renamed to ``<name>.mcap`` once its
  summary and indexes are complete: a ``.mcap`` file is always finished. A ``.part`` file
  is what a killed recorder or a full disk leaves; ``mcap recover`` salvages its chunks.
* The SHA-256 and the size are computed while writing (MCAP is append-only), so closing
  a large recording does not read it back.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import re
import socket
import struct
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, BinaryIO, NamedTuple, cast

import yaml
from mcap.exceptions import McapError
from mcap.reader import make_reader
from mcap.well_known import MessageEncoding, Profile, SchemaEncoding
from mcap.writer import CompressionType, Writer

from tablet_workcell.data.msg_definitions import MessageDefinitions, RecordingError, split_type_name

if TYPE_CHECKING:
    from tablet_workcell.data.store import ExperimentStore

LOG = logging.getLogger(__name__)
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_INFINITE = {"sec": 9223372036, "nsec": 854775807}  # rosbag2's spelling of "no deadline"
LIBRARY = "tablet_workcell recorder"


# ---------------------------------------------------------------------- writing
@dataclass(frozen=True)
class OfferedQos:
    """The QoS a publisher offers, stored with the channel so playback can offer it again."""

    reliable: bool = True
    transient_local: bool = False
    depth: int = 10


def offered_qos_yaml(profiles: Iterable[OfferedQos]) -> str:
    """rosbag2's ``offered_qos_profiles`` channel metadata for the given publishers."""
    return yaml.safe_dump(
        [
            {
                "history": "keep_last",
                "depth": qos.depth,
                "reliability": "reliable" if qos.reliable else "best_effort",
                "durability": "transient_local" if qos.transient_local else "volatile",
                "deadline": _INFINITE,
                "lifespan": _INFINITE,
                "liveliness": "automatic",
                "liveliness_lease_duration": _INFINITE,
                "avoid_ros_namespace_conventions": False,
            }
            for qos in profiles
        ],
        sort_keys=False,
    )


def choose_compression(preferred: str = "auto") -> CompressionType:
    """``auto``: zstd if installed, else lz4, else none; an explicit choice must be installed."""
    available = {
        "zstd": importlib.util.find_spec("zstandard") is not None,
        "lz4": importlib.util.find_spec("lz4") is not None,
        "none": True,
    }
    if preferred == "auto":
        preferred = next(name for name in ("zstd", "lz4", "none") if available[name])
    if preferred not in available:
        raise RecordingError(f"compression {preferred!r} is unknown; use auto, zstd, lz4 or none.")
    if not available[preferred]:
        package = "zstandard" if preferred == "zstd" else preferred
        raise RecordingError(f"{preferred} compression needs the Python package {package}; install it.")
    return {"zstd": CompressionType.ZSTD, "lz4": CompressionType.LZ4, "none": CompressionType.NONE}[preferred]


class _HashingFile:
    """The output stream of the MCAP writer: counts and hashes every byte it passes on."""

    def __init__(self, file: BinaryIO) -> None:
        self.file = file
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.file.write(data)
        self.sha256.update(data)
        self.size += len(data)
        return len(data)

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        self.file.flush()


@dataclass(frozen=True)
class RecordingSummary:
    """A finished recording, as the experiment store registers it."""

    path: Path
    campaign_id: str
    experiment_id: str | None
    sha256: str
    message_count: int
    size_bytes: int
    started_at: datetime
    ended_at: datetime
    topics: dict[str, int] = field(default_factory=dict)  # messages per topic


def recording_path(output_dir: Path, campaign_id: str, experiment_id: str | None = None) -> Path:
    """The next free ``<output_dir>/<campaign>/<campaign or experiment>_<n>.mcap``."""
    for value in (campaign_id, experiment_id):
        if value is not None and not _SAFE_ID.match(value):
            raise RecordingError(
                f"{value!r} cannot name a recording file; use letters, digits, '_', '.' and '-'."
            )
    folder = Path(output_dir) / campaign_id
    stem = experiment_id or campaign_id
    index = 0
    while (folder / f"{stem}_{index}.mcap").exists() or (folder / f"{stem}_{index}.mcap.part").exists():
        index += 1
    return folder / f"{stem}_{index}.mcap"


class McapRecorder:
    """Writes serialized (CDR) messages of ROS 2 topics into one MCAP file.

    Use as a context manager, or call :meth:`close`; either finishes the file, also when
    the block ends with an exception. Not thread-safe: one thread writes.
    """

    def __init__(
        self,
        path: Path,
        campaign_id: str,
        experiment_id: str | None = None,
        compression: str = "auto",
        chunk_size_bytes: int = 4 * 1024 * 1024,
        definitions: MessageDefinitions | None = None,
    ) -> None:
        self.path = Path(path)
        self.part_path = self.path.with_name(self.path.name + ".part")
        self.campaign_id = campaign_id
        self.experiment_id = experiment_id
        self._definitions = definitions or MessageDefinitions()
        if self.path.exists() or self.part_path.exists():
            raise RecordingError(f"{self.path} already exists; a recording is never overwritten.")
        kind = choose_compression(compression)
        self.started_at = datetime.now(UTC)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._stream = _HashingFile(self.part_path.open("xb"))
        except OSError as error:
            raise RecordingError(f"cannot create the recording {self.part_path}: {error.strerror}.") from None
        self._writer = Writer(cast(IO[bytes], self._stream), chunk_size=chunk_size_bytes, compression=kind)
        self._schemas: dict[str, int] = {}
        self._channels: dict[str, tuple[int, str]] = {}  # topic -> (channel id, type name)
        self._sequence: dict[str, int] = {}
        self._summary: RecordingSummary | None = None
        self._failed = False
        self._unflushed = 0
        self.message_count = 0
        self._guarded("start", self._start)

    def _start(self) -> None:
        self._writer.start(profile=Profile.ROS2, library=LIBRARY)
        metadata = {
            "campaign_id": self.campaign_id,
            "experiment_id": self.experiment_id or "",
            "started_at": self.started_at.isoformat(),
            "host": socket.gethostname(),
        }
        self._writer.add_metadata("tablet_workcell", metadata)

    @classmethod
    def for_campaign(cls, output_dir: Path, campaign_id: str, **options: Any) -> McapRecorder:
        return cls(recording_path(output_dir, campaign_id), campaign_id, None, **options)

    @classmethod
    def for_experiment(
        cls, output_dir: Path, campaign_id: str, experiment_id: str, **options: Any
    ) -> McapRecorder:
        path = recording_path(output_dir, campaign_id, experiment_id)
        return cls(path, campaign_id, experiment_id, **options)

    @property
    def size_bytes(self) -> int:
        """Bytes in the file so far plus the messages still in the open chunk (compressed later)."""
        return self._stream.size + self._unflushed

    @property
    def closed(self) -> bool:
        return self._summary is not None

    @property
    def topics(self) -> dict[str, str]:
        return {topic: type_name for topic, (_, type_name) in self._channels.items()}

    def _guarded(self, doing: str, work: Any) -> Any:
        if self._failed or self._summary is not None:
            state = "failed earlier" if self._failed else "is closed"
            raise RecordingError(f"cannot {doing}: the recording {self.part_path} {state}.")
        try:
            return work()
        except OSError as error:
            self._failed = True
            raise RecordingError(
                f"could not {doing} in {self.part_path}: {error.strerror or error}. "
                "Check free disk space and write permission of the recording folder; the "
                "messages before this are in the .part file (mcap recover salvages them)."
            ) from error

    def add_channel(
        self,
        topic: str,
        type_name: str,
        offered_qos: Sequence[OfferedQos] = (),
        definition: str | None = None,
    ) -> None:
        """Declare a topic before writing to it (idempotent for the same type)."""
        known = self._channels.get(topic)
        if known is not None:
            if known[1] != type_name:
                raise RecordingError(f"topic {topic} is recorded as {known[1]}, not {type_name}.")
            return
        package, kind, name = split_type_name(type_name)
        full_name = f"{package}/{kind}/{name}"
        text = definition if definition is not None else self._definitions.full_text(full_name)

        def register() -> None:
            if full_name not in self._schemas:
                self._schemas[full_name] = self._writer.register_schema(
                    full_name, SchemaEncoding.ROS2, text.encode()
                )
            metadata = {"offered_qos_profiles": offered_qos_yaml(offered_qos)} if offered_qos else {}
            channel = self._writer.register_channel(
                topic, MessageEncoding.CDR, self._schemas[full_name], metadata
            )
            self._channels[topic] = (channel, full_name)

        self._guarded(f"add topic {topic}", register)

    def write(self, topic: str, data: bytes, log_time_ns: int, publish_time_ns: int | None = None) -> None:
        """Append one serialized message received at ``log_time_ns`` (and sent at ``publish_time_ns``)."""
        channel = self._channels.get(topic)
        if channel is None:
            raise RecordingError(f"topic {topic} has no channel in {self.path.name}; call add_channel first.")
        sequence = self._sequence.get(topic, 0)
        flushed = self._stream.size
        self._guarded(
            f"write a message of {topic}",
            lambda: self._writer.add_message(
                channel[0],
                log_time_ns,
                data,
                log_time_ns if publish_time_ns is None else publish_time_ns,
                sequence,
            ),
        )
        self._sequence[topic] = sequence + 1
        self.message_count += 1
        self._unflushed = 0 if self._stream.size != flushed else self._unflushed + len(data)

    def close(self) -> RecordingSummary:
        """Finish the file (summary, indexes), make it durable and give it its final name."""
        if self._summary is not None:
            return self._summary
        if self._failed:
            self.abort()
            raise RecordingError(f"the recording {self.part_path} failed earlier and was left unfinished.")

        def finish() -> None:
            self._writer.finish()
            self._unflushed = 0
            self._stream.flush()
            os.fsync(self._stream.file.fileno())
            self._stream.file.close()
            os.replace(self.part_path, self.path)

        try:
            self._guarded("finish the recording", finish)
        except RecordingError:
            self.abort()
            raise
        self._summary = RecordingSummary(
            path=self.path,
            campaign_id=self.campaign_id,
            experiment_id=self.experiment_id,
            sha256=self._stream.sha256.hexdigest(),
            message_count=self.message_count,
            size_bytes=self._stream.size,  # everything is flushed now
            started_at=self.started_at,
            ended_at=datetime.now(UTC),
            topics={topic: count for topic, count in self._sequence.items()},
        )
        return self._summary

    def abort(self) -> None:
        """Close the file without finishing it (after a write failure); the .part file stays."""
        self._failed = True
        try:
            self._stream.file.close()
        except OSError as error:
            LOG.warning("closing the failed recording %s: %s", self.part_path, error)

    def __enter__(self) -> McapRecorder:
        return self

    def __exit__(self, exc_type: object, exc: object, traceback: object) -> None:
        if exc is None:
            self.close()
            return
        try:
            self.close()
        except RecordingError as error:  # do not hide the exception that ended the block
            LOG.error("recording %s could not be finished: %s", self.path, error)


def register_summary(store: ExperimentStore, summary: RecordingSummary) -> int:
    """Register a finished recording (and its campaign, if new) in the experiment store."""
    store.ensure_campaign(summary.campaign_id)
    return store.register_recording(
        summary.campaign_id,
        summary.path,
        summary.sha256,
        summary.message_count,
        summary.size_bytes,
        summary.started_at,
        summary.ended_at,
        experiment_id=summary.experiment_id,
    )


# ---------------------------------------------------------------------- reading
class RecordedMessage(NamedTuple):
    topic: str
    type_name: str
    log_time_ns: int
    data: bytes  # serialized CDR, as rclpy.serialization.deserialize_message takes it


MAGIC = b"\x89MCAP0\r\n"
_CORRUPTION = (McapError, struct.error, EOFError, ValueError, KeyError, RuntimeError, OSError)


def _damage(path: Path, error: Exception) -> RecordingError:
    """The sentence for an unreadable file: not an MCAP file, cut short, or damaged inside."""
    size = path.stat().st_size
    with path.open("rb") as file:
        head = file.read(len(MAGIC))
        file.seek(max(0, size - len(MAGIC)))
        tail = file.read(len(MAGIC))
    if head != MAGIC:
        return RecordingError(
            f"{path} is not an MCAP recording: it does not start with the MCAP magic bytes."
        )
    if tail != MAGIC or size < 2 * len(MAGIC):
        return RecordingError(
            f"the recording {path} is truncated ({size} bytes, no MCAP footer): it was not finished, e.g. "
            "the recorder was killed, the disk filled up or a copy was cut short. "
            f"'mcap recover {path.name}' salvages its complete chunks."
        )
    return RecordingError(
        f"the recording {path} is corrupt ({type(error).__name__}: {error}); "
        f"'mcap recover {path.name}' salvages the undamaged chunks."
    )


def read_recording(path: Path, topics: Iterable[str] | None = None) -> Iterator[RecordedMessage]:
    """Messages of a finished recording in log-time order, optionally only of ``topics``."""
    path = Path(path)
    if not path.is_file():
        raise RecordingError(f"no recording at {path}.")
    with path.open("rb") as file:
        try:
            reader = make_reader(file)
            reader.get_summary()
            for schema, channel, message in reader.iter_messages(topics=list(topics) if topics else None):
                type_name = schema.name if schema is not None else ""
                yield RecordedMessage(channel.topic, type_name, message.log_time, message.data)
        except _CORRUPTION as error:
            raise _damage(path, error) from None


@dataclass(frozen=True)
class RosbagsMessage:
    topic: str
    type_name: str
    log_time_ns: int
    message: Any  # the rosbags dataclass of the message


def verify_with_rosbags(path: Path, topics: Iterable[str] | None = None) -> list[RosbagsMessage]:
    """Read every message with the independent ``rosbags`` reader, typed only by the file's definitions.

    ``rosbags`` is a development dependency: imported here, not at module load.
    """
    from rosbags.highlevel import AnyReader, AnyReaderError  # noqa: PLC0415 - a dev dependency

    wanted = set(topics) if topics is not None else None
    out: list[RosbagsMessage] = []
    try:
        with AnyReader([Path(path)]) as reader:
            connections = [c for c in reader.connections if wanted is None or c.topic in wanted]
            for connection, timestamp, raw in reader.messages(connections=connections):
                message = reader.deserialize(raw, connection.msgtype)
                out.append(RosbagsMessage(connection.topic, connection.msgtype, timestamp, message))
    except (AnyReaderError, KeyError, ValueError) as error:
        raise RecordingError(f"rosbags cannot read {path}: {error}") from error
    return out
