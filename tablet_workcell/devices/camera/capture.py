"""A thread that reads a camera source, hands frames on, and reopens the source when it is lost.

Why a thread of its own: ``read()`` blocks until the camera's next frame, which must not
hold up an executor (the node's status timer, lifecycle services and e-stop run there).
Why it keeps reading live sources while not streaming: a network camera or a device
left unread fills its buffers and then delivers stale frames (or drops the connection)
when reading resumes; reading and discarding keeps the picture current and notices a
lost camera while the node is merely configured. A video file is the opposite: it
waits, so no part of a recorded test plays to nobody.

Frames whose size differs from the calibration's are dropped (counted), since the pixel
scale would be wrong for them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from tablet_workcell.devices.camera.driver import CameraFrame, CameraSource, EndOfVideoError, SourceKind
from tablet_workcell.devices.camera.health import CameraHealth
from tablet_workcell.devices.errors import DeviceError, DeviceProtocolError

LOG = logging.getLogger(__name__)
IDLE_POLL_S = 0.05


class FrameGrabber:
    """Owns ``source`` while running: reads, checks, hands frames to ``on_frame`` while streaming."""

    def __init__(
        self,
        source: CameraSource,
        health: CameraHealth,
        on_frame: Callable[[CameraFrame], None],
        *,
        expected_size: tuple[int, int] | None = None,
        reconnect_period_s: float = 1.0,
        on_error: Callable[[DeviceError], None] | None = None,
    ) -> None:
        self.source = source
        self.health = health
        self.on_frame = on_frame
        self.expected_size = expected_size  # (width, height)
        self.reconnect_period_s = reconnect_period_s
        self.on_error = on_error or health.failed
        self.ended = threading.Event()  # a video file ran out (no loop)
        self._streaming = threading.Event()
        self._stop = threading.Event()
        self._wake = threading.Event()  # set by stop() and set_streaming(): ends idle waits
        self._pending: CameraFrame | None = None
        self._thread: threading.Thread | None = None

    @property
    def streaming(self) -> bool:
        return self._streaming.is_set()

    def start(self, first: CameraFrame | None = None) -> None:
        """Run the reading thread; ``first`` (already read, e.g. to check the size) goes out first."""
        self._pending = first
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="camera-capture", daemon=True)
        self._thread.start()

    def set_streaming(self, streaming: bool) -> None:
        if streaming:
            self._streaming.set()
        else:
            self._streaming.clear()
        self._wake.set()

    def stop(self, timeout_s: float) -> bool:
        """Stop reading and close the source; False when the thread did not end in time
        (a driver call hung: the source is then left to the dying thread, not closed under it)."""
        self._stop.set()
        self._wake.set()
        self.source.interrupt()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout_s)
            if thread.is_alive():
                LOG.error("camera: the capture thread did not end within %.1f s; leaving it", timeout_s)
                return False
        self.source.close()
        self.health.disconnected()
        return True

    # ------------------------------------------------------------------ the thread
    def _is_file(self) -> bool:
        spec = self.source.spec
        return spec is not None and spec.kind is SourceKind.FILE

    def _idle(self, seconds: float) -> None:
        self._wake.wait(seconds)
        self._wake.clear()

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self.source.is_open:
                if self.ended.is_set():
                    self._idle(IDLE_POLL_S * 4)
                    continue
                self._reopen()
                continue
            if self._is_file() and not self._streaming.is_set():
                self._idle(IDLE_POLL_S)  # a file waits for the node to stream
                continue
            frame = self._pending or self._read()
            self._pending = None
            if frame is not None:
                self._deliver(frame)

    def _reopen(self) -> None:
        try:
            self.source.open()
        except DeviceError as error:
            self.on_error(error)
            self._stop.wait(self.reconnect_period_s)
            return
        self.health.connected_to(str(self.source.source), self.source.identity)
        LOG.info("camera: reconnected to %s", self.source.identity)

    def _read(self) -> CameraFrame | None:
        try:
            return self.source.read()
        except EndOfVideoError as error:
            self.ended.set()
            self.source.close()
            self.on_error(error)
        except DeviceError as error:
            if self._stop.is_set():
                return None
            self.health.read_failed()
            self.on_error(error)
            self.source.close()
            self._stop.wait(self.reconnect_period_s)
        return None

    def _deliver(self, frame: CameraFrame) -> None:
        if self.expected_size is not None and (frame.width, frame.height) != self.expected_size:
            self.health.dropped()
            width, height = self.expected_size
            self.on_error(
                DeviceProtocolError(
                    "camera",
                    f"a {frame.width}x{frame.height} frame arrived where the calibration expects "
                    f"{width}x{height}; frame dropped (set the camera's resolution or recalibrate).",
                    "size",
                )
            )
            return
        if not self._streaming.is_set():
            return  # live source while not streaming: read to stay current, then discard
        try:
            self.on_frame(frame)
        except Exception as error:  # a failed publish must not end the capture thread
            self.health.dropped()
            LOG.exception("camera: frame %d could not be handed on", frame.index)
            self.on_error(DeviceError("camera", f"frame {frame.index} could not be published: {error!r}"))
            return
        self.health.published()
