"""The recorder node in a real graph: custom types, a latched state it joins late, throttled images.

The safety node starts first and latches the engaged e-stop; the recorder starts after
that, so the e-stop in the file proves the transient-local subscription. Every wait is on
discovery or on the recorder's own /diagnostics counts, with a timeout; the supervisors
stop every process (SIGINT first), also when an assertion fails.
"""

from __future__ import annotations

import functools
import hashlib
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from diagnostic_msgs.msg import DiagnosticArray
from sensor_msgs.msg import Image
from sqlalchemy import select
from sqlalchemy.orm import Session

from tablet_workcell.bringup.description import load_graph, read_yaml
from tablet_workcell.bringup.paths import default_graph_path
from tablet_workcell.bringup.processes import plan_processes
from tablet_workcell.bringup.supervisor import GraphSupervisor
from tablet_workcell.data import schema
from tablet_workcell.data.mcap_io import verify_with_rosbags
from tablet_workcell.data.store import ExperimentStore
from tablet_workcell.image_wire import encode_image
from tablet_workcell.msg import CellStatus, StationStatus
from tablet_workcell.ros.graph_probe import GraphProbe
from tablet_workcell.ros.qos import STATUS

CAMPAIGN = "recorder-test"
STATUS_TOPIC = "/test/cell_status"
IMAGE_TOPIC = "/test/camera/image"
FRAMES, FRAME_RATE_HZ, IMAGE_RATE_HZ = 90, 30.0, 5.0
STATUSES = 5


def wait_until(condition: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(0.02)


def write_graph(folder: Path, output: Path, store_url: str) -> Path:
    """The production graph's ROS settings and environment, with safety and the recorder only."""
    production = read_yaml(default_graph_path())
    ros = dict(production.get("ros") or {})
    if ros.get("fastdds_profile"):
        ros["fastdds_profile"] = str((default_graph_path().parent / ros["fastdds_profile"]).resolve())
    graph = {
        "ros": ros,
        "environment": production.get("environment") or {},
        "nodes": [
            {"name": "safety", "executable": "safety", "parameters": {"engaged_at_start": True}},
            {
                "name": "recorder",
                "executable": "recorder",
                "parameters": {
                    "output_dir": str(output),
                    "campaign_id": CAMPAIGN,
                    "store_url": store_url,
                    "image_rate_hz": IMAGE_RATE_HZ,
                    "exclude_topics": ["/parameter_events"],
                    "discovery_period_s": 0.1,
                    "diagnostics_period_s": 0.2,
                },
            },
        ],
    }
    path = folder / "graph.yaml"
    path.write_text(yaml.safe_dump(graph))
    return path


class RecorderDiagnostics:
    """The latest /diagnostics values of the recorder, as a dict."""

    def __init__(self, probe: GraphProbe) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, str] = {}
        probe.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_array, STATUS)

    def _on_array(self, array: DiagnosticArray) -> None:
        for status in array.status:
            if status.name.startswith("recorder"):
                with self._lock:
                    self._values = {item.key: item.value for item in status.values}

    def get(self, key: str, default: str = "0") -> str:
        with self._lock:
            return self._values.get(key, default)


def recorder_subscribed(probe: GraphProbe, topic: str) -> bool:
    return any(info.node_name == "recorder" for info in probe.node.get_subscriptions_info_by_topic(topic))


def status_message(index: int) -> CellStatus:
    message = CellStatus(mode=CellStatus.MODE_RUNNING, campaign_id=CAMPAIGN, experiments_completed=index)
    message.stations = [
        StationStatus(station="press", state=StationStatus.STATE_BUSY, message=f"tablet {index}")
    ]
    return message


def publish_and_wait(probe: GraphProbe, diagnostics: RecorderDiagnostics) -> None:
    """Publish the test's statuses and camera frames, then wait until the recorder has them all."""
    status_publisher = probe.node.create_publisher(CellStatus, STATUS_TOPIC, STATUS)
    image_publisher = probe.node.create_publisher(Image, IMAGE_TOPIC, STATUS)
    for topic in (STATUS_TOPIC, IMAGE_TOPIC, "/safety/estop"):
        wait_until(functools.partial(recorder_subscribed, probe, topic), f"the recorder on {topic}")
    for index in range(STATUSES):
        status_publisher.publish(status_message(index))
    frame = np.zeros((480, 640, 3), np.uint8)
    start = time.monotonic()
    for index in range(FRAMES):  # paced like a camera, not a wait
        frame[:] = index
        image_publisher.publish(encode_image(frame, "bgr8", index, "camera"))
        time.sleep(max(0.0, start + (index + 1) / FRAME_RATE_HZ - time.monotonic()))
    wait_until(
        lambda: (
            diagnostics.get(f"received {IMAGE_TOPIC}") == str(FRAMES)
            and diagnostics.get(f"received {STATUS_TOPIC}") == str(STATUSES)
        ),
        "the recorder to receive every message",
    )


