"""QoS profiles used across the cell."""

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

# State that late joiners must see (e-stop, configuration): the last value is kept
# by the publisher and delivered to subscriptions created later.
LATCHED = QoSProfile(
    depth=1,
    history=HistoryPolicy.KEEP_LAST,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
)

# Periodic status: reliable, small queue, no history for late joiners.
STATUS = QoSProfile(depth=10, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE)

# Camera images (/camera/image_raw, /camera/camera_info): reliable, so reliable and
# best-effort subscribers both match; a short queue, so a slow subscriber gets the newest
# frames instead of a backlog (docs/devices/camera.md).
IMAGES = QoSProfile(
    depth=5,
    history=HistoryPolicy.KEEP_LAST,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)
