"""Benchmark camera-frame transport between two ROS 2 processes, with and without our Fast DDS profile.

Why this exists: a 640x480 bgr8 ``sensor_msgs/Image`` (921,600 bytes of pixels) does not fit the 512 KiB
segment of Fast DDS's built-in shared-memory transport, and same-host image traffic then costs ~13 ms
per frame instead of ~2-3 ms. ``config/fastdds_shm.xml`` gives the SHM transport a 16 MiB segment. This
script measures the configurations in the same run, so the target "p95 <= 3 ms with the profile" is
checked on the machine at hand rather than assumed.

Configurations: Fast DDS defaults; the profile alone; and the environment config/workcell.yaml gives
every node (the profile plus glibc malloc settings that keep freed memory in the heap: without them
each ~1 MB buffer rclpy and Fast DDS allocate per frame is returned to the kernel and faulted in again,
which measured as about half the latency). Two paths: rclpy's message path (a new numpy frame converted
into ``Image.data`` every time, as a camera node does) and the wire path of this package's camera
(``tablet_workcell.image_wire``: the serialized Image is built from the frame with one copy and
published as bytes; the subscriber takes the raw bytes and views the pixels in place).

How: per configuration the driver spawns a subscriber process and a publisher process (this same file,
``--role``) on their own random ``ROS_DOMAIN_ID`` with discovery kept on localhost. The publisher waits
for the subscription to match (no fixed sleeps), sends warm-up frames, then measured frames at
``--rate-hz``, stamping ``header.stamp`` with ``time.time_ns()`` just before ``publish()``; the
subscriber reads ``time.time_ns()`` first thing in its callback. Both processes read the same host
clock, so receive minus stamp is the end-to-end latency: conversion to C, serialisation, transport,
executor wake-up and conversion back to Python. Each child also reports the Fast DDS shared-memory
segments it mapped (from /proc/self/maps), which proves whether the profile's segment was in effect.

QoS: reliable, keep-last depth 5, volatile. Reliable because a lost camera frame should show up as
latency cost rather than vanish (with best effort, one lost fragment of the ~15 fragments of a frame
loses the whole frame); depth 5 lets a short burst queue (~4.6 MB) without hiding a sustained backlog.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import logging
import os
import platform
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

LOG = logging.getLogger("bench.image_transport")
REPO = Path(__file__).resolve().parents[1]
WIDTH, HEIGHT, CHANNELS = 640, 480, 3
FRAME_BYTES = WIDTH * HEIGHT * CHANNELS
TOPIC = "bench/image"
TARGET_P95_MS = 3.0
TARGET = f"p95 <= {TARGET_P95_MS} ms with the profile"
# (name, environment, path). Environment "none": Fast DDS defaults; "profile": only the Fast DDS
# profile; "workcell": everything config/workcell.yaml gives node processes (the profile and the malloc
# settings), as `workcell up` and the launch file apply it. Path "message" is rclpy's Image message path
# (a camera node filling Image.data from each new numpy frame); "wire" publishes the serialized Image
# built from the frame with tablet_workcell.image_wire and subscribes raw (the cell's camera path).
CONFIGS = (
    ("default/message", "none", "message"),
    ("profile/message", "profile", "message"),
    ("workcell/message", "workcell", "message"),
    ("workcell/wire", "workcell", "wire"),
)
TARGET_CONFIG = "workcell/wire"
MATCH_TIMEOUT_S = 15.0  # discovery is usually < 0.3 s but has been seen to take ~3 s
IDLE_TIMEOUT_S = 5.0  # the subscriber gives up this long after the last frame it saw
BUILTIN_SEGMENT_MAX = 2**20  # the built-in SHM segment maps as ~540 KB; a bigger one is the profile's
# Variables that would change what "default transports" means; removed from every child's environment.
DDS_ENV = (
    "FASTDDS_DEFAULT_PROFILES_FILE",
    "FASTRTPS_DEFAULT_PROFILES_FILE",
    "FASTDDS_BUILTIN_TRANSPORTS",
    "GLIBC_TUNABLES",
)
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")


# ---------------------------------------------------------------- child processes (rclpy imported lazily)
def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def _qos() -> Any:
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy  # noqa: PLC0415

    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=5,
        reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.VOLATILE,
    )


def _shm_segments() -> list[int]:
    """Sizes in bytes of the Fast DDS shared-memory data segments mapped by this process (Linux only)."""
    sizes: dict[str, int] = {}
    with contextlib.suppress(OSError), open("/proc/self/maps", encoding="ascii", errors="replace") as maps:
        for line in maps:
            fields = line.split()
            name = fields[-1] if len(fields) >= 6 else ""
            if name.startswith("/dev/shm/fastdds_") and "port" not in name:
                start, end = (int(x, 16) for x in fields[0].split("-"))
                sizes[name] = sizes.get(name, 0) + end - start
    return sorted(sizes.values(), reverse=True)


def run_publisher(args: argparse.Namespace) -> dict[str, Any]:
    import rclpy  # noqa: PLC0415
    from rclpy.signals import SignalHandlerOptions  # noqa: PLC0415
    from sensor_msgs.msg import Image  # noqa: PLC0415

    from tablet_workcell.image_wire import encode_image  # noqa: PLC0415

    # No rclpy signal handlers: SIGINT/SIGTERM raise in Python, so ``finally`` destroys the node cleanly.
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    node = rclpy.create_node("bench_image_publisher")
    try:
        pub = node.create_publisher(Image, TOPIC, _qos())
        rng = np.random.default_rng(0)
        frames = [rng.integers(0, 256, (HEIGHT, WIDTH, CHANNELS), dtype=np.uint8) for _ in range(2)]
        msg = Image(height=HEIGHT, width=WIDTH, encoding="bgr8", step=WIDTH * CHANNELS)
        t0 = time.monotonic()
        while pub.get_subscription_count() < 1:
            if time.monotonic() - t0 > MATCH_TIMEOUT_S:
                raise TimeoutError(f"no subscription matched within {MATCH_TIMEOUT_S} s")
            time.sleep(0.01)
        match_s = time.monotonic() - t0
        total = args.warmup + args.frames
        publish_ns: list[int] = []
        start = time.monotonic()
        for seq in range(total):  # absolute schedule: no drift from sleep overshoot
            delay = start + seq / args.rate_hz - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            frame = frames[seq % 2]  # a different frame each time, as from a camera
            now = time.time_ns()
            if args.path == "wire":
                pub.publish(encode_image(frame, "bgr8", now, str(seq)))
            else:
                msg.header.frame_id = str(seq)
                msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(now, 1_000_000_000)
                # tobytes(): assigning the numpy array itself to Image.data costs ~45 ms per frame.
                msg.data = frame.tobytes()
                pub.publish(msg)
            publish_ns.append(time.time_ns() - now)
        send_s = time.monotonic() - start
        t1 = time.monotonic()  # stay alive for reliable repairs until the subscriber has left (bounded)
        while pub.get_subscription_count() > 0 and time.monotonic() - t1 < 2 * IDLE_TIMEOUT_S:
            time.sleep(0.02)
        publish_ms = float(np.median(publish_ns[args.warmup :])) / 1e6
        shm = _shm_segments()
        return {"sent": total, "match_s": match_s, "send_s": send_s, "publish_ms": publish_ms, "shm": shm}
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


def run_subscriber(args: argparse.Namespace) -> dict[str, Any]:
    import rclpy  # noqa: PLC0415
    from rclpy.signals import SignalHandlerOptions  # noqa: PLC0415
    from sensor_msgs.msg import Image  # noqa: PLC0415

    from tablet_workcell.image_wire import decode_image  # noqa: PLC0415

    total = args.warmup + args.frames
    latencies_ns: list[int] = []
    recv_ns: list[int] = []
    state = {"received": 0, "last_seq": -1, "bad_size": 0, "last_rx": 0.0}

    def on_image(msg: Any) -> None:
        now = time.time_ns()
        if args.path == "wire":
            image = decode_image(msg)  # a view: the pixels are not copied again
            seq, stamp_ns, size = int(image.frame_id), image.stamp_ns, image.pixels.nbytes
        else:
            seq, size = int(msg.header.frame_id), len(msg.data)
            stamp_ns = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        state.update(received=state["received"] + 1, last_seq=seq, last_rx=time.monotonic())
        if size != FRAME_BYTES:
            state["bad_size"] += 1
        if seq >= args.warmup:
            latencies_ns.append(now - stamp_ns)
            recv_ns.append(now)

    # No rclpy signal handlers: SIGINT/SIGTERM raise in Python, so ``finally`` destroys the node cleanly.
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    node = rclpy.create_node("bench_image_subscriber")
    try:
        node.create_subscription(Image, TOPIC, on_image, _qos(), raw=args.path == "wire")
        deadline = time.monotonic() + MATCH_TIMEOUT_S + total / args.rate_hz + 2 * IDLE_TIMEOUT_S
        while state["last_seq"] < total - 1:
            rclpy.spin_once(node, timeout_sec=0.1)
            now = time.monotonic()
            if now > deadline or (state["received"] and now - state["last_rx"] > IDLE_TIMEOUT_S):
                LOG.warning("stopping early: last frame %s of %d", state["last_seq"], total - 1)
                break
        return {**state, "latencies_ns": latencies_ns, "recv_ns": recv_ns, "shm": _shm_segments()}
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


# ---------------------------------------------------------------- driver
def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=3)


def _spawn_pair(name: str, env: dict[str, str], args: argparse.Namespace, tmp: Path) -> None:
    """Run subscriber and publisher to completion; raise if either fails or the deadline passes."""
    path = next(p for n, _, p in CONFIGS if n == name)
    common = ["--frames", str(args.frames), "--warmup", str(args.warmup), "--rate-hz", str(args.rate_hz)]
    common += ["--path", path]
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for role in ("subscriber", "publisher"):
            cmd = [sys.executable, str(Path(__file__).resolve()), "--role", role, *common]
            cmd += ["--result-file", str(tmp / f"{_file(name)}-{role}.json")]
            with open(tmp / f"{_file(name)}-{role}.log", "wb") as log_file:
                procs[role] = subprocess.Popen(cmd, env=env, stdout=log_file, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + MATCH_TIMEOUT_S + (args.warmup + args.frames) / args.rate_hz + 30
        while True:
            codes = {role: proc.poll() for role, proc in procs.items()}
            for role, code in codes.items():
                if code:  # fail fast: do not wait for the other child's timeouts
                    tail = (tmp / f"{_file(name)}-{role}.log").read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"{name}: {role} exited with {code}:\n{tail}")
            if all(code == 0 for code in codes.values()):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name}: benchmark processes still running at the deadline")
            time.sleep(0.05)
    finally:
        for proc in procs.values():
            _stop(proc)


def _file(name: str) -> str:
    return name.replace("/", "-")


def workcell_environment(config: Path) -> dict[str, str]:
    """The extra environment the launcher gives node processes (from the graph description)."""
    from tablet_workcell.bringup.description import load_graph  # noqa: PLC0415

    return load_graph(config, sim=True).environment


def run_config(index: int, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """Run one publisher/subscriber pair (configuration ``index``) and summarise it."""
    name, kind, path = CONFIGS[index]
    env = {k: v for k, v in os.environ.items() if k not in DDS_ENV}
    profile: Path | None = None
    if kind == "profile":
        profile = args.profile.resolve()
        env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(profile)
    elif kind == "workcell":
        env |= workcell_environment(args.config)
        profile = Path(env["FASTDDS_DEFAULT_PROFILES_FILE"])
    domain = random.randint(100, 200) if args.domain_id is None else args.domain_id + index
    env |= {"ROS_DOMAIN_ID": str(domain), "ROS_AUTOMATIC_DISCOVERY_RANGE": args.discovery_range}
    LOG.info("%s: domain %d, %d+%d frames at %g Hz", name, domain, args.warmup, args.frames, args.rate_hz)
    _spawn_pair(name, env, args, tmp)
    pub = json.loads((tmp / f"{_file(name)}-publisher.json").read_text())
    sub = json.loads((tmp / f"{_file(name)}-subscriber.json").read_text())
    logs = "".join(
        (tmp / f"{_file(name)}-{r}.log").read_text(errors="replace") for r in ("publisher", "subscriber")
    )
    lat = np.asarray(sub["latencies_ns"], dtype=np.float64) / 1e6
    rx = np.asarray(sub["recv_ns"], dtype=np.float64) / 1e9
    fps = (len(rx) - 1) / (rx[-1] - rx[0]) if len(rx) > 1 and rx[-1] > rx[0] else 0.0
    pct = np.percentile(lat, [50, 95, 100]).tolist() if len(lat) else [None] * 3
    mean = float(lat.mean()) if len(lat) else None
    return {
        "name": name,
        "path": path,
        "environment": kind,
        "profile": _display(profile) if profile else None,
        "glibc_tunables": env.get("GLIBC_TUNABLES"),
        "ros_domain_id": domain,
        "frames_sent": args.frames,
        "frames_received": len(lat),
        "wrong_size_frames": sub["bad_size"],
        "latency_ms": {"p50": pct[0], "p95": pct[1], "max": pct[2], "mean": mean},
        "throughput": {"frames_per_s": fps, "mb_per_s": fps * FRAME_BYTES / 1e6},
        "publisher_rate_hz": pub["sent"] / pub["send_s"] if pub["send_s"] > 0 else None,
        "publish_call_p50_ms": pub["publish_ms"],
        "match_wait_s": pub["match_s"],
        "shm_segment_bytes": {"publisher": pub["shm"], "subscriber": sub["shm"]},
        "xml_parser_errors": [
            ANSI_ESCAPE.sub("", ln).strip() for ln in logs.splitlines() if "XMLPARSER" in ln
        ],
    }


def _display(path: Path) -> str:
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def _fmt(value: float | None, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def print_table(runs: list[dict[str, Any]]) -> None:
    header = f"{'config':<16}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}{'rx/sent':>10}{'fps':>7}{'MB/s':>7}  SHM"
    print(header)
    print("-" * len(header))
    for run in runs:
        lat, thr = run["latency_ms"], run["throughput"]
        seg = max(run["shm_segment_bytes"]["publisher"] or [0]) / 2**20
        print(
            f"{run['name']:<16}{_fmt(lat['p50']):>9}{_fmt(lat['p95']):>9}{_fmt(lat['max']):>9}"
            f"{run['frames_received']:>6}/{run['frames_sent']:<3}{_fmt(thr['frames_per_s'], '.1f'):>7}"
            f"{_fmt(thr['mb_per_s'], '.1f'):>7}  {seg:.1f} MiB"
        )


def build_report(args: argparse.Namespace, runs: list[dict[str, Any]], load_1m: float) -> dict[str, Any]:
    shm = next(run for run in runs if run["name"] == TARGET_CONFIG)
    segment = max(shm["shm_segment_bytes"]["publisher"] or [0])
    loaded = not shm["xml_parser_errors"] and segment > BUILTIN_SEGMENT_MAX
    p95 = shm["latency_ms"]["p95"]
    met = loaded and p95 is not None and p95 <= TARGET_P95_MS and shm["frames_received"] == args.frames
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {"cpu_count": os.cpu_count(), "python": platform.python_version(), "load_1m": load_1m},
        "settings": {
            "frames": args.frames,
            "warmup": args.warmup,
            "rate_hz": args.rate_hz,
            "image": f"{WIDTH}x{HEIGHT} bgr8 ({FRAME_BYTES} bytes)",
            "qos": "reliable, keep_last depth 5, volatile",
            "discovery_range": args.discovery_range,
        },
        "runs": runs,
        "target": {"description": TARGET, "judged_on": TARGET_CONFIG, "profile_loaded": loaded, "met": met},
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=300, help="measured frames per configuration")
    parser.add_argument("--warmup", type=int, default=30, help="unmeasured frames sent first")
    parser.add_argument("--rate-hz", type=float, default=30.0)
    parser.add_argument("--profile", type=Path, default=REPO / "config" / "fastdds_shm.xml")
    parser.add_argument(
        "--config", type=Path, default=REPO / "config" / "workcell.yaml", help="graph description"
    )
    parser.add_argument("--output", type=Path, default=REPO / "bench" / "results" / "image_transport.json")
    parser.add_argument("--domain-id", type=int, help="ROS_DOMAIN_ID of run 1, +1 for run 2 (default random)")
    parser.add_argument("--discovery-range", default="LOCALHOST", help="ROS_AUTOMATIC_DISCOVERY_RANGE")
    parser.add_argument("--role", choices=("driver", "publisher", "subscriber"), help=argparse.SUPPRESS)
    parser.add_argument("--path", choices=("message", "wire"), default="message", help=argparse.SUPPRESS)
    parser.add_argument("--result-file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.frames < 2 or args.warmup < 0 or args.rate_hz <= 0:
        parser.error("need --frames >= 2, --warmup >= 0, --rate-hz > 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    signal.signal(signal.SIGTERM, _exit_on_signal)  # children are stopped in ``finally`` blocks
    if args.role in ("publisher", "subscriber"):
        result = (run_publisher if args.role == "publisher" else run_subscriber)(args)
        args.result_file.write_text(json.dumps(result))
        return 0
    profile = args.profile.resolve()
    if not profile.is_file():
        LOG.error("profile %s not found", profile)
        return 2
    load_1m = os.getloadavg()[0]
    try:
        with tempfile.TemporaryDirectory(prefix="bench-image-") as tmp:
            runs = [run_config(i, args, Path(tmp)) for i in range(len(CONFIGS))]
    except (RuntimeError, TimeoutError, OSError, ValueError, KeyError) as exc:
        LOG.error("benchmark failed: %s", exc)
        return 2
    except KeyboardInterrupt:
        LOG.error("interrupted; child processes were stopped")
        return 130
    report = build_report(args, runs, load_1m)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print_table(runs)
    target_run = next(run for run in runs if run["name"] == TARGET_CONFIG)
    p95 = target_run["latency_ms"]["p95"]
    print(f"target {TARGET} ({TARGET_CONFIG}): {'MET' if report['target']['met'] else 'NOT MET'}")
    print(f"(profile p95 {_fmt(p95)} ms, load {load_1m:.2f}); written {_display(args.output.resolve())}")
    if not report["target"]["profile_loaded"]:
        LOG.error(
            "profile not in effect (XML error or no big SHM segment): %s", target_run["xml_parser_errors"]
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
