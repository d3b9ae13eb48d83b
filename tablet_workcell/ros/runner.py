"""The one ``main()`` pattern every node uses (after ros2/examples)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

import rclpy
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node


def run_node(factory: Callable[[], Node], args: Sequence[str] | None = None) -> int:
    """Create the node, spin it until shutdown (Ctrl-C, SIGINT from the launcher)."""
    with rclpy.init(args=list(sys.argv if args is None else args)):
        try:
            node = factory()
        except ParameterException as error:
            # Out-of-range or mistyped parameter: one clear line, no traceback.
            print(f"error: invalid parameter: {error}", file=sys.stderr)  # noqa: T201 - node has no logger
            return 2
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        try:
            executor.spin()
        except (KeyboardInterrupt, ExternalShutdownException):
            pass
        finally:
            executor.remove_node(node)
            node.destroy_node()
    return 0
