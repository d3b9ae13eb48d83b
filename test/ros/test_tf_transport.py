"""TFMessage crosses processes on /tf and /tf_static with upstream's type name and hash.

One process publishes (as tf2's broadcasters do: /tf volatile, /tf_static transient
local); this process subscribes after the static transform was sent, so it also checks
that a late subscriber (RViz started later) still gets it.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from tf2_msgs.msg import TFMessage

TYPE_NAME = "tf2_msgs/msg/TFMessage"
UPSTREAM_TYPE_HASH = "RIHS01_e369d0f05a23ae52508854b66f6aa0437f3449d652e8cbf22d5abe85d020f087"
WAIT_S = 20.0
STATIC_QOS = QoSProfile(
    depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
)

PUBLISHER = """
import sys, time, rclpy
from geometry_msgs.msg import TransformStamped
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from tf2_msgs.msg import TFMessage

def transform(node, parent, child, x):
    t = TransformStamped(child_frame_id=child)
    t.header.frame_id, t.header.stamp = parent, node.get_clock().now().to_msg()
    t.transform.translation.x, t.transform.rotation.w = x, 1.0
    return t

rclpy.init()
node = rclpy.create_node("tf_publisher_under_test")
static = node.create_publisher(TFMessage, "/tf_static", QoSProfile(
    depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL))
dynamic = node.create_publisher(TFMessage, "/tf", 100)
static.publish(TFMessage(transforms=[transform(node, "workcell", "arm_base", 0.0)]))
print("static sent", flush=True)
deadline = time.monotonic() + float(sys.argv[1])
step = 0
while time.monotonic() < deadline:
    step += 1
    dynamic.publish(TFMessage(transforms=[transform(node, "arm_base", "arm_tool", 0.001 * step)]))
    rclpy.spin_once(node, timeout_sec=0.05)
node.destroy_node()
rclpy.shutdown()
"""


def test_tf_and_tf_static_cross_processes(ros_domain_id: int, tmp_path: Path) -> None:
    log = tmp_path / "publisher.log"
    with log.open("wb") as output:
        child = subprocess.Popen(
            [sys.executable, "-c", PUBLISHER, str(WAIT_S + 10)], stdout=output, stderr=subprocess.STDOUT
        )
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("tf_listener_under_test", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    received: dict[str, list[Any]] = {"/tf": [], "/tf_static": []}
    lock = threading.Lock()

    def keep(topic: str) -> Any:
        def callback(message: TFMessage) -> None:
            with lock:
                received[topic].append(message)

        return callback

    try:
        deadline = time.monotonic() + WAIT_S
        while b"static sent" not in log.read_bytes():  # subscribe late, as a later RViz would
            assert child.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "the publisher did not start"
            time.sleep(0.05)
        node.create_subscription(TFMessage, "/tf", keep("/tf"), 100)
        node.create_subscription(TFMessage, "/tf_static", keep("/tf_static"), STATIC_QOS)
        while True:
            executor.spin_once(timeout_sec=0.05)
            with lock:
                if len(received["/tf"]) >= 3 and received["/tf_static"]:
                    break
            assert time.monotonic() < deadline, f"timed out: {received}\n{log.read_text()}"

        static = received["/tf_static"][0].transforms[0]
        assert (static.header.frame_id, static.child_frame_id) == ("workcell", "arm_base")
        tool = received["/tf"][-1].transforms[0]
        assert (tool.header.frame_id, tool.child_frame_id) == ("arm_base", "arm_tool")
        assert tool.transform.translation.x > 0.0 and tool.transform.rotation.w == 1.0

        # The graph sees upstream's type: name and RIHS01 hash from the compiled type support.
        for topic in ("/tf", "/tf_static"):
            infos = node.get_publishers_info_by_topic(topic)
            assert infos, topic
            for info in infos:
                assert info.topic_type == TYPE_NAME
                assert str(info.topic_type_hash) == UPSTREAM_TYPE_HASH
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.shutdown(context=context)
        child.terminate()
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(timeout=10)
