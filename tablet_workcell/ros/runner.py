"""The one ``main()`` pattern every node uses (after ros2/examples)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

import rclpy
from rclpy.exceptions import ParameterException
from rclpy.executors import Executor, ExternalShutdownException, MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.node import Node


def run_node(factory: Callable[[], Node], args: Sequence[str] | None = None, threads: int = 1) -> int:
    """Create the node, spin it until shutdown (Ctrl-C, SIGINT from the launcher).

    ``threads > 1``: a multi-threaded executor, for nodes whose long actions must not
    block the e-stop subscription or status timers (the instrument nodes).
    """
    with rclpy.init(args=list(sys.argv if args is None else args)):
        try:
            node = factory()
        except ParameterException as error:
            # Out-of-range or mistyped parameter: one clear line, no traceback.
            print(f"error: invalid parameter: {error}", file=sys.stderr)  # noqa: T201 - node has no logger
            return 2
        executor: Executor = MultiThreadedExecutor(threads) if threads > 1 else SingleThreadedExecutor()
        executor.add_node(node)
        try:
            executor.spin()
        except (KeyboardInterrupt, ExternalShutdownException):
            pass
        finally:
            executor.remove_node(node)
            node.destroy_node()
    return 0
