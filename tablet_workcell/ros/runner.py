"""The one ``main()`` pattern every node uses (after ros2/examples)."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable, Sequence
from types import FrameType

import rclpy
from rclpy.exceptions import ParameterException
from rclpy.executors import Executor, ExternalShutdownException, MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions


def run_node(factory: Callable[[], Node], args: Sequence[str] | None = None, threads: int = 1) -> int:
    """Create the node, spin it until shutdown (Ctrl-C, SIGINT/SIGTERM from the launcher).

    ``threads > 1``: a multi-threaded executor, for nodes whose long actions must not
    block the e-stop subscription or status timers (the instrument nodes).

    A node with a ``sign_off()`` method (the instrument nodes) gets to run it on SIGINT
    or SIGTERM while the ROS context is still valid: rclpy's own signal handler shuts the
    context down first, after which nothing can be published, and the safety watchdog
    would take a deliberate shutdown for a dead station.
    """
    sign_off = getattr(factory, "sign_off", None)
    options = SignalHandlerOptions.NO if callable(sign_off) else SignalHandlerOptions.ALL
    with rclpy.init(args=list(sys.argv if args is None else args), signal_handler_options=options):
        try:
            node = factory()
        except ParameterException as error:
            # Out-of-range or mistyped parameter: one clear line, no traceback.
            print(f"error: invalid parameter: {error}", file=sys.stderr)  # noqa: T201 - node has no logger
            return 2
        executor: Executor = MultiThreadedExecutor(threads) if threads > 1 else SingleThreadedExecutor()
        executor.add_node(node)
        stopping = _stop_on_signals(node) if options is SignalHandlerOptions.NO else None
        try:
            if stopping is None:
                executor.spin()
            else:  # our handler only flags: the loop ends, then the node and context go in order
                while not stopping.is_set() and rclpy.ok():
                    executor.spin_once(timeout_sec=0.1)
        except (KeyboardInterrupt, ExternalShutdownException):
            pass
        finally:
            executor.remove_node(node)
            node.destroy_node()
    return 0


def _stop_on_signals(node: Node) -> threading.Event:
    """SIGINT/SIGTERM: the node signs off and the returned event ends the spin loop."""
    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if stopping.is_set():
            return
        node.sign_off()  # type: ignore[attr-defined]  # checked by run_node
        stopping.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    return stopping
