"""What the recorder records and how: its parameters and the topic policy (no ROS, light imports).

Kept apart from the recording engine (tablet_workcell.data.recording) so that the node
catalog and the launcher read the parameters without importing the store and MCAP code.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from datetime import UTC, datetime

from tablet_workcell.parameters import ParamSpec

IMAGE_TYPE = "sensor_msgs/msg/Image"

RECORDER_PARAMETERS = (
    ParamSpec(
        "output_dir", "str", "runs/recordings", "folder of the recordings (one sub-folder per campaign)"
    ),
    ParamSpec("campaign_id", "str", "", "campaign the recording belongs to; empty: campaign-<UTC time>"),
    ParamSpec("experiment_id", "str", "", "experiment the recording belongs to; empty: the whole campaign"),
    ParamSpec("store_url", "str", "", "experiment store the recordings are registered in; empty: default"),
    ParamSpec("exclude_topics", "str_array", [], "topics not recorded (shell patterns, e.g. /camera/*)"),
    ParamSpec(
        "include_hidden_topics", "bool", False, "also record hidden topics (a name part starts with _)"
    ),
    ParamSpec(
        "image_rate_hz",
        "float",
        5.0,
        "most frames per second recorded of each sensor_msgs/Image topic; 0: every frame",
        minimum=0.0,
        maximum=1000.0,
    ),
    ParamSpec(
        "discovery_period_s", "float", 0.5, "period of looking for new topics [s]", minimum=0.05, maximum=60.0
    ),
    ParamSpec(
        "diagnostics_period_s", "float", 1.0, "period of /diagnostics updates [s]", minimum=0.1, maximum=60.0
    ),
    ParamSpec("queue_depth", "int", 50, "subscription queue depth per topic", minimum=1, maximum=10000),
    ParamSpec(
        "compression",
        "str",
        "auto",
        "MCAP chunk compression (auto: zstd, else lz4, else none)",
        choices=("auto", "zstd", "lz4", "none"),
    ),
    ParamSpec(
        "max_file_size_mb",
        "float",
        0.0,
        "start a new numbered file past this size [MiB]; 0: one file per campaign",
        minimum=0.0,
        maximum=1e7,
    ),
    ParamSpec(
        "buffer_mb",
        "float",
        256.0,
        "messages waiting for the disk beyond this are dropped (and counted) [MiB]",
        minimum=1.0,
        maximum=65536.0,
    ),
)


def default_campaign_id(now: datetime | None = None) -> str:
    return f"campaign-{(now or datetime.now(UTC)):%Y%m%dT%H%M%SZ}"


def is_hidden(topic: str) -> bool:
    return any(part.startswith("_") for part in topic.split("/"))


def should_record(topic: str, exclude: Sequence[str], include_hidden: bool = False) -> bool:
    if is_hidden(topic) and not include_hidden:
        return False
    return not any(fnmatch.fnmatchcase(topic, pattern) for pattern in exclude)


class RateLimiter:
    """Passes at most ``rate_hz`` events per second on average (0: all), by the times given."""

    def __init__(self, rate_hz: float) -> None:
        self.period_ns = round(1e9 / rate_hz) if rate_hz > 0 else 0
        self._next_ns: int | None = None

    def allow(self, time_ns: int) -> bool:
        if self.period_ns == 0:
            return True
        due = self._next_ns
        if due is not None and time_ns < due - 2 * self.period_ns:
            due = None  # time jumped back (simulated clock restarted): start over
        if due is not None and time_ns < due:
            return False
        # Keep the schedule (exact average rate) unless the stream paused for over a period.
        if due is None or time_ns - due >= self.period_ns:
            self._next_ns = time_ns + self.period_ns
        else:
            self._next_ns = due + self.period_ns
        return True
