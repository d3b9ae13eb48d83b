"""Library scene shapes as visualization_msgs, plus the arm's pose, joint state and transforms.

Every marker goes into one fixed frame (``workcell``), so RViz draws the cell without
looking up any transform; the arm node also publishes TF (docs/devices/arm_node.md). A
MarkerArray starts with a DELETEALL, so a latched array always replaces the whole
picture: a late RViz sees the current cell, and a tablet the arm has picked up
disappears from the station it was on.
"""

from __future__ import annotations

from collections.abc import Sequence

from builtin_interfaces.msg import Time
from geometry_msgs.msg import Point, PoseStamped, TransformStamped
from sensor_msgs.msg import JointState
from visualization_msgs.msg import Marker, MarkerArray

from tablet_workcell.devices.arm.layout import Vec3
from tablet_workcell.devices.arm.scene import Shape

ARM_JOINTS = ("arm_x", "arm_y", "arm_z", "arm_suction")  # prismatic x/y/z [m], suction 1.0 on / 0.0 off
_TYPES = {
    "cube": Marker.CUBE,
    "cylinder": Marker.CYLINDER,
    "text": Marker.TEXT_VIEW_FACING,
    "lines": Marker.LINE_LIST,
}


def to_marker(shape: Shape, frame_id: str, stamp: Time) -> Marker:
    marker = Marker(ns=shape.namespace, id=shape.id, type=_TYPES[shape.kind], action=Marker.ADD)
    marker.header.frame_id = frame_id
    marker.header.stamp = stamp
    marker.pose.position = Point(x=shape.position_m[0], y=shape.position_m[1], z=shape.position_m[2])
    marker.pose.orientation.w = 1.0
    marker.scale.x, marker.scale.y, marker.scale.z = (max(v, 1e-4) for v in shape.size_m)
    r, g, b, a = shape.colour
    marker.color.r, marker.color.g, marker.color.b, marker.color.a = r, g, b, a
    if shape.kind == "text":
        marker.text = shape.text
    if shape.kind == "lines":
        marker.points = [Point(x=p[0], y=p[1], z=p[2]) for p in shape.points_m]
    return marker


def marker_array(shapes: Sequence[Shape], frame_id: str, stamp: Time) -> MarkerArray:
    clear = Marker(action=Marker.DELETEALL)
    clear.header.frame_id = frame_id
    clear.header.stamp = stamp
    return MarkerArray(markers=[clear, *(to_marker(shape, frame_id, stamp) for shape in shapes)])


def tool_pose(position_m: Vec3, frame_id: str, stamp: Time) -> PoseStamped:
    """The suction cup's tip; a Cartesian arm does not rotate its tool, so the orientation is identity."""
    pose = PoseStamped()
    pose.header.frame_id = frame_id
    pose.header.stamp = stamp
    pose.pose.position = Point(x=position_m[0], y=position_m[1], z=position_m[2])
    pose.pose.orientation.w = 1.0
    return pose


def transform(parent: str, child: str, translation_m: Vec3, stamp: Time) -> TransformStamped:
    """``child``'s origin at ``translation_m`` in ``parent``, axes parallel (identity rotation)."""
    message = TransformStamped(child_frame_id=child)
    message.header.frame_id = parent
    message.header.stamp = stamp
    message.transform.translation.x = float(translation_m[0])
    message.transform.translation.y = float(translation_m[1])
    message.transform.translation.z = float(translation_m[2])
    message.transform.rotation.w = 1.0
    return message


def joint_state(position_m: Vec3, suction_on: bool, stamp: Time) -> JointState:
    message = JointState(name=list(ARM_JOINTS))
    message.header.stamp = stamp
    message.position = [*position_m, 1.0 if suction_on else 0.0]
    return message
