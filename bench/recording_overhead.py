"""Benchmark what recording every topic costs: recorder CPU, publisher CPU, losses and file size.

Load: one publisher process sends what the cell sends at its busiest: 640x480 bgr8 camera frames at
30 Hz (rendered by the digital twin's camera, sensor noise included, so compression sees realistic
pixels; published as serialized bytes built with tablet_workcell.image_wire, as the camera node does),
sensor_msgs/JointState at 100 Hz (the arm) and tablet_workcell/CellStatus at 10 Hz.

Configurations, measured in the same run: no recorder (baseline: nobody subscribes); the recorder node
with ``image_rate_hz: 0`` (every frame) and zstd chunk compression (the default), lz4, or none; the
recorder with its default image throttle (5 Hz, zstd).

How: the driver starts the recorder through the package's own launcher (plan_processes +
GraphSupervisor) with the environment config/workcell.yaml gives every node (Fast DDS shared-memory
profile, glibc malloc settings), then the publisher process (this file, ``--role publisher``) with the
same environment. The publisher waits until the recorder subscribed to all three topics (no fixed
sleeps), prints START, publishes for ``--duration-s`` on an absolute schedule, prints PUBLISHED with its
counts and its own CPU time (/proc/self/stat), then follows the recorder's /diagnostics until it has
received every message (or stops making progress) and prints DRAINED. The driver reads the recorder's
CPU time from /proc/<pid>/stat (all threads) at START and DRAINED, stops the recorder with SIGINT (so it
finishes its file), counts the messages per topic in the MCAP file and takes the recorder's own count
of throttled frames from its last log line. dropped = published - recorded - throttled, per topic.
CPU is given in % of one core over the measured window.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import random
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
TOPICS = {"image": "/camera/image", "joints": "/arm/joint_states", "status": "/workcell/status"}
RATES_HZ = {"image": 30.0, "joints": 100.0, "status": 10.0}
# (name, image_rate_hz or None for no recorder, MCAP chunk compression)
CONFIGS: tuple[tuple[str, float | None, str], ...] = (
    ("no recorder", None, ""),
    ("recorder, every frame", 0.0, "auto"),
    ("recorder, every frame, lz4", 0.0, "lz4"),
    ("recorder, every frame, raw", 0.0, "none"),
    ("recorder, images at 5 Hz", 5.0, "auto"),
)
MATCH_TIMEOUT_S = 30.0
DRAIN_TIMEOUT_S = 30.0
STOPPED = re.compile(r"recorder stopped: .* (\d+) dropped, (\d+) image frames throttled")


def cpu_seconds(pid: int | str = "self") -> float:
    """User + system CPU time of a process (all its threads) from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- publisher process (rclpy imported here)
