"""A client that checks a running cell graph from the outside, as an operator would.

Used by ``workcell demo`` and by the integration tests: waits for the nodes to be
discovered (never a fixed sleep), measures the simulated clock's real-time factor,
and exercises the e-stop round trip through the safety and cell_status nodes.
Every wait has a timeout and ends in a ProbeError saying what did not happen.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import rclpy
from rclpy.client import Client
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock

from tablet_workcell.errors import WorkcellError
from tablet_workcell.msg import CellStatus, EstopState
from tablet_workcell.ros.qos import LATCHED, STATUS
from tablet_workcell.srv import EmergencyStop, SuggestExperiments

T = TypeVar("T")


class ProbeError(WorkcellError):
    """The graph did not behave as expected within the time allowed."""


@dataclass(frozen=True)
class EstopRoundTrip:
    engage_to_status_s: float  # service call sent -> CellStatus shows ESTOPPED
    refused_reset_message: str  # reset without operator id is refused with this text
    reset_to_status_s: float  # reset by an operator -> CellStatus leaves ESTOPPED


class GraphProbe:
    """Owns a node and an executor thread; use as a context manager."""

    def __init__(self, name: str = "workcell_probe") -> None:
        self._context = rclpy.Context()
        rclpy.init(context=self._context, args=[])
        self.node = Node(name, context=self._context)
        self._executor = SingleThreadedExecutor(context=self._context)
        self._executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, name="probe-executor", daemon=True)
        self._lock = threading.Lock()
        self._latest_status: CellStatus | None = None
        self._latest_clock_ns: int | None = None
        self._latest_estop: EstopState | None = None
        self._clients: dict[str, Client[Any, Any]] = {}
        self.node.create_subscription(CellStatus, "/workcell/status", self._on_status, STATUS)
        self.node.create_subscription(EstopState, "/safety/estop", self._on_estop, LATCHED)
        self.node.create_subscription(
            Clock, "/clock", self._on_clock, QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)
        )
        self._estop_client: Client[EmergencyStop.Request, EmergencyStop.Response] = self.node.create_client(
            EmergencyStop, "/safety/set_estop"
        )
        self._suggest_client: Client[SuggestExperiments.Request, SuggestExperiments.Response] = (
            self.node.create_client(SuggestExperiments, "/optimiser/suggest")
        )
        self._thread.start()

    def _spin(self) -> None:
        try:
            self._executor.spin()
        except Exception:
            return

    def __enter__(self) -> GraphProbe:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._executor.shutdown(timeout_sec=2.0)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self._context)
        self._thread.join(timeout=2.0)

    # ------------------------------------------------------------------ callbacks
    def _on_status(self, message: CellStatus) -> None:
        with self._lock:
            self._latest_status = message

    def _on_estop(self, message: EstopState) -> None:
        with self._lock:
            self._latest_estop = message

    def _on_clock(self, message: Clock) -> None:
        with self._lock:
            self._latest_clock_ns = message.clock.sec * 1_000_000_000 + message.clock.nanosec

    # ------------------------------------------------------------------ waiting
    @staticmethod
    def _wait_for(condition: Callable[[], T | None], timeout_s: float, what: str) -> T:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            value = condition()
            if value is not None:
                return value
            time.sleep(0.01)
        raise ProbeError(f"timed out after {timeout_s:.0f} s waiting for {what}")

    def wait_for_nodes(self, names: Iterable[str], timeout_s: float = 30.0) -> float:
        """Wait until every node name is discovered; returns the seconds it took."""
        wanted = set(names)
        start = time.monotonic()

        def all_seen() -> bool | None:
            seen = {name for name, _ in self.node.get_node_names_and_namespaces()}
            return True if wanted <= seen else None

        try:
            self._wait_for(all_seen, timeout_s, f"nodes {', '.join(sorted(wanted))}")
        except ProbeError:
            seen = {name for name, _ in self.node.get_node_names_and_namespaces()}
            missing = ", ".join(sorted(wanted - seen))
            raise ProbeError(
                f"nodes not discovered within {timeout_s:.0f} s: {missing}. "
                "Check their output above for start-up errors."
            ) from None
        return time.monotonic() - start

    def latest_status(self, timeout_s: float = 10.0) -> CellStatus:
        def status() -> CellStatus | None:
            with self._lock:
                return self._latest_status

        return self._wait_for(status, timeout_s, "/workcell/status")

    def latest_estop(self, timeout_s: float = 10.0) -> EstopState:
        def estop() -> EstopState | None:
            with self._lock:
                return self._latest_estop

        return self._wait_for(estop, timeout_s, "/safety/estop")

    def measure_real_time_factor(self, real_seconds: float = 2.0, timeout_s: float = 10.0) -> float:
        """Simulated seconds per real second over a window of ``real_seconds``."""

        def clock() -> int | None:
            with self._lock:
                return self._latest_clock_ns

        first = self._wait_for(clock, timeout_s, "/clock messages")
        start = time.monotonic()
        time.sleep(real_seconds)
        last = clock()
        assert last is not None
        return (last - first) / 1e9 / (time.monotonic() - start)

    def _call_estop(
        self, engage: bool, reason: str, operator_id: str, timeout_s: float
    ) -> EmergencyStop.Response:
        if not self._estop_client.wait_for_service(timeout_sec=timeout_s):
            raise ProbeError(f"service /safety/set_estop not available within {timeout_s:.0f} s")
        request = EmergencyStop.Request(engage=engage, reason=reason, operator_id=operator_id)
        future = self._estop_client.call_async(request)
        done = threading.Event()
        future.add_done_callback(lambda _: done.set())
        if not done.wait(timeout_s):
            raise ProbeError(f"/safety/set_estop did not answer within {timeout_s:.0f} s")
        response = future.result()
        assert response is not None
        return response

    def wait_for_status(
        self, predicate: Callable[[CellStatus], bool], what: str, timeout_s: float = 10.0
    ) -> CellStatus:
        """The first /workcell/status (from now on, or the latest) that satisfies ``predicate``."""

        def matching() -> CellStatus | None:
            with self._lock:
                status = self._latest_status
            return status if status is not None and predicate(status) else None

        return self._wait_for(matching, timeout_s, what)

    def call(self, service_type: Any, name: str, request: Any, timeout_s: float = 10.0) -> Any:
        """Call any service, bounded in time (the client is made once per name)."""
        with self._lock:
            client = self._clients.get(name)
            if client is None:
                client = self._clients[name] = self.node.create_client(service_type, name)
        if not client.wait_for_service(timeout_sec=timeout_s):
            raise ProbeError(f"service {name} not available within {timeout_s:.0f} s")
        future = client.call_async(request)
        done = threading.Event()
        future.add_done_callback(lambda _: done.set())
        if not done.wait(timeout_s):
            raise ProbeError(f"{name} did not answer within {timeout_s:.0f} s")
        return future.result()

    def wait_for_estop(
        self, predicate: Callable[[EstopState], bool], what: str, timeout_s: float = 10.0
    ) -> EstopState:
        """The latest /safety/estop once it satisfies ``predicate``."""

        def matching() -> EstopState | None:
            with self._lock:
                state = self._latest_estop
            return state if state is not None and predicate(state) else None

        return self._wait_for(matching, timeout_s, what)

    def suggest(self, count: int, timeout_s: float = 30.0) -> SuggestExperiments.Response:
        """Ask the optimiser for ``count`` experiments."""
        if not self._suggest_client.wait_for_service(timeout_sec=timeout_s):
            raise ProbeError(f"service /optimiser/suggest not available within {timeout_s:.0f} s")
        future = self._suggest_client.call_async(SuggestExperiments.Request(count=count))
        done = threading.Event()
        future.add_done_callback(lambda _: done.set())
        if not done.wait(timeout_s):
            raise ProbeError(f"/optimiser/suggest did not answer within {timeout_s:.0f} s")
        response = future.result()
        assert response is not None
        if not response.success:
            raise ProbeError(f"the optimiser refused: {response.message}")
        return response

    def _wait_for_mode(
        self, predicate: Callable[[CellStatus], bool], after_s: float, timeout_s: float, what: str
    ) -> float:
        self.wait_for_status(predicate, what, timeout_s)
        return time.monotonic() - after_s

    def estop_round_trip(self, operator_id: str, timeout_s: float = 10.0) -> EstopRoundTrip:
        """Engage the e-stop, see the cell report it, check a blind reset is refused, reset."""
        self.latest_status(timeout_s)
        sent = time.monotonic()
        response = self._call_estop(True, "probe: e-stop round trip", operator_id, timeout_s)
        if not response.success or not response.state.active:
            raise ProbeError(f"engaging the e-stop failed: {response.message}")
        engaged = self._wait_for_mode(
            lambda s: s.mode == CellStatus.MODE_ESTOPPED, sent, timeout_s, "the cell status to show ESTOPPED"
        )
        refused = self._call_estop(False, "", "", timeout_s)
        if refused.success:
            raise ProbeError("the e-stop was reset without an operator id; it must be refused")
        sent = time.monotonic()
        response = self._call_estop(False, "", operator_id, timeout_s)
        if not response.success or response.state.active:
            raise ProbeError(f"resetting the e-stop failed: {response.message}")
        reset = self._wait_for_mode(
            lambda s: s.mode != CellStatus.MODE_ESTOPPED, sent, timeout_s, "the cell status to leave ESTOPPED"
        )
        return EstopRoundTrip(engaged, refused.message, reset)


def wait_until(condition: Callable[[], T], what: str, timeout_s: float, poll_s: float = 0.02) -> T:
    """The first truthy value of ``condition()``, polled until ``timeout_s``.

    Tests wait on graph state (a lifecycle state, a received message) this way instead of
    sleeping for a guessed time; the error names what never happened.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(poll_s)
    raise ProbeError(f"timed out after {timeout_s:.0f} s waiting for {what}")
