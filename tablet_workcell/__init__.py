"""tablet_workcell: autonomous microscale tablet manufacturing and testing cell.

The hand-written library lives here next to the rosidl-generated interface modules
(``tablet_workcell.msg``, ``.srv``, ``.action``), which the build adds to this same
import package. Library modules never import rclpy; the ROS 2 adapters live in
``tablet_workcell.ros`` (helpers) and ``tablet_workcell.nodes`` (one file per node).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("tablet_workcell")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
