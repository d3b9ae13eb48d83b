"""recorder: every topic of the cell into MCAP files, every finished file into the experiment store.

* Discovers topics every ``discovery_period_s`` and subscribes to each one that has a
  publisher (except ``exclude_topics`` and hidden topics) with ``raw=True``: messages are
  never deserialized, the CDR bytes go straight to the file.
* QoS follows the publishers: reliable only if every publisher is reliable (so /clock's
  best-effort publisher is matched), transient-local if every publisher is (so a latched
  topic such as /safety/estop delivers its state to a recorder that starts later).
* ``sensor_msgs/msg/Image`` topics are thinned to ``image_rate_hz`` (0: every frame).
* Disk work runs in the session's writer thread (tablet_workcell.data.recording); files
  are finished and registered in the store on shutdown (SIGINT) and on file rotation.
* ``/diagnostics`` (diagnostic_msgs/DiagnosticArray): messages, bytes, dropped and
  throttled counts, the open file, the last error, and the messages received per topic.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.subscription import MessageInfo, Subscription
from rclpy.topic_endpoint_info import TopicEndpointInfo

from tablet_workcell.data.mcap_io import OfferedQos, RecordingError
from tablet_workcell.data.recording import MIB, RecorderStats, RecordingSession
from tablet_workcell.data.recording_config import (
    IMAGE_TYPE,
    RECORDER_PARAMETERS,
    RateLimiter,
    default_campaign_id,
    should_record,
)
from tablet_workcell.data.store import default_url
from tablet_workcell.ros.parameters import declare_parameters
from tablet_workcell.ros.qos import STATUS
from tablet_workcell.ros.runner import run_node

DIAGNOSTICS_TOPIC = "/diagnostics"


def message_class(type_name: str) -> Any:
    """The Python message class of ``pkg/msg/Type`` (what rclpy needs to subscribe)."""
    package, kind, name = type_name.split("/")
    return getattr(importlib.import_module(f"{package}.{kind}"), name)


class RecorderNode(Node):
    def __init__(self) -> None:
        super().__init__("recorder")
        values = declare_parameters(self, RECORDER_PARAMETERS)
        self.campaign_id = values.get_str("campaign_id") or default_campaign_id()
        store_url = values.get_str("store_url") or default_url()
        self._exclude = values.get_str_list("exclude_topics")
        self._include_hidden = values.get_bool("include_hidden_topics")
        self._image_rate_hz = values.get_float("image_rate_hz")
        self._depth = values.get_int("queue_depth")
        self._session = RecordingSession(
            Path(values.get_str("output_dir")),
            self.campaign_id,
            experiment_id=values.get_str("experiment_id") or None,
            store_url=store_url,
            compression=values.get_str("compression"),
            max_file_bytes=int(values.get_float("max_file_size_mb") * MIB),
            buffer_bytes=int(values.get_float("buffer_mb") * MIB),
            log=self.get_logger(),
        )
        self._recorded: dict[str, Subscription[Any]] = {}
        self._ignored: set[str] = set()  # excluded, or not recordable (logged once)
        self._last_reported = RecorderStats()
        self._closed = False
        self._diagnostics = self.create_publisher(DiagnosticArray, DIAGNOSTICS_TOPIC, STATUS)
        self.get_logger().info(
            f"recording campaign {self.campaign_id} into {values.get_str('output_dir')}; "
            f"images at {self._image_rate_hz:g} Hz (0: all); store {store_url}"
        )
        self._session.check_store()
        self._discover()
        self.create_timer(values.get_float("discovery_period_s"), self._discover)
        self.create_timer(values.get_float("diagnostics_period_s"), self._publish_diagnostics)

    # ------------------------------------------------------------------ discovery
    def _discover(self) -> None:
        for topic, types in self.get_topic_names_and_types():
            if topic in self._recorded or topic in self._ignored:
                continue
            if not should_record(topic, self._exclude, self._include_hidden):
                self._ignored.add(topic)
                continue
            publishers = self.get_publishers_info_by_topic(topic)
            if publishers:  # without a publisher its QoS is unknown: look again next period
                self._subscribe(topic, types, publishers)

    def _subscribe(self, topic: str, types: list[str], publishers: list[TopicEndpointInfo]) -> None:
        type_name = types[0]
        if len(types) > 1:
            self.get_logger().warning(f"{topic} carries several types {types}; recording only {type_name}")
        reliable = all(p.qos_profile.reliability == ReliabilityPolicy.RELIABLE for p in publishers)
        latched = all(p.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL for p in publishers)
        offered = [OfferedQos(reliable, latched, p.qos_profile.depth) for p in publishers]
        try:
            message_type = message_class(type_name)
            self._session.add_topic(topic, type_name, offered, latched)
        except (ImportError, AttributeError, ValueError, RecordingError) as error:
            self._ignored.add(topic)
            self.get_logger().error(f"cannot record {topic} ({type_name}): {error}")
            return
        qos = QoSProfile(
            history=HistoryPolicy.KEEP_LAST,
            depth=self._depth,
            reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
            durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE,
        )
        limiter = RateLimiter(self._image_rate_hz) if type_name == IMAGE_TYPE else None
        self._recorded[topic] = self.create_subscription(
            message_type, topic, self._callback(topic, limiter), qos, raw=True
        )
        self.get_logger().info(
            f"recording {topic} ({type_name}, {'reliable' if reliable else 'best effort'}"
            f"{', transient local' if latched else ''})"
        )

    def _callback(self, topic: str, limiter: RateLimiter | None) -> Callable[[bytes, MessageInfo], None]:
        session = self._session
        clock = self.get_clock()

        def on_message(data: bytes, info: MessageInfo) -> None:
            now_ns = clock.now().nanoseconds  # ROS time, like rosbag2: simulated time in simulation
            if limiter is not None and not limiter.allow(now_ns):
                session.count_throttled(topic)
                return
            session.submit(topic, data, now_ns, info["source_timestamp"])

        return on_message

    # ------------------------------------------------------------------ diagnostics
    def _publish_diagnostics(self) -> None:
        stats = self._session.stats()
        before, self._last_reported = self._last_reported, stats
        if stats.errors > before.errors:
            level, message = DiagnosticStatus.ERROR, stats.last_error
        elif stats.dropped > before.dropped:
            level, message = DiagnosticStatus.WARN, f"{stats.dropped - before.dropped} messages dropped"
        else:
            level, message = DiagnosticStatus.OK, f"recording {stats.topics} topics"
        values = {
            "campaign_id": self.campaign_id,
            "file": stats.current_file,
            "topics": stats.topics,
            "messages_received": stats.received,
            "messages_recorded": stats.recorded,
            "bytes_written": stats.bytes_written,
            "dropped": stats.dropped,
            "throttled": stats.throttled,
            "files_finished": stats.files_finished,
            "errors": stats.errors,
            "last_error": stats.last_error,
        } | {f"received {topic}": count for topic, count in sorted(stats.received_by_topic.items())}
        status = DiagnosticStatus(
            level=level,
            name=f"{self.get_name()}: recording",
            message=message,
            hardware_id=self.get_fully_qualified_name(),
            values=[KeyValue(key=key, value=str(value)) for key, value in values.items()],
        )
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self._diagnostics.publish(array)

    # ------------------------------------------------------------------ shutdown
    def destroy_node(self) -> None:
        # The node goes first: after a SIGINT the context (and the /rosout publisher) is
        # already shut down, so the session's last words go to the console only.
        super().destroy_node()
        if self._closed:
            return
        self._closed = True
        summaries = self._session.close()
        stats = self._session.stats()
        self.get_logger().info(
            f"recorder stopped: {len(summaries)} file(s), {stats.recorded} messages recorded, "
            f"{stats.dropped} dropped, {stats.throttled} image frames throttled"
        )


def main() -> int:
    return run_node(RecorderNode)


if __name__ == "__main__":
    raise SystemExit(main())
