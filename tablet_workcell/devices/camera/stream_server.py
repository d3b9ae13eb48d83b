"""Serve frames as an MJPEG stream over HTTP, the way IP cameras do.

Format (``multipart/x-mixed-replace``, as Axis, Mobotix and most IP cameras send it)::

    GET /stream.mjpg HTTP/1.0

    HTTP/1.0 200 OK
    Content-Type: multipart/x-mixed-replace; boundary=frame

    --frame
    Content-Type: image/jpeg
    Content-Length: 41234
    X-Timestamp: 12.345678          (the camera's clock at exposure [s]; optional, informative)

    <JPEG bytes>
    --frame
    ...

``GET /snapshot.jpg`` returns the newest frame as one JPEG. OpenCV's FFmpeg backend
(``cv2.VideoCapture(url)``) reads the stream as it reads a real camera's; that is the
point: the camera driver cannot tell the simulated station from a network camera.

One producer thread makes frames at ``frame_rate_hz`` on an absolute schedule, only
while a client is connected (rendering for nobody costs CPU), and encodes each once;
every client thread sends the newest frame it has not sent yet, so a slow client skips
frames instead of falling behind. ``freeze()`` stops sending while keeping the
connections open (a hung camera); ``stop()`` closes everything (an unplugged one).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from tablet_workcell.devices.errors import DeviceError

LOG = logging.getLogger(__name__)

BOUNDARY = "frame"
STREAM_PATH = "/stream.mjpg"
SNAPSHOT_PATH = "/snapshot.jpg"
CLIENT_WAIT_S = 0.1  # how often a client thread checks for shutdown while waiting for a frame

#: makes one frame: (camera time [s]) -> HxWx3 BGR (or HxW mono) uint8 image
FrameProducer = Callable[[float], NDArray[np.uint8]]


class StreamServerError(DeviceError):
    """The stream server cannot start or encode a frame."""


class MjpegStreamServer:
    """An HTTP server streaming frames from ``produce`` as MJPEG on ``host`` (free port by default)."""

    def __init__(
        self,
        produce: FrameProducer,
        *,
        frame_rate_hz: float = 30.0,
        jpeg_quality: int = 95,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], float] = time.monotonic,
        name: str = "camera",
    ) -> None:
        if not frame_rate_hz > 0.0:
            raise StreamServerError(name, f"frame rate {frame_rate_hz!r} Hz must be positive, e.g. 30.")
        if not 1 <= jpeg_quality <= 100:
            raise StreamServerError(
                name, f"JPEG quality {jpeg_quality!r} must be between 1 and 100, e.g. 95."
            )
        self.name = name
        self.produce = produce
        self.frame_period_s = 1.0 / frame_rate_hz
        self.jpeg_quality = jpeg_quality
        self.clock = clock  # the camera's time passed to ``produce`` and sent as X-Timestamp
        self._address = (host, port)
        self._server: ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        self._frozen = threading.Event()
        self._new_frame = threading.Condition()
        self._jpeg = b""
        self._stamp_s = 0.0
        self._sequence = 0
        self._clients = 0
        self.frames_produced = 0
        self.url = ""

    # ------------------------------------------------------------------ life
    def start(self) -> str:
        """Listen and start producing; returns the stream's URL."""
        try:
            server = ThreadingHTTPServer(self._address, _handler_for(self))
        except OSError as error:
            raise StreamServerError(
                self.name, f"cannot listen on {self._address[0]}:{self._address[1]}: {error}"
            ) from error
        server.daemon_threads = True
        self._server = server
        host, port = server.server_address[:2]
        self.url = f"http://{host!s}:{port}{STREAM_PATH}"
        for target, label in ((server.serve_forever, "http"), (self._produce_loop, "frames")):
            thread = threading.Thread(target=target, name=f"{self.name}-{label}", daemon=True)
            thread.start()
            self._threads.append(thread)
        LOG.info("%s: MJPEG stream on %s", self.name, self.url)
        return self.url

    def stop(self) -> None:
        """Close the listening socket and every connection (clients see the stream end)."""
        self._stopping.set()
        with self._new_frame:
            self._new_frame.notify_all()
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=2.0)
        self._threads.clear()

    def freeze(self) -> None:
        """Stop sending frames but keep the connections open (a camera that hangs)."""
        self._frozen.set()

    @property
    def clients(self) -> int:
        with self._new_frame:
            return self._clients

    def __enter__(self) -> MjpegStreamServer:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ frames
    def encode(self, image: NDArray[np.uint8]) -> bytes:
        ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
        if not ok:
            raise StreamServerError(self.name, f"JPEG encoding failed for a frame of shape {image.shape}.")
        return bytes(jpeg.tobytes())

    def _produce_loop(self) -> None:
        next_at = time.monotonic()
        while not self._stopping.is_set():
            if self.clients == 0 or self._frozen.is_set():
                self._stopping.wait(CLIENT_WAIT_S / 2)
                next_at = time.monotonic()
                continue
            stamp = self.clock()
            try:
                jpeg = self.encode(self.produce(stamp))
            except Exception:  # a broken frame must not kill the camera; it is logged and skipped
                LOG.exception("%s: frame at %.3f s could not be made", self.name, stamp)
                jpeg = b""
            if jpeg:
                with self._new_frame:
                    self._jpeg, self._stamp_s = jpeg, stamp
                    self._sequence += 1
                    self.frames_produced += 1
                    self._new_frame.notify_all()
            next_at += self.frame_period_s
            delay = next_at - time.monotonic()
            if delay < -self.frame_period_s:  # fell behind (slow machine): skip, do not burst
                next_at = time.monotonic()
            elif delay > 0:
                self._stopping.wait(delay)

    def _next_frame(self, after: int) -> tuple[int, bytes, float] | None:
        """The newest frame after sequence ``after``; None when shutting down."""
        with self._new_frame:
            while not self._stopping.is_set():
                if self._sequence > after and not self._frozen.is_set():
                    return self._sequence, self._jpeg, self._stamp_s
                self._new_frame.wait(CLIENT_WAIT_S)
        return None

    def _client_joined(self, delta: int) -> None:
        with self._new_frame:
            self._clients += delta
            self._new_frame.notify_all()

    def serve_stream(self, handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        handler.send_header("Cache-Control", "no-cache, no-store")
        handler.send_header("Connection", "close")
        handler.end_headers()
        self._client_joined(+1)
        sent = 0
        try:
            while True:
                frame = self._next_frame(sent)
                if frame is None:
                    return
                sent, jpeg, stamp = frame
                head = (
                    f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n"
                    f"X-Timestamp: {stamp:.6f}\r\n\r\n"
                ).encode("ascii")
                handler.wfile.write(head + jpeg + b"\r\n")
                handler.wfile.flush()
        except OSError as error:  # broken pipe, reset, timeout: the client is gone
            LOG.debug("%s: client %s left (%s)", self.name, handler.client_address, error)
        finally:
            self._client_joined(-1)

    def serve_snapshot(self, handler: BaseHTTPRequestHandler) -> None:
        jpeg = self.encode(self.produce(self.clock()))
        handler.send_response(200)
        handler.send_header("Content-Type", "image/jpeg")
        handler.send_header("Content-Length", str(len(jpeg)))
        handler.end_headers()
        with contextlib.suppress(OSError):
            handler.wfile.write(jpeg)


def _handler_for(server: MjpegStreamServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"
        server_version = "TabletWorkcellCamera/1.0"

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == STREAM_PATH:
                server.serve_stream(self)
            elif path == SNAPSHOT_PATH:
                server.serve_snapshot(self)
            else:
                self.send_error(404, f"no such resource; the stream is {STREAM_PATH}")

        def log_message(self, format: str, *args: Any) -> None:
            LOG.debug("%s: %s", server.name, format % args)

    return Handler