def render_frames(count: int) -> list[Any]:
    import numpy as np  # noqa: PLC0415

    from tablet_workcell.twin.camera import RenderSettings  # noqa: PLC0415
    from tablet_workcell.twin.experiment import ExperimentSpec, simulate_experiment  # noqa: PLC0415
    from tablet_workcell.twin.video import film  # noqa: PLC0415

    truth = simulate_experiment(ExperimentSpec({"mcc": 0.6, "lactose": 0.35, "ccs": 0.05}), 0)
    assert truth.droplet is not None
    stride = max(1, truth.droplet.time_s.size // count)
    filmed = film(truth.droplet, RenderSettings(), np.random.default_rng(0), stride=stride)
    return [item.frame.image for _, item in zip(range(count), filmed, strict=False)]


class BenchPublisher:
    """The load: publishers of the three topics, and a /diagnostics listener for the recorder's counts."""

    def __init__(self) -> None:
        import rclpy  # noqa: PLC0415
        from diagnostic_msgs.msg import DiagnosticArray  # noqa: PLC0415
        from rclpy.executors import SingleThreadedExecutor  # noqa: PLC0415
        from rclpy.node import Node  # noqa: PLC0415
        from sensor_msgs.msg import Image, JointState  # noqa: PLC0415

        from tablet_workcell.msg import CellStatus, StationStatus  # noqa: PLC0415
        from tablet_workcell.ros.qos import STATUS  # noqa: PLC0415

        self.frames = render_frames(30)
        self._context = rclpy.Context()
        rclpy.init(context=self._context, args=[])
        self.node = Node("bench_publisher", context=self._context)
        self._lock = threading.Lock()
        self._received: dict[str, int] = {}
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, STATUS)
        self.publishers = {
            "image": self.node.create_publisher(Image, TOPICS["image"], STATUS),
            "joints": self.node.create_publisher(JointState, TOPICS["joints"], STATUS),
            "status": self.node.create_publisher(CellStatus, TOPICS["status"], STATUS),
        }
        self.joints = JointState(name=[f"joint_{i}" for i in range(6)], position=[0.0] * 6)
        self.status = CellStatus(mode=CellStatus.MODE_RUNNING, stations=[StationStatus(station="press")])
        self._executor = SingleThreadedExecutor(context=self._context)
        self._executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        try:
            self._executor.spin()
        except Exception:  # the context shuts down under it at the end
            return

    def _on_diagnostics(self, array: Any) -> None:
        for status in array.status:
            if status.name.startswith("recorder"):
                counts = {kv.key.removeprefix("received "): kv.value for kv in status.values}
                with self._lock:
                    self._received.update({k: int(v) for k, v in counts.items() if k.startswith("/")})

    def received(self, topics: list[str]) -> dict[str, int]:
        with self._lock:
            return {topic: self._received.get(topic, 0) for topic in topics}

    def wait_for_recorder(self) -> None:
        deadline = time.monotonic() + MATCH_TIMEOUT_S
        while any(p.get_subscription_count() < 1 for p in self.publishers.values()):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the recorder did not subscribe within {MATCH_TIMEOUT_S:.0f} s")
            time.sleep(0.02)

    def publish(self, key: str, index: int) -> None:
        from tablet_workcell.image_wire import encode_image  # noqa: PLC0415

        stamp = time.time_ns()
        if key == "image":
            frame = self.frames[index % len(self.frames)]
            self.publishers[key].publish(encode_image(frame, "bgr8", stamp, "camera"))
        elif key == "joints":
            self.joints.header.stamp.sec, self.joints.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
            self.joints.position = [index * 1e-3 * i for i in range(6)]
            self.publishers[key].publish(self.joints)
        else:
            self.status.experiments_completed = index
            self.publishers[key].publish(self.status)

    def run(self, duration_s: float) -> dict[str, int]:
        """Publish every topic at its rate on an absolute schedule (no drift) for ``duration_s``."""
        counts = dict.fromkeys(TOPICS, 0)
        start = time.monotonic()
        next_at = dict.fromkeys(TOPICS, start)
        while True:
            key = min(next_at, key=lambda k: next_at[k])
            if next_at[key] >= start + duration_s:
                break
            time.sleep(max(0.0, next_at[key] - time.monotonic()))
            self.publish(key, counts[key])
            counts[key] += 1
            next_at[key] = start + counts[key] / RATES_HZ[key]
        return {TOPICS[key]: n for key, n in counts.items()}

    def wait_drained(self, published: dict[str, int]) -> None:
        """Until the recorder received every message, or made no progress for 3 s."""
        topics = list(published)
        last: dict[str, int] = {}
        progress_at, deadline = time.monotonic(), time.monotonic() + DRAIN_TIMEOUT_S
        while time.monotonic() < deadline and time.monotonic() - progress_at < 3.0:
            now = self.received(topics)
            if all(now[t] >= published[t] for t in topics):
                return
            if now != last:
                last, progress_at = now, time.monotonic()
            time.sleep(0.05)

    def close(self) -> None:
        import rclpy  # noqa: PLC0415

        self._executor.shutdown(timeout_sec=5.0)
        self._thread.join(timeout=5.0)  # the spinning thread ends before the node goes away
        self.node.destroy_node()
        rclpy.try_shutdown(context=self._context)


