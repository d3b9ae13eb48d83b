"""What the arm node shows: joint states, the tool pose and the cell's markers.

The transfer's thread reports (tool moved, suction switched, zone holder changed) and
the node's timer publishes; :class:`ArmView` holds the picture between them under one
lock. Everything is in the one fixed frame ``frame_id``; the node publishes TF itself
(nodes/arm.py, docs/devices/arm_node.md).
"""

from __future__ import annotations

import threading
from typing import Any

from geometry_msgs.msg import PoseStamped
from rclpy.action.server import ServerGoalHandle
from rclpy.node import Node
from rclpy.publisher import Publisher
from sensor_msgs.msg import JointState
from visualization_msgs.msg import MarkerArray

from tablet_workcell.action import ArmTransfer
from tablet_workcell.devices.arm.layout import CellLayout, Vec3
from tablet_workcell.devices.arm.scene import CellScene
from tablet_workcell.devices.arm.transfer_plan import Payload
from tablet_workcell.ros.markers import joint_state, marker_array, tool_pose
from tablet_workcell.ros.qos import LATCHED

JOINT_STATES_TOPIC = "~/joint_states"
TOOL_POSE_TOPIC = "~/tool_pose"
MARKERS_TOPIC = "~/markers"


class ArmView:
    """The picture of the cell and its publishers, for one configured session of the node."""

    def __init__(self, node: Node, layout: CellLayout, frame_id: str, zone_holder: str) -> None:
        self._node = node
        self.frame_id = frame_id
        self._lock = threading.Lock()
        self._scene = CellScene(layout, zone_holder=zone_holder)
        self._published_key: tuple[object, ...] | None = None
        self._joints: Publisher[Any] = node.create_publisher(JointState, JOINT_STATES_TOPIC, 10)
        self._pose: Publisher[Any] = node.create_publisher(PoseStamped, TOOL_POSE_TOPIC, 10)
        self._markers: Publisher[Any] = node.create_publisher(MarkerArray, MARKERS_TOPIC, LATCHED)

    def destroy(self) -> None:
        for publisher in (self._joints, self._pose, self._markers):
            self._node.destroy_publisher(publisher)

    # ------------------------------------------------------------------ reports
    def pose(self, position_m: Vec3) -> PoseStamped:
        return tool_pose(position_m, self.frame_id, self._node.get_clock().now().to_msg())

    def tool_moved(self, position_m: Vec3 | None) -> Vec3 | None:
        """Record the tool position (None: keep the last); returns the position now known."""
        with self._lock:
            if position_m is not None:
                self._scene.tool_m = position_m
            return self._scene.tool_m

    @property
    def position_m(self) -> Vec3 | None:
        with self._lock:
            return self._scene.tool_m

    def suction_switched(self, on: bool, station: str, payload: Payload) -> None:
        with self._lock:
            if on:
                self._scene.picked(station, payload)
            else:
                self._scene.put_down(station)

    def zone_holder_changed(self, holder: str) -> None:
        with self._lock:
            self._scene.zone_holder = holder

    # ------------------------------------------------------------------ publishing
    def publish(self, active: bool) -> None:
        """Joint states and tool pose while ``active``; the markers whenever the picture changed."""
        stamp = self._node.get_clock().now().to_msg()
        with self._lock:
            position, suction = self._scene.tool_m, self._scene.suction_on
            key = self._scene.key()
            shapes = self._scene.shapes() if key != self._published_key else None
            self._published_key = key
        if active and position is not None:
            self._joints.publish(joint_state(position, suction, stamp))
            self._pose.publish(tool_pose(position, self.frame_id, stamp))
        if shapes is not None:
            self._markers.publish(marker_array(shapes, self.frame_id, stamp))


class GoalObserver:
    """Turns a transfer's progress into action feedback and the picture of the cell."""

    def __init__(self, view: ArmView, goal: ServerGoalHandle, payload: Payload) -> None:
        self._view, self._goal, self._payload = view, goal, payload

    def progress(self, phase: str, fraction: float, position_m: Vec3 | None) -> None:
        position = self._view.tool_moved(position_m)
        feedback = ArmTransfer.Feedback(phase=phase, progress=float(fraction))
        if position is not None:
            feedback.current_pose = self._view.pose(position)
        self._goal.publish_feedback(feedback)

    def suction(self, on: bool, station: str) -> None:
        self._view.suction_switched(on, station, self._payload)
