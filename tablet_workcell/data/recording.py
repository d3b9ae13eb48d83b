"""The recorder's engine, without ROS: a recording session with its own writer thread.

The ``recorder`` node (nodes/recorder.py) only discovers topics and hands raw CDR bytes
to a :class:`RecordingSession`. The session keeps the ROS executor free of disk work:

* ``submit`` queues a message and returns at once; a writer thread appends it to the
  current :class:`~tablet_workcell.data.mcap_io.McapRecorder`. The queue is bounded in
  bytes (``buffer_mb``): when the disk cannot keep up, new messages are dropped and
  counted rather than growing memory without limit.
* A write failure (disk full, folder removed) is logged once, the broken file is left as
  ``.part``, messages are counted as dropped, and a new file is tried after a pause, so a
  freed disk resumes the recording without a restart.
* Every finished file is registered in the experiment store. When the store cannot be
  reached, the registration is written next to the file as ``<file>.unregistered.json``
  so nothing is lost; the error is logged and reported in the diagnostics.
* With ``max_file_size_mb`` the campaign is split into numbered files; the last message of
  every latched (transient-local) topic is repeated at the start of each new file, so each
  file alone knows, e.g., the e-stop state.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from tablet_workcell.data.mcap_io import (
    McapRecorder,
    MessageDefinitions,
    OfferedQos,
    RecordingError,
    RecordingSummary,
    register_summary,
)
from tablet_workcell.data.store import ExperimentStore

LOG = logging.getLogger(__name__)
MIB = 1024 * 1024


class Log(Protocol):
    """What the session logs through: a logging.Logger or a ROS node's logger."""

    def info(self, message: str, /) -> object: ...
    def warning(self, message: str, /) -> object: ...
    def error(self, message: str, /) -> object: ...


@dataclass
class RecorderStats:
    received: int = 0  # messages handed to the session
    recorded: int = 0  # messages written (latched repeats in new files included)
    bytes_written: int = 0  # all files of this session, the open one included
    dropped: int = 0  # lost: buffer overflow or write failure
    throttled: int = 0  # image frames skipped by image_rate_hz (on purpose, not a loss)
    topics: int = 0
    files_finished: int = 0
    current_file: str = ""
    errors: int = 0
    last_error: str = ""
    received_by_topic: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class _Channel:
    topic: str
    type_name: str
    definition: str
    offered_qos: tuple[OfferedQos, ...]
    latched: bool


@dataclass(frozen=True)
class _Message:
    topic: str
    data: bytes
    log_time_ns: int
    publish_time_ns: int