def run_publisher(args: argparse.Namespace) -> None:
    bench = BenchPublisher()
    try:
        if args.recorder:
            bench.wait_for_recorder()
        print("START", flush=True)
        cpu0, start = cpu_seconds(), time.monotonic()
        published = bench.run(args.duration_s)
        wall, cpu = time.monotonic() - start, cpu_seconds() - cpu0
        print("PUBLISHED " + json.dumps({"published": published, "cpu_s": cpu, "wall_s": wall}), flush=True)
        if args.recorder:
            bench.wait_drained(published)
        print("DRAINED", flush=True)
    finally:
        bench.close()


# ---------------------------------------------------------------- driver
def graph_file(folder: Path, image_rate_hz: float, compression: str) -> Path:
    from tablet_workcell.bringup.description import read_yaml  # noqa: PLC0415
    from tablet_workcell.bringup.paths import default_graph_path  # noqa: PLC0415

    production = read_yaml(default_graph_path())
    ros = dict(production.get("ros") or {})
    if ros.get("fastdds_profile"):
        ros["fastdds_profile"] = str((default_graph_path().parent / ros["fastdds_profile"]).resolve())
    parameters = {
        "output_dir": str(folder / "recordings"),
        "campaign_id": "bench",
        "store_url": f"sqlite:///{folder / 'store.sqlite'}",
        "image_rate_hz": image_rate_hz,
        "compression": compression,
        "diagnostics_period_s": 0.2,  # the publisher sees the recorder catch up sooner
        "exclude_topics": ["/parameter_events"],  # idle here; keeps the counts to the benchmark's topics
    }
    graph = {
        "ros": ros,
        "environment": production.get("environment") or {},
        "nodes": [{"name": "recorder", "executable": "recorder", "parameters": parameters}],
    }
    path = folder / "graph.yaml"
    path.write_text(yaml.safe_dump(graph))
    return path


def run_config(
    name: str, image_rate_hz: float | None, compression: str, args: argparse.Namespace, folder: Path
) -> dict[str, Any]:
    from tablet_workcell.bringup.description import load_graph  # noqa: PLC0415
    from tablet_workcell.bringup.paths import default_graph_path  # noqa: PLC0415
    from tablet_workcell.bringup.processes import plan_processes  # noqa: PLC0415
    from tablet_workcell.bringup.supervisor import GraphSupervisor  # noqa: PLC0415
    from tablet_workcell.data.mcap_io import read_recording  # noqa: PLC0415

    domain = random.randint(100, 200)
    environment = dict(os.environ) | load_graph(default_graph_path(), sim=False).environment
    environment |= {"ROS_DOMAIN_ID": str(domain), "PYTHONUNBUFFERED": "1"}
    specs = []
    if image_rate_hz is not None:
        description = load_graph(graph_file(folder, image_rate_hz, compression), sim=False)
        specs = plan_processes(description, folder / "run", domain, base_environment=environment)
    lines: list[str] = []
    command = [sys.executable, __file__, "--role", "publisher", "--duration-s", str(args.duration_s)]
    command += ["--recorder"] if specs else []
    with GraphSupervisor(specs, lambda _node, line: lines.append(line)) as supervisor:
        recorder_pid = supervisor.pids.get("recorder")
        publisher = subprocess.Popen(command, env=environment, stdout=subprocess.PIPE, text=True)
        assert publisher.stdout is not None
        marks: dict[str, tuple[float, float]] = {}
        report: dict[str, Any] = {}
        for raw in publisher.stdout:
            word, _, rest = raw.strip().partition(" ")
            if word in ("START", "DRAINED"):
                marks[word] = (time.monotonic(), cpu_seconds(recorder_pid) if recorder_pid else 0.0)
            if word == "PUBLISHED":
                report = json.loads(rest)
        if publisher.wait(timeout=60) != 0 or not report:
            output = "\n    ".join(lines[-20:])
            raise RuntimeError(
                f"{name}: the publisher failed ({publisher.returncode}); recorder:\n    {output}"
            )
    window_s = marks["DRAINED"][0] - marks["START"][0]
    result: dict[str, Any] = {
        "config": name,
        "image_rate_hz": image_rate_hz,
        "compression": compression,
        "publisher_cpu_percent": 100 * report["cpu_s"] / report["wall_s"],
        "published": report["published"],
    }
    if image_rate_hz is None:
        return result
    stopped = next((m for m in map(STOPPED.search, lines) if m), None)
    throttled = int(stopped.group(2)) if stopped else 0
    [recording] = sorted((folder / "recordings").rglob("*.mcap"))
    recorded = Counter(message.topic for message in read_recording(recording))
    published = report["published"]
    result |= {
        "recorder_cpu_percent": 100 * (marks["DRAINED"][1] - marks["START"][1]) / window_s,
        "window_s": window_s,
        "drain_s": window_s - report["wall_s"],
        "recorded": {topic: recorded[topic] for topic in published},
        "throttled": throttled,
        "recorder_dropped": int(stopped.group(1)) if stopped else None,
        "dropped": {
            topic: published[topic] - recorded[topic] - (throttled if topic == TOPICS["image"] else 0)
            for topic in published
        },
        "mcap_bytes": recording.stat().st_size,
        "mcap_mb_per_min": recording.stat().st_size / 1e6 / report["wall_s"] * 60,
    }
    return result


