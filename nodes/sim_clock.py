"""sim_clock: publishes /clock so that simulated campaigns run at a real-time factor.

Parameters: see tablet_workcell.simtime.CLOCK_PARAMETERS. ``real_time_factor`` can be
changed at run time (``ros2 param set /sim_clock real_time_factor 50.0``) without a
jump in simulated time.
"""

from __future__ import annotations

import time

from rcl_interfaces.msg import SetParametersResult
from rclpy.clock import Clock as RosClock
from rclpy.clock import ClockType
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock

from tablet_workcell.ros.parameters import declare_parameters
from tablet_workcell.ros.runner import run_node
from tablet_workcell.simtime import CLOCK_PARAMETERS, NANOSECONDS_PER_SECOND, SimClock

# Only the newest /clock value matters. Reliable publishing is compatible with both
# best-effort (rclpy, rclcpp ClockQoS) and reliable subscriptions.
CLOCK_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)


class SimClockNode(Node):
    def __init__(self) -> None:
        super().__init__("sim_clock")
        values = declare_parameters(self, CLOCK_PARAMETERS)
        start_ns = round(values.get_float("start_time_s") * NANOSECONDS_PER_SECOND)
        self._sim_clock = SimClock(values.get_float("real_time_factor"), start_ns, time.monotonic_ns())
        self._publisher = self.create_publisher(Clock, "/clock", CLOCK_QOS)
        period = self._sim_clock.tick_period_s(values.get_float("publish_rate_hz"))
        # The tick timer follows the steady clock: this node is the source of ROS time.
        self._timer = self.create_timer(period, self._tick, clock=RosClock(clock_type=ClockType.STEADY_TIME))
        self.add_on_set_parameters_callback(self._on_parameters)
        self.get_logger().info(
            f"publishing /clock at {1.0 / period:.0f} Hz, "
            f"real-time factor {self._sim_clock.real_time_factor:g}"
        )

    def _tick(self) -> None:
        now_ns = self._sim_clock.now_ns(time.monotonic_ns())
        message = Clock()
        message.clock.sec, message.clock.nanosec = divmod(now_ns, NANOSECONDS_PER_SECOND)
        self._publisher.publish(message)

    def _on_parameters(self, parameters: list[Parameter]) -> SetParametersResult:
        for parameter in parameters:
            if parameter.name == "real_time_factor":
                self._sim_clock.set_factor(float(parameter.value), time.monotonic_ns())
                self.get_logger().info(f"real-time factor now {parameter.value:g}")
        return SetParametersResult(successful=True)


def main() -> int:
    return run_node(SimClockNode)


if __name__ == "__main__":
    raise SystemExit(main())
