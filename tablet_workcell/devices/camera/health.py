"""The camera's health for diagnostics: connection (as every instrument) plus frame counts and rate.

What an operator asks of a camera that misbehaves: is it sending, how fast, how many
frames failed to arrive or were thrown away, and what went wrong last. Pure bookkeeping;
the node turns it into diagnostic_msgs key/values.
"""

from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass, field

from tablet_workcell.devices.health import DeviceHealth

RATE_WINDOW_S = 2.0  # the frame rate is measured over this much recent time


@dataclass
class CameraHealth(DeviceHealth):
    frames_published: int = 0
    frames_failed: int = 0  # reads that brought no frame (timeout, stream ended, decode error)
    frames_dropped: int = 0  # frames read but not published (wrong size; publish failed)
    _recent: collections.deque[float] = field(default_factory=collections.deque, repr=False)
    _stats_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def published(self, now_s: float | None = None) -> None:
        now = time.monotonic() if now_s is None else now_s
        with self._stats_lock:
            self.frames_published += 1
            self._recent.append(now)
            while self._recent and now - self._recent[0] > RATE_WINDOW_S:
                self._recent.popleft()

    def read_failed(self) -> None:
        with self._stats_lock:
            self.frames_failed += 1

    def dropped(self) -> None:
        with self._stats_lock:
            self.frames_dropped += 1

    def rate_hz(self, now_s: float | None = None) -> float:
        """Published frames per second over the last RATE_WINDOW_S (0 when stalled)."""
        now = time.monotonic() if now_s is None else now_s
        with self._stats_lock:
            recent = [t for t in self._recent if now - t <= RATE_WINDOW_S]
        if len(recent) < 2:
            return 0.0
        return (len(recent) - 1) / max(recent[-1] - recent[0], 1e-9)

    def values(self) -> dict[str, str]:
        values = super().values()
        with self._stats_lock:
            values.update(
                {
                    "frames_published": str(self.frames_published),
                    "frames_failed": str(self.frames_failed),
                    "frames_dropped": str(self.frames_dropped),
                }
            )
        values["fps"] = f"{self.rate_hz():.2f}"
        return values
