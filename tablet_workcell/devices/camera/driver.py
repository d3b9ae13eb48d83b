"""Frames from a camera through OpenCV: a video device, a video file, or a network stream.

``CameraSource(spec)`` takes what an operator would write in the configuration:

* ``0`` or ``"/dev/video0"``: a V4L2 video device (USB/UVC camera, frame grabber);
* ``"http://…/stream.mjpg"``, ``"rtsp://…"``: a network camera's stream, read by OpenCV's
  FFmpeg backend with open and read timeouts, so a camera that stops sending is noticed
  within ``read_timeout_s`` (:class:`DeviceDisconnectedError`), not waited on forever;
* ``"<path>.url"``: a one-line file holding such a URL. The simulated station picks a
  free port at start and writes its URL there (``{ports}/camera.url``), as it links its
  ptys, so the graph description can name it before it exists;
* any other path: a video file, played at its own frame rate (``realtime``) and
  optionally looped, so a recorded test can be replayed through the same node.

Frames come out as ``HxWx3`` BGR ``uint8`` arrays with the time they were read. Errors
are typed (:mod:`tablet_workcell.devices.errors`) with a sentence naming the source and
the fix. No twin here: this is the hardware path.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from tablet_workcell.devices.errors import DeviceDisconnectedError, DeviceError, DeviceProtocolError

LOG = logging.getLogger(__name__)
DEVICE = "camera"
LOCATOR_SUFFIX = ".url"
MAX_LOCATOR_BYTES = 4096
RESYNC_AFTER_S = 0.5  # a realtime file this far behind its schedule restarts the schedule


class SourceKind(enum.Enum):
    DEVICE = "device"
    FILE = "file"
    URL = "url"


@dataclass(frozen=True)
class SourceSpec:
    kind: SourceKind
    target: str | int  # device index or path, file path, or URL

    def __str__(self) -> str:
        return f"{self.kind.value} {self.target}"


class EndOfVideoError(DeviceDisconnectedError):
    """A video file ended and ``loop`` is off: the source has no more frames."""


@dataclass(frozen=True)
class CameraFrame:
    image: NDArray[np.uint8]  # HxWx3 BGR
    index: int  # frames read since open (from 0)
    monotonic_s: float  # time.monotonic() when the frame was read
    position_s: float | None  # time in the video file; None for live sources

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    @property
    def height(self) -> int:
        return int(self.image.shape[0])


def resolve_source(source: str | int) -> SourceSpec:
    """What kind of source ``source`` names; reads a ``.url`` locator file."""
    if isinstance(source, int) and not isinstance(source, bool):
        return SourceSpec(SourceKind.DEVICE, source)
    text = str(source).strip()
    if not text:
        raise DeviceError(
            DEVICE, "no camera source set; set source to /dev/video0, a video file or a URL.", "config"
        )
    if text.isdigit():
        return SourceSpec(SourceKind.DEVICE, int(text))
    if "://" in text:
        return SourceSpec(SourceKind.URL, text)
    if text.endswith(LOCATOR_SUFFIX):
        return SourceSpec(SourceKind.URL, _read_locator(Path(text)))
    if text.startswith("/dev/"):
        return SourceSpec(SourceKind.DEVICE, text)
    return SourceSpec(SourceKind.FILE, text)


def _read_locator(path: Path) -> str:
    try:
        with path.open("rb") as handle:
            content = handle.read(MAX_LOCATOR_BYTES)
    except FileNotFoundError:
        raise DeviceDisconnectedError(
            DEVICE,
            f"stream locator {path} does not exist (yet); is the camera's simulator running? "
            "It writes the stream's URL there once it listens.",
        ) from None
    except OSError as error:
        raise DeviceError(DEVICE, f"cannot read stream locator {path}: {error}", "config") from error
    url = content.decode("utf-8", errors="replace").strip().splitlines()[0:1]
    if not url or "://" not in url[0]:
        raise DeviceError(
            DEVICE,
            f"stream locator {path} must hold one URL such as http://127.0.0.1:8080/stream.mjpg.",
            "config",
        )
    return url[0].strip()


class CameraSource:
    """One opened frame source; ``read()`` blocks until the next frame (bounded for live sources).

    Not thread-safe: one thread reads; another may call :meth:`interrupt` to end a
    realtime file's wait, then close it once the reader has returned.
    """

    def __init__(
        self,
        source: str | int,
        *,
        loop: bool = False,
        realtime: bool = True,
        open_timeout_s: float = 5.0,
        read_timeout_s: float = 2.0,
        frame_rate_hz: float = 0.0,
        width: int = 0,
        height: int = 0,
    ) -> None:
        for name, value in (("open_timeout_s", open_timeout_s), ("read_timeout_s", read_timeout_s)):
            if not value > 0.0:
                raise DeviceError(DEVICE, f"{name} {value!r} s must be positive, e.g. 2.", "config")
        self.source = source
        self.loop = loop
        self.realtime = realtime
        self.open_timeout_s = open_timeout_s
        self.read_timeout_s = read_timeout_s
        self.requested_rate_hz = frame_rate_hz
        self.requested_size = (width, height)
        self.spec: SourceSpec | None = None
        self.identity = ""
        self.frame_rate_hz = 0.0  # what the source reports (files: their own rate)
        self._capture: cv2.VideoCapture | None = None
        self._index = 0
        self._file_frame = 0  # position in the file (restarts when looping)
        self._started = 0.0  # monotonic time of frame 0 of the current pass (realtime files)
        self._interrupt = threading.Event()

    @property
    def is_open(self) -> bool:
        return self._capture is not None

    def open(self) -> None:
        """Open the source; DeviceDisconnectedError when a device or stream is not (yet) there."""
        self.close()
        spec = self.spec = resolve_source(self.source)
        self._interrupt.clear()
        if spec.kind is SourceKind.FILE and not Path(str(spec.target)).is_file():
            raise DeviceError(
                DEVICE, f"video file {spec.target} does not exist; check the source parameter.", "config"
            )
        capture = self._open_capture(spec)
        if not capture.isOpened():
            capture.release()
            if spec.kind is SourceKind.FILE:
                raise DeviceProtocolError(
                    DEVICE,
                    f"video file {spec.target} cannot be decoded by OpenCV; "
                    "convert it (e.g. to MJPG AVI or MP4).",
                )
            raise DeviceDisconnectedError(
                DEVICE,
                f"cannot open {spec} within {self.open_timeout_s:g} s; check that the camera is connected "
                "and the address is right.",
            )
        self._capture = capture
        self._index = self._file_frame = 0
        self._started = time.monotonic()
        reported = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
        self.frame_rate_hz = reported if 0.0 < reported < 10_000.0 else 0.0
        self.identity = self._describe(capture, spec)
        LOG.info("%s: opened %s", DEVICE, self.identity)

    def _open_capture(self, spec: SourceSpec) -> cv2.VideoCapture:
        if spec.kind is SourceKind.URL:
            params = [
                cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
                int(self.open_timeout_s * 1000),
                cv2.CAP_PROP_READ_TIMEOUT_MSEC,
                int(self.read_timeout_s * 1000),
            ]
            return cv2.VideoCapture(str(spec.target), cv2.CAP_FFMPEG, params)
        if spec.kind is SourceKind.FILE:
            return cv2.VideoCapture(str(spec.target), cv2.CAP_ANY)
        capture = cv2.VideoCapture(spec.target, cv2.CAP_V4L2)
        width, height = self.requested_size
        if capture.isOpened():
            if width > 0 and height > 0:
                capture.set(cv2.CAP_PROP_FRAME_WIDTH, width)
                capture.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
            if self.requested_rate_hz > 0.0:
                capture.set(cv2.CAP_PROP_FPS, self.requested_rate_hz)
        return capture

    def _describe(self, capture: cv2.VideoCapture, spec: SourceSpec) -> str:
        rate = f"{self.frame_rate_hz:.3g} fps" if self.frame_rate_hz else "rate unknown"
        if spec.kind is SourceKind.FILE:
            frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
            return f"video file {spec.target} ({frames} frames, {rate}{', looped' if self.loop else ''})"
        if spec.kind is SourceKind.URL:
            return f"network stream {spec.target} ({capture.getBackendName()})"
        return f"video device {spec.target} ({capture.getBackendName()}, {rate})"

    def close(self) -> None:
        """Release the source (call from the reading thread, or after it has returned)."""
        self._interrupt.set()
        capture, self._capture = self._capture, None
        if capture is not None:
            capture.release()

    def interrupt(self) -> None:
        """End a realtime file's wait for its next frame at once (thread-safe)."""
        self._interrupt.set()

    def __enter__(self) -> CameraSource:
        self.open()
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # ------------------------------------------------------------------ frames
    def read(self) -> CameraFrame:
        """The next frame. Live sources: DeviceDisconnectedError when none comes within
        ``read_timeout_s`` or the stream ends. Files: paced at their rate when ``realtime``;
        EndOfVideoError at the end unless ``loop``."""
        capture, spec = self._capture, self.spec
        if capture is None or spec is None:
            raise DeviceDisconnectedError(DEVICE, "the camera source is not open; open() it first.")
        if spec.kind is SourceKind.FILE:
            return self._read_file(capture, spec)
        ok, image = capture.read()
        if not ok or image is None:
            raise DeviceDisconnectedError(
                DEVICE,
                f"no frame from {spec} within {self.read_timeout_s:g} s, or the stream ended after "
                f"{self._index} frames; check the camera's power, cable or network.",
            )
        return self._frame(image, None)

    def _read_file(self, capture: cv2.VideoCapture, spec: SourceSpec) -> CameraFrame:
        ok, image = capture.read()
        if not ok or image is None:
            if self._file_frame == 0:
                raise DeviceProtocolError(DEVICE, f"video file {spec.target} holds no readable frame.")
            if not self.loop:
                raise EndOfVideoError(
                    DEVICE,
                    f"video file {spec.target} ended after {self._file_frame} frames; set loop to replay it.",
                )
            capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
            self._file_frame = 0
            self._started = time.monotonic()
            ok, image = capture.read()
            if not ok or image is None:
                raise DeviceProtocolError(DEVICE, f"video file {spec.target} cannot be rewound to replay it.")
        position = self._file_frame / self.frame_rate_hz if self.frame_rate_hz else None
        if self.realtime and position is not None:
            delay = self._started + position - time.monotonic()
            if delay < -RESYNC_AFTER_S:  # the reader paused (node inactive): resume here, no burst
                self._started, delay = time.monotonic() - position, 0.0
            if delay > 0.0 and self._interrupt.wait(delay):
                raise DeviceDisconnectedError(
                    DEVICE, f"reading {spec} was interrupted (the source is closing)."
                )
        self._file_frame += 1
        return self._frame(image, position)

    def _frame(self, image: NDArray[Any], position_s: float | None) -> CameraFrame:
        if image.dtype != np.uint8:
            raise DeviceProtocolError(
                DEVICE, f"the camera delivers {image.dtype} pixels; only 8-bit frames are supported."
            )
        if image.ndim == 2:
            image = np.asarray(cv2.cvtColor(image, cv2.COLOR_GRAY2BGR), dtype=np.uint8)
        elif image.shape[2] == 4:
            image = np.asarray(cv2.cvtColor(image, cv2.COLOR_BGRA2BGR), dtype=np.uint8)
        elif image.shape[2] != 3:
            raise DeviceProtocolError(
                DEVICE, f"the camera delivers frames of shape {image.shape}; expected 1, 3 or 4 channels."
            )
        frame = CameraFrame(np.asarray(image, dtype=np.uint8), self._index, time.monotonic(), position_s)
        self._index += 1
        return frame