class RecordingSession:
    """One campaign's (or experiment's) recording: possibly several files, one writer thread."""

    def __init__(
        self,
        output_dir: Path,
        campaign_id: str,
        experiment_id: str | None = None,
        store_url: str | None = None,
        compression: str = "auto",
        max_file_bytes: int = 0,
        buffer_bytes: int = 256 * MIB,
        log: Log = LOG,
        retry_after_s: float = 5.0,
        definitions: MessageDefinitions | None = None,
    ) -> None:
        self.output_dir = Path(output_dir)
        self.campaign_id = campaign_id
        self.experiment_id = experiment_id or None
        self.store_url = store_url  # None: do not register
        self._compression = compression
        self._max_file_bytes = max_file_bytes
        self._buffer_bytes = buffer_bytes
        self._log = log
        self._retry_after_s = retry_after_s
        self._definitions = definitions or MessageDefinitions()
        self._condition = threading.Condition()
        self._queue: collections.deque[_Channel | _Message] = collections.deque()
        self._queued_bytes = 0
        self._closing = False
        self._stats = RecorderStats()
        self._finished_bytes = 0
        self._summaries: list[RecordingSummary] = []
        # Owned by the writer thread:
        self._channels: dict[str, _Channel] = {}
        self._latched: dict[str, _Message] = {}
        self._recorder: McapRecorder | None = None
        self._retry_at = 0.0
        self._thread = threading.Thread(target=self._run, name="recording-writer", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ producer side
    def add_topic(
        self, topic: str, type_name: str, offered_qos: Sequence[OfferedQos] = (), latched: bool = False
    ) -> None:
        """Record ``topic`` from now on; raises MessageDefinitionError if its type is unknown."""
        definition = self._definitions.full_text(type_name)
        with self._condition:
            self._stats.topics += 1
            self._queue.append(_Channel(topic, type_name, definition, tuple(offered_qos), latched))
            self._condition.notify()

    def submit(self, topic: str, data: bytes, log_time_ns: int, publish_time_ns: int) -> bool:
        """Queue one message; False when it was dropped because the buffer is full."""
        with self._condition:
            self._stats.received += 1
            self._stats.received_by_topic[topic] = self._stats.received_by_topic.get(topic, 0) + 1
            if self._closing or self._queued_bytes + len(data) > self._buffer_bytes:
                self._stats.dropped += 1
                return False
            self._queue.append(_Message(topic, data, log_time_ns, publish_time_ns))
            self._queued_bytes += len(data)
            self._condition.notify()
        return True

    def count_throttled(self, topic: str) -> None:
        """Count a message left out on purpose (image_rate_hz)."""
        with self._condition:
            self._stats.received += 1
            self._stats.received_by_topic[topic] = self._stats.received_by_topic.get(topic, 0) + 1
            self._stats.throttled += 1

    def check_store(self) -> bool:
        """Open the store and create the campaign now, so an unreachable store shows at start-up."""
        if self.store_url is None:
            return True
        try:
            with ExperimentStore.open(self.store_url) as store:
                store.ensure_campaign(self.campaign_id)
        except Exception as error:  # reported, recording goes on without the store
            self._error(
                f"the experiment store {self.store_url} is not usable ({error}); recording goes on and "
                "the files are registered at the end if the store is back by then."
            )
            return False
        return True

    def stats(self) -> RecorderStats:
        with self._condition:
            return dataclasses.replace(self._stats, received_by_topic=dict(self._stats.received_by_topic))

    def close(self, timeout_s: float = 60.0) -> list[RecordingSummary]:
        """Write what is queued, finish and register the open file; returns every finished file."""
        with self._condition:
            self._closing = True
            self._condition.notify()
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            self._error(
                f"the recording writer did not finish within {timeout_s:.0f} s; the open file stays .part"
            )
        return list(self._summaries)

    # ------------------------------------------------------------------ writer thread
    def _run(self) -> None:
        while True:
            with self._condition:
                while not self._queue and not self._closing:
                    self._condition.wait()
                if not self._queue:
                    break
                item = self._queue.popleft()
                if isinstance(item, _Message):
                    self._queued_bytes -= len(item.data)
            try:
                self._handle(item)
            except Exception as error:  # the writer thread must survive anything
                self._error(f"unexpected recording failure: {type(error).__name__}: {error}")
        self._finish_file()

    def _handle(self, item: _Channel | _Message) -> None:
        if isinstance(item, _Channel):
            self._channels[item.topic] = item
            if self._recorder is not None:
                self._add_channel(self._recorder, item)
            return
        recorder = self._recorder or self._open_file()  # a new file starts with the latched state
        channel = self._channels.get(item.topic)
        if channel is not None and channel.latched:
            self._latched[item.topic] = item
        if recorder is None:
            self._count(dropped=1)
            return
        try:
            recorder.write(item.topic, item.data, item.log_time_ns, item.publish_time_ns)
        except RecordingError as error:
            self._error(str(error))
            recorder.abort()
            self._recorder = None
            self._retry_at = time.monotonic() + self._retry_after_s
            self._count(dropped=1)
            return
        self._count(recorded=1)
        if self._max_file_bytes and recorder.size_bytes >= self._max_file_bytes:
            self._finish_file()

    def _add_channel(self, recorder: McapRecorder, channel: _Channel) -> None:
        recorder.add_channel(channel.topic, channel.type_name, channel.offered_qos, channel.definition)

    def _open_file(self) -> McapRecorder | None:
        if time.monotonic() < self._retry_at:
            return None
        recorder: McapRecorder | None = None
        try:
            if self.experiment_id:
                recorder = McapRecorder.for_experiment(
                    self.output_dir, self.campaign_id, self.experiment_id, compression=self._compression
                )
            else:
                recorder = McapRecorder.for_campaign(
                    self.output_dir, self.campaign_id, compression=self._compression
                )
            for channel in self._channels.values():
                self._add_channel(recorder, channel)
            for message in self._latched.values():  # each file starts with the latched state
                recorder.write(message.topic, message.data, message.log_time_ns, message.publish_time_ns)
        except RecordingError as error:
            if recorder is not None:
                recorder.abort()
            self._error(f"cannot start a recording file: {error} Retrying in {self._retry_after_s:g} s.")
            self._retry_at = time.monotonic() + self._retry_after_s
            return None
        self._recorder = recorder
        self._count(recorded=len(self._latched))
        with self._condition:
            self._stats.current_file = str(recorder.path)
        self._log.info(f"recording to {recorder.path}")
        return recorder

    def _finish_file(self) -> None:
        recorder, self._recorder = self._recorder, None
        if recorder is None:
            return
        try:
            summary = recorder.close()
        except RecordingError as error:
            self._error(str(error))
            return
        self._summaries.append(summary)
        with self._condition:
            self._finished_bytes += summary.size_bytes
            self._stats.bytes_written = self._finished_bytes
            self._stats.files_finished += 1
            self._stats.current_file = ""
        self._log.info(
            f"finished {summary.path}: {summary.message_count} messages, {summary.size_bytes} bytes, "
            f"sha256 {summary.sha256[:12]}"
        )
        self._register(summary)

    def _register(self, summary: RecordingSummary) -> None:
        if self.store_url is None:
            return
        try:
            with ExperimentStore.open(self.store_url) as store:
                row = register_summary(store, summary)
        except Exception as error:  # store trouble of any kind must not lose the record
            pending = summary.path.with_name(summary.path.name + ".unregistered.json")
            self._error(
                f"could not register {summary.path.name} in the experiment store: {error} "
                f"Its record is kept in {pending.name}; register it when the store is back."
            )
            try:
                pending.write_text(json.dumps(summary_record(summary), indent=2))
            except OSError as write_error:
                self._error(f"could not write {pending}: {write_error.strerror}.")
            return
        self._log.info(f"registered {summary.path.name} in the experiment store (recording {row})")

    def _count(self, recorded: int = 0, dropped: int = 0) -> None:
        with self._condition:
            self._stats.recorded += recorded
            self._stats.dropped += dropped
            current = self._recorder.size_bytes if self._recorder is not None else 0
            self._stats.bytes_written = self._finished_bytes + current

    def _error(self, text: str) -> None:
        with self._condition:
            repeated = self._stats.last_error == text
            self._stats.last_error = text
            self._stats.errors += 1
        if not repeated:
            self._log.error(text)


def summary_record(summary: RecordingSummary) -> dict[str, object]:
    """A JSON-ready record of a finished file (what the store would have been given)."""
    return {
        "path": str(summary.path),
        "campaign_id": summary.campaign_id,
        "experiment_id": summary.experiment_id,
        "sha256": summary.sha256,
        "message_count": summary.message_count,
        "size_bytes": summary.size_bytes,
        "started_at": summary.started_at.isoformat(),
        "ended_at": summary.ended_at.isoformat(),
        "topics": summary.topics,
    }
