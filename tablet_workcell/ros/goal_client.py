"""Send an action goal and follow it with bounded waits (tests, scripts, operator tools).

rclpy's action client is asynchronous: every step (goal response, feedback, cancel,
result) completes a future on the executor's thread. :class:`GoalClient` wraps that so
the calling thread waits with a timeout at each step and gets a :class:`ProbeError`
saying what did not happen, never a hang. The node must be spun by another thread (a
:class:`~tablet_workcell.ros.graph_probe.GraphProbe` does that).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from rclpy.action import ActionClient
from rclpy.node import Node
from rclpy.task import Future

from tablet_workcell.ros.graph_probe import ProbeError

#: action_msgs/msg/GoalStatus codes (fixed by the interface definition)
STATUS_NAMES = {
    0: "unknown",
    1: "accepted",
    2: "executing",
    3: "canceling",
    4: "succeeded",
    5: "canceled",
    6: "aborted",
}


def wait_future(future: Future[Any], timeout_s: float, what: str) -> Any:
    """The future's result, or ProbeError after ``timeout_s``."""
    done = threading.Event()
    future.add_done_callback(lambda _: done.set())
    if not done.wait(timeout_s):
        raise ProbeError(f"timed out after {timeout_s:.0f} s waiting for {what}")
    return future.result()


class SentGoal:
    """One goal: its feedback as it arrives, cancel, and the final status and result."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.handle: Any = None
        self.accepted = False
        self.sent_at = time.monotonic()
        self._feedback: list[tuple[float, Any]] = []
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)

    def on_feedback(self, message: Any) -> None:
        with self._arrived:
            self._feedback.append((time.monotonic(), message.feedback))
            self._arrived.notify_all()

    @property
    def feedback(self) -> list[Any]:
        with self._lock:
            return [message for _, message in self._feedback]

    def wait_for_feedback(self, predicate: Callable[[Any], bool], what: str, timeout_s: float = 10.0) -> Any:
        """The first feedback (so far or to come) that satisfies ``predicate``."""
        deadline = time.monotonic() + timeout_s
        with self._arrived:
            while True:
                for _, message in self._feedback:
                    if predicate(message):
                        return message
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ProbeError(f"{self.name}: no feedback with {what} within {timeout_s:.0f} s")
                self._arrived.wait(remaining)

    def cancel(self, timeout_s: float = 10.0) -> Any:
        """Request cancellation; returns the server's CancelGoal response."""
        if not self.accepted:
            raise ProbeError(f"{self.name}: the goal was not accepted, there is nothing to cancel")
        return wait_future(self.handle.cancel_goal_async(), timeout_s, f"{self.name}: cancel response")

    def result(self, timeout_s: float = 30.0) -> tuple[str, Any]:
        """``(status name, result message)`` once the goal has ended."""
        if not self.accepted:
            raise ProbeError(f"{self.name}: the goal was rejected, it has no result")
        response = wait_future(self.handle.get_result_async(), timeout_s, f"{self.name}: result")
        return STATUS_NAMES.get(response.status, str(response.status)), response.result


class GoalClient:
    """``GoalClient(probe.node, Dispense, "/dispenser/dispense").send(goal).result()``."""

    def __init__(self, node: Node, action_type: Any, name: str) -> None:
        self.name = name
        self._client: ActionClient[Any, Any, Any] = ActionClient(node, action_type, name)

    def send(self, goal: Any, timeout_s: float = 10.0) -> SentGoal:
        """Send ``goal`` and wait for the server to accept or reject it."""
        if not self._client.wait_for_server(timeout_sec=timeout_s):
            raise ProbeError(f"action server {self.name} not available within {timeout_s:.0f} s")
        sent = SentGoal(self.name)
        future = self._client.send_goal_async(goal, feedback_callback=sent.on_feedback)
        sent.handle = wait_future(future, timeout_s, f"{self.name}: goal response")
        sent.accepted = bool(sent.handle.accepted)
        return sent

    def destroy(self) -> None:
        self._client.destroy()
