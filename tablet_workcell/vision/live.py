"""Keep up with a live camera: analyse in a worker thread, skip frames explicitly when behind.

The camera delivers frames at its own rate whatever the analysis does. ``submit`` never
blocks the caller (a ROS subscription callback): the frame goes into a pending slot of
``max_pending`` frames; when the slot is full the OLDEST pending frame is dropped and
counted as skipped, so the analysis always works on the freshest frames and memory stays
bounded. The worker analyses the pending frames in order, writes each analysed frame to
the recording (whose bounded encoder queue may slow the worker, never grow), and hands
each :class:`~tablet_workcell.vision.session.LiveSample` with its frame to ``on_sample``
(feedback, overlay, area curve).

Skipped frames are not part of the result and not in the recording: the recording holds
exactly the frames the result was computed from, so re-analysing it gives the same
numbers. Their count and the rates are in :class:`LiveStats`.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from tablet_workcell.vision.recording import FrameRecordingWriter, RecordingFormatError
from tablet_workcell.vision.session import DisintegrationSession, LiveSample, SessionResult
from tablet_workcell.vision.types import FrameStatus, VisionError

logger = logging.getLogger(__name__)

SampleCallback = Callable[[LiveSample, NDArray[np.uint8] | None], None]


@dataclass(frozen=True)
class LiveStats:
    """Throughput of a live session (wall clock)."""

    delivered: int  # frames the camera handed in (pixels or rejected)
    analysed: int
    skipped: int  # dropped from the pending slot because the analysis was behind
    ignored: int  # arrived after the test was over
    wall_s: float  # first delivered frame to the last analysed one
    analysis_s_mean: float  # per analysed frame (analysis + recording hand-off)
    analysis_s_max: float

    @property
    def delivered_per_s(self) -> float:
        return self.delivered / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def analysed_per_s(self) -> float:
        return self.analysed / self.wall_s if self.wall_s > 0 else 0.0

    def describe(self) -> str:
        return (
            f"{self.analysed} of {self.delivered} frames analysed ({self.analysed_per_s:.1f} of "
            f"{self.delivered_per_s:.1f} frames/s), {self.skipped} skipped while the analysis was behind, "
            f"{self.analysis_s_mean * 1e3:.1f} ms per frame (max {self.analysis_s_max * 1e3:.1f} ms)"
        )


@dataclass(frozen=True)
class _Pending:
    stamp_ns: int
    image: NDArray[np.uint8] | None
    encoding: str | None = None
    status: FrameStatus | None = None
    message: str = ""


class LiveSession:
    """Runs a :class:`DisintegrationSession` on its own thread: ``start()``, ``submit()``..., ``finish()``."""

    def __init__(
        self,
        session: DisintegrationSession,
        recording: FrameRecordingWriter | None = None,
        on_sample: SampleCallback | None = None,
        max_pending: int = 2,
    ) -> None:
        if max_pending < 1:
            raise VisionError(f"max_pending {max_pending} must be at least 1 frame.")
        self.session = session
        self.recording = recording
        self._on_sample = on_sample
        self._pending: collections.deque[_Pending] = collections.deque()
        self._max_pending = max_pending
        self._condition = threading.Condition()
        self._closing = False
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._work, name="disintegration-analysis", daemon=True)
        self._delivered = self._skipped = self._ignored = 0
        self._first_s = self._last_s = 0.0
        self._busy_total_s = self._busy_max_s = 0.0
        self._error = ""

    def start(self) -> LiveSession:
        self._thread.start()
        return self

    # ------------------------------------------------------------------ camera side
    def submit(self, image: NDArray[np.uint8], stamp_ns: int, encoding: str | None = None) -> bool:
        """Hand over a frame; never blocks. False once the test is over (frame ignored).

        The frame is kept, not copied, until it is analysed: pass a buffer nobody rewrites
        (a frame decoded in place from a received message is one).
        """
        return self._put(_Pending(stamp_ns, image, encoding))

    def submit_rejected(self, stamp_ns: int, status: FrameStatus, message: str) -> bool:
        """A frame that could not be decoded: counted and recorded as such."""
        return self._put(_Pending(stamp_ns, None, None, status, message))

    def _put(self, item: _Pending) -> bool:
        with self._condition:
            if self._done.is_set() or self._closing:
                self._ignored += 1
                return False
            if self._delivered == 0:
                self._first_s = time.monotonic()
            self._delivered += 1
            if len(self._pending) >= self._max_pending:
                self._pending.popleft()
                self._skipped += 1
            self._pending.append(item)
            self._condition.notify()
            return True

    @property
    def done(self) -> bool:
        """The test ended on its own (absorbed, max duration, no contact) or failed."""
        return self._done.is_set()

    def wait_done(self, timeout_s: float) -> bool:
        return self._done.wait(timeout_s)

    # ------------------------------------------------------------------ worker
    def _work(self) -> None:
        while True:
            with self._condition:
                while not self._pending and not self._closing:
                    self._condition.wait()
                if not self._pending:  # closing and nothing left
                    return
                item = self._pending.popleft()
            started = time.monotonic()
            try:
                sample = self._analyse(item)
            except (VisionError, RecordingFormatError) as error:  # recording broke: end the test, say why
                self._error = str(error)
                logger.error("live analysis stopped: %s", error)
                self._done.set()
                return
            busy = time.monotonic() - started
            with self._condition:
                self._busy_total_s += busy
                self._busy_max_s = max(self._busy_max_s, busy)
                self._last_s = time.monotonic()
            if self._on_sample is not None:
                try:
                    self._on_sample(sample, item.image)
                except Exception:  # a display problem must not end the measurement
                    logger.exception("the live sample callback failed")
            if self.session.done:
                with self._condition:
                    self._done.set()
                    self._pending.clear()
                return

    def _analyse(self, item: _Pending) -> LiveSample:
        if item.image is None:
            status = item.status or FrameStatus.WRONG_ENCODING
            sample = self.session.add_rejected(item.stamp_ns, status, item.message)
            if self.recording is not None:
                self.recording.write_rejected(item.stamp_ns, status, item.message)
            return sample
        sample = self.session.add_frame(item.image, item.stamp_ns, item.encoding)
        if self.recording is not None:
            self.recording.write(item.stamp_ns, item.image, item.encoding)
        return sample

    # ------------------------------------------------------------------ the end
    def stats(self) -> LiveStats:
        with self._condition:
            analysed = self.session.frames_analysed
            return LiveStats(
                delivered=self._delivered,
                analysed=analysed,
                skipped=self._skipped,
                ignored=self._ignored,
                wall_s=max(self._last_s - self._first_s, 0.0),
                analysis_s_mean=self._busy_total_s / analysed if analysed else 0.0,
                analysis_s_max=self._busy_max_s,
            )

    def finish(self, timeout_s: float = 10.0) -> tuple[SessionResult, LiveStats]:
        """Stop taking frames, let the worker finish the pending ones, close the recording, analyse.

        Pending frames are analysed unless the test already ended (then they were dropped as
        ignored). Raises VisionError when the worker does not finish within ``timeout_s``.
        """
        with self._condition:
            self._closing = True
            self._condition.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                raise VisionError(
                    f"the analysis thread did not finish within {timeout_s:g} s; a frame analysis hangs "
                    "(check the model and the CPU load)."
                )
        self.session.stop()  # no-op when the test ended on its own
        if self.recording is not None:
            self.recording.close(self.session.stop_reason.value)
        result = self.session.finish()
        if self._error:
            result = _with_message(result, f"{result.message}; live analysis stopped: {self._error}")
        return result, self.stats()


def _with_message(result: SessionResult, message: str) -> SessionResult:
    from dataclasses import replace  # noqa: PLC0415 - only on the error path

    return replace(result, success=False, message=message)
