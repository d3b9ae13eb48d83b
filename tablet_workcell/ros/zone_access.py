"""A station's hold on a shared zone of the cell, through the safety node's /safety/zone_access.

The press holds the "press" zone while its punches or platen move, the arm while its tool
is inside; the safety node grants the zone to one station at a time (tablet_workcell.
interlocks.ZoneArbiter). :meth:`ZoneHold.held` acquires before the motion and always
releases afterwards, also when the motion fails or is cancelled. Every wait is bounded: a
safety node that does not answer is a refusal, never a hang.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

from rclpy.callback_groups import CallbackGroup
from rclpy.client import Client
from rclpy.node import Node

from tablet_workcell.errors import WorkcellError
from tablet_workcell.srv import ZoneAccess

ZONE_SERVICE = "/safety/zone_access"


class ZoneRefusedError(WorkcellError):
    """The zone was not granted (held by another station, e-stop, or no safety node)."""

    def __init__(self, message: str, holder: str = "") -> None:
        self.holder = holder
        super().__init__(message)


class ZoneHold:
    """Acquire and release one zone for one station; thread-safe."""

    def __init__(
        self, node: Node, station: str, zone: str, callback_group: CallbackGroup, timeout_s: float
    ) -> None:
        self._node = node
        self.station = station
        self.zone = zone
        self.timeout_s = timeout_s
        self._client: Client[Any, Any] = node.create_client(
            ZoneAccess, ZONE_SERVICE, callback_group=callback_group
        )

    def _call(self, acquire: bool) -> ZoneAccess.Response:
        if not self._client.wait_for_service(timeout_sec=self.timeout_s):
            raise ZoneRefusedError(
                f"the safety node's {ZONE_SERVICE} did not appear within {self.timeout_s:g} s, so the "
                f"{self.zone} zone cannot be {'taken' if acquire else 'released'}; start the safety node"
            )
        request = ZoneAccess.Request(station=self.station, zone=self.zone, acquire=acquire)
        future = self._client.call_async(request)
        done = threading.Event()
        future.add_done_callback(lambda _: done.set())
        if not done.wait(self.timeout_s):
            future.cancel()
            raise ZoneRefusedError(f"{ZONE_SERVICE} did not answer within {self.timeout_s:g} s")
        response: ZoneAccess.Response | None = future.result()
        if response is None:
            raise ZoneRefusedError(f"{ZONE_SERVICE} call failed: {future.exception()}")
        return response

    def acquire(self) -> None:
        """Take the zone; ZoneRefusedError naming the holder when it is not granted."""
        response = self._call(True)
        if not response.granted:
            holder = f" (held by {response.holder})" if response.holder else ""
            raise ZoneRefusedError(
                f"the {self.zone} zone was refused{holder}: {response.message}", response.holder
            )

    def release(self) -> None:
        """Give the zone back; a failure is logged, never raised (called in finally blocks)."""
        try:
            response = self._call(False)
        except ZoneRefusedError as error:
            self._node.get_logger().error(f"could not release the {self.zone} zone: {error}")
            return
        if not response.granted:
            self._node.get_logger().error(f"could not release the {self.zone} zone: {response.message}")

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        self.acquire()
        try:
            yield
        finally:
            self.release()