def run_graph(tmp_path: Path, domain: int, output: Path, store_url: str) -> tuple[dict[str, str], list[str]]:
    """Safety first, the recorder late; returns the recorder's last diagnostics and all output."""
    description = load_graph(write_graph(tmp_path, output, store_url), sim=False)
    specs = {spec.name: spec for spec in plan_processes(description, tmp_path / "run", domain)}
    lines: list[str] = []

    def sink(name: str, line: str) -> None:
        lines.append(f"[{name}] {line}")

    with GraphProbe("recorder_test") as probe, GraphSupervisor([specs["safety"]], sink):
        probe.wait_for_nodes(["safety"])
        assert probe.latest_estop().active  # latched before the recorder exists
        diagnostics = RecorderDiagnostics(probe)
        with GraphSupervisor([specs["recorder"]], sink) as recorder:
            publish_and_wait(probe, diagnostics)
            final = {key: diagnostics.get(key) for key in ("throttled", "dropped", "errors")}
            assert not recorder.exited()
    return final, lines


def test_recorder_writes_custom_types_latched_state_and_throttled_images(
    tmp_path: Path, ros_domain_id: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    output = tmp_path / "recordings"
    store_url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    environment = load_graph(default_graph_path(), sim=False).environment
    for name, value in environment.items():
        monkeypatch.setenv(name, value)  # this process publishes images through the same transport
    final, lines = run_graph(tmp_path, ros_domain_id, output, store_url)
    assert any(line.startswith("[recorder] ") and "recorder stopped: 1 file(s)" in line for line in lines)
    assert not any("Traceback" in line for line in lines), "\n".join(lines)

    files = sorted(output.rglob("*.mcap*"))
    assert files == [output / CAMPAIGN / f"{CAMPAIGN}_0.mcap"], files
    recording = files[0]
    messages = verify_with_rosbags(recording)
    by_topic: dict[str, list[Any]] = {}
    for item in messages:
        by_topic.setdefault(item.topic, []).append(item.message)

    assert "/parameter_events" not in by_topic  # excluded
    assert any(m.active and m.reason == "engaged at start-up" for m in by_topic["/safety/estop"])
    statuses = by_topic[STATUS_TOPIC]
    assert [(s.experiments_completed, s.campaign_id) for s in statuses] == [
        (i, CAMPAIGN) for i in range(STATUSES)
    ]
    assert [(st.station, st.message) for st in statuses[-1].stations] == [("press", f"tablet {STATUSES - 1}")]

    images = by_topic[IMAGE_TOPIC]
    expected = FRAMES / FRAME_RATE_HZ * IMAGE_RATE_HZ  # 15 frames in 3 s at 5 Hz
    assert expected * 0.6 <= len(images) <= expected * 1.4, len(images)
    assert final == {"throttled": str(FRAMES - len(images)), "dropped": "0", "errors": "0"}
    fills = [int(image.data[0]) for image in images]
    assert fills == sorted(fills) and all(np.all(image.data == image.data[0]) for image in images)
    times = [item.log_time_ns for item in messages if item.topic == IMAGE_TOPIC]
    assert (len(times) - 1) / ((times[-1] - times[0]) / 1e9) <= IMAGE_RATE_HZ * 1.15

    with ExperimentStore.open(store_url) as store, Session(store.engine) as session:
        [row] = session.scalars(select(schema.Recording)).all()
        assert (row.campaign_id, Path(row.path).resolve()) == (CAMPAIGN, recording.resolve())
        assert row.sha256 == hashlib.sha256(recording.read_bytes()).hexdigest()
        assert (row.message_count, row.size_bytes) == (len(messages), recording.stat().st_size)
