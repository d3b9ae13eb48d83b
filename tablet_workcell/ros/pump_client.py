"""The disintegration node's side of the syringe pump's DispenseDroplet action.

Why not :class:`~tablet_workcell.ros.goal_client.GoalClient`: a node must give up waiting
the moment its own goal is cancelled or the e-stop engages, and then stop the pump
through the action's cancel (the pump node sends STP at once). Every wait here is bounded
and polls a stop event; :meth:`cancel` is thread-safe and never raises (``halt()`` calls it).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from rclpy.action import ActionClient
from rclpy.callback_groups import CallbackGroup
from rclpy.node import Node

from tablet_workcell.action import DispenseDroplet

POLL_S = 0.02
STATUS_SUCCEEDED = 4


class PumpError(Exception):
    """The droplet was not placed; the message says why (a sentence for the operator)."""


class PumpClient:
    def __init__(self, node: Node, action_name: str, callback_group: CallbackGroup) -> None:
        self.action_name = action_name
        self._client: ActionClient[Any, Any, Any] = ActionClient(
            node, DispenseDroplet, action_name, callback_group=callback_group
        )
        self._lock = threading.Lock()
        self._handle: Any = None
        self._tick: Callable[[], None] | None = None

    def dispense(
        self,
        volume_m3: float,
        flow_rate_m3_per_s: float,
        timeout_s: float,
        stop: threading.Event,
        tick: Callable[[], None] | None = None,
    ) -> Any:
        """Place one droplet; returns the pump's result. Raises PumpError (rejected, failed,
        timed out) or, when ``stop`` is set meanwhile, cancels the pump goal and raises PumpError.
        ``tick`` runs every poll while waiting (the node publishes feedback from it)."""
        self._tick = tick
        deadline = time.monotonic() + timeout_s
        if not self._client.wait_for_server(timeout_sec=min(timeout_s, 5.0)):
            raise PumpError(
                f"the syringe pump's action {self.action_name} is not available; is the pump node up?"
            )
        goal = DispenseDroplet.Goal(volume_m3=volume_m3, flow_rate_m3_per_s=flow_rate_m3_per_s)
        sending = self._client.send_goal_async(goal)
        try:
            handle = self._wait(sending, deadline, stop, "the pump to accept the droplet")
        except PumpError:
            sending.add_done_callback(_cancel_when_accepted)  # a late acceptance must not dispense
            raise
        if not handle.accepted:
            raise PumpError("the syringe pump rejected the droplet goal")
        with self._lock:
            self._handle = handle
        try:
            response = self._wait(handle.get_result_async(), deadline, stop, "the droplet to be placed")
        finally:
            with self._lock:
                self._handle = None
        result = response.result
        if response.status != STATUS_SUCCEEDED or not result.success:
            raise PumpError(f"the syringe pump did not place the droplet: {result.message}")
        return result

    def _wait(self, future: Any, deadline: float, stop: threading.Event, what: str) -> Any:
        done = threading.Event()
        future.add_done_callback(lambda _: done.set())
        while not done.wait(POLL_S):
            if self._tick is not None:
                self._tick()
            if stop.is_set():
                self.cancel()
                raise PumpError(f"stopped while waiting for {what}; the pump goal was cancelled")
            if time.monotonic() >= deadline:
                self.cancel()
                raise PumpError(f"timed out waiting for {what}; the pump goal was cancelled")
        return future.result()

    def cancel(self) -> None:
        """Cancel the running droplet goal, if any (the pump node stops the plunger)."""
        with self._lock:
            handle = self._handle
        if handle is not None:
            try:
                handle.cancel_goal_async()
            except Exception:  # halt() must never raise; the pump node also sees the e-stop
                return

    def destroy(self) -> None:
        self._client.destroy()


def _cancel_when_accepted(future: Any) -> None:
    handle = future.result()
    if handle is not None and handle.accepted:
        handle.cancel_goal_async()
