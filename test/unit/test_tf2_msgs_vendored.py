"""tf2_msgs/msg/TFMessage as the arm node publishes it, from vendor/tf2_msgs or a full ROS install.

The PyPI wheels have no tf2_msgs, so setup.py builds the vendored copy (only TFMessage)
unless tf2_msgs is importable already. Either way the type must be upstream's: the same
name, fields and RIHS01 type hash, or a full ROS install's RViz would not match the topic.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import types
from pathlib import Path

import pytest
from geometry_msgs.msg import TransformStamped
from rclpy.serialization import deserialize_message, serialize_message
from tf2_msgs.msg import TFMessage

REPO = Path(__file__).resolve().parents[2]
TYPE_NAME = "tf2_msgs/msg/TFMessage"
# Upstream's hash, as a full ROS 2 (Jazzy/Kilted) install reports it for /tf in
# `ros2 topic info --verbose` and rosbag2 metadata (docs/building.md, "Vendored interfaces").
UPSTREAM_TYPE_HASH = "RIHS01_e369d0f05a23ae52508854b66f6aa0437f3449d652e8cbf22d5abe85d020f087"


def load_setup_module() -> types.ModuleType:
    spec = importlib.util.spec_from_file_location("tablet_workcell_setup", REPO / "setup.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # setup() itself only runs under __main__
    return module


def test_tf_message_round_trips_with_a_transform() -> None:
    transform = TransformStamped(child_frame_id="arm_tool")
    transform.header.frame_id = "arm_base"
    transform.header.stamp.sec, transform.header.stamp.nanosec = 12, 345
    transform.transform.translation.x, transform.transform.translation.z = 0.25, 0.1
    transform.transform.rotation.w = 1.0
    message = TFMessage(transforms=[transform])
    again = deserialize_message(serialize_message(message), TFMessage)
    assert again == message
    assert again.transforms[0].child_frame_id == "arm_tool"
    assert again.transforms[0].transform.translation.x == 0.25


def test_type_name_fields_and_hash_are_upstreams() -> None:
    assert TFMessage.get_fields_and_field_types() == {
        "transforms": "sequence<geometry_msgs/TransformStamped>"
    }
    assert TFMessage.__module__ == "tf2_msgs.msg._tf_message"
    # The type description rosidl installs beside the .msg, in this environment's prefix
    # (or a sourced ROS install's).
    prefixes = [*os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep), sys.prefix]
    found = [Path(p) / "share" / "tf2_msgs" / "msg" / "TFMessage.json" for p in prefixes if p]
    description = json.loads(next(path for path in found if path.is_file()).read_text())
    assert description["type_description_msg"]["type_description"]["type_name"] == TYPE_NAME
    hashes = {entry["type_name"]: entry["hash_string"] for entry in description["type_hashes"]}
    assert hashes[TYPE_NAME] == UPSTREAM_TYPE_HASH


def test_vendored_definition_is_upstreams_byte_for_byte() -> None:
    # Upstream's msg/TFMessage.msg (ros2/geometry2) is this one line, without comments.
    text = (REPO / "vendor" / "tf2_msgs" / "msg" / "TFMessage.msg").read_text()
    assert text == "geometry_msgs/TransformStamped[] transforms\n"


def test_a_tf2_msgs_from_elsewhere_is_not_vendored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    setup = load_setup_module()
    for name in [m for m in sys.modules if m == "tf2_msgs" or m.startswith("tf2_msgs.")]:
        monkeypatch.delitem(sys.modules, name)
    # The copy this environment has (vendored or real) decides as it should ...
    import tf2_msgs  # noqa: PLC0415

    vendored_here = any(
        (Path(p) / f"{setup.VENDOR_MARKER}.py").is_file()
        for p in tf2_msgs.__spec__.submodule_search_locations or []
    )
    assert setup.provided_elsewhere("tf2_msgs") is not vendored_here
    monkeypatch.delitem(sys.modules, "tf2_msgs")
    # ... and a real package earlier on the path (a sourced ROS install) wins: no vendoring.
    (tmp_path / "tf2_msgs").mkdir()
    (tmp_path / "tf2_msgs" / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert setup.provided_elsewhere("tf2_msgs")
    assert setup.vendored_packages.__wrapped__() == ()
    assert not setup.provided_elsewhere("tf2_msgs_that_does_not_exist")