def machine() -> dict[str, Any]:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


def summarize(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per configuration over the rounds: median and range of the CPU figures, total losses."""
    table = []
    for name, rate, _ in CONFIGS:
        mine = [run for run in runs if run["config"] == name]
        row: dict[str, Any] = {"config": name, "rounds": len(mine)}
        for key in ("recorder_cpu_percent", "publisher_cpu_percent", "mcap_mb_per_min", "throttled"):
            values = [run[key] for run in mine if key in run]
            if values:
                row[key] = {"median": statistics.median(values), "min": min(values), "max": max(values)}
        if rate is not None:
            row["dropped"] = sum(sum(run["dropped"].values()) for run in mine)
            row["published"] = sum(sum(run["published"].values()) for run in mine)
        table.append(row)
    return table


def print_table(summary: list[dict[str, Any]]) -> None:
    def cell(row: dict[str, Any], key: str, unit: str = "") -> str:
        if key not in row:
            return "-"
        value = row[key]
        return f"{value['median']:.1f}{unit} ({value['min']:.0f}-{value['max']:.0f})"

    header = ("configuration", "recorder CPU", "publisher CPU", "dropped", "MCAP MB/min")
    print(f"{header[0]:28} {header[1]:>18} {header[2]:>18} {header[3]:>12} {header[4]:>12}")
    for row in summary:
        dropped = f"{row['dropped']}/{row['published']}" if "dropped" in row else "-"
        size = f"{row['mcap_mb_per_min']['median']:.0f}" if "mcap_mb_per_min" in row else "-"
        print(
            f"{row['config']:28} {cell(row, 'recorder_cpu_percent', ' %'):>18} "
            f"{cell(row, 'publisher_cpu_percent', ' %'):>18} {dropped:>12} {size:>12}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration-s", type=float, default=20.0, help="publishing time per configuration")
    parser.add_argument("--rounds", type=int, default=3, help="rounds over all configurations (interleaved)")
    parser.add_argument("--output", type=Path, default=REPO / "bench" / "results" / "recording_overhead.json")
    parser.add_argument("--role", choices=("driver", "publisher"), default="driver", help=argparse.SUPPRESS)
    parser.add_argument("--recorder", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.role == "publisher":
        run_publisher(args)
        return 0
    runs = []
    for round_index in range(args.rounds):
        for name, rate, compression in CONFIGS:
            with tempfile.TemporaryDirectory(prefix="recording_bench_") as folder:
                runs.append(run_config(name, rate, compression, args, Path(folder)) | {"round": round_index})
                print(f"round {round_index + 1}/{args.rounds} done: {name}", flush=True)
    summary = summarize(runs)
    report = {
        "benchmark": "recording_overhead",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "duration_s": args.duration_s,
        "load": {TOPICS[key]: RATES_HZ[key] for key in TOPICS},
        "image": "640x480 bgr8, twin camera frames",
        "summary": summary,
        "runs": runs,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print_table(summary)
    print(f"written to {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
