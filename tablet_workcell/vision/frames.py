"""Frame checks: decide cheaply whether a camera frame can be analysed at all, and say why not.

Why a separate gate: a segmenter fed an unlit, washed-out, wrongly sized or wrongly
encoded frame still returns *some* label map, and the measurement then returns a number
that looks plausible and is wrong. Checking the frame first turns each of those cases into
a :class:`~tablet_workcell.vision.types.FrameStatus` and a sentence an operator can act on,
and it normalises the accepted encodings (``rgb8`` is converted to ``bgr8``) so segmenters
see only ``mono8`` or ``bgr8``.

Speed: every check works on the array's metadata or on a strided subsample (every 8th
row and column), so a 640x480 frame is checked in a few tens of microseconds.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import cast

import cv2
import numpy as np
from numpy.typing import NDArray

from tablet_workcell.vision.types import FrameStatus

logger = logging.getLogger(__name__)

ACCEPTED_ENCODINGS = ("mono8", "bgr8", "rgb8")
# OpenCV-style names some drivers publish; cv_bridge reads them as mono8 / bgr8.
ENCODING_ALIASES = {"8UC1": "mono8", "8UC3": "bgr8"}
DARK_LEVEL = 40  # a frame whose brightest 1 % stays below this grey level is unlit
SATURATED_LEVEL = 250  # a frame whose darkest 1 % is above this grey level is washed out
BRIGHT_FRACTION = 0.01  # "brightest / darkest 1 %" of the subsample
SAMPLE_STRIDE = 8  # rows and columns between sampled pixels for the brightness checks


@dataclass(frozen=True, eq=False)
class FrameCheck:
    """Outcome of :func:`check_frame`: a status, a sentence, and the frame ready to segment.

    ``image`` is the input itself (``mono8``/``bgr8``; HxWx1 squeezed to HxW) or its
    ``bgr8`` conversion (``rgb8``); None when the frame was rejected.
    """

    status: FrameStatus
    message: str
    image: NDArray[np.uint8] | None

    @property
    def ok(self) -> bool:
        return self.status is FrameStatus.OK


def _reject(status: FrameStatus, message: str) -> FrameCheck:
    logger.debug("frame rejected (%s): %s", status.value, message)
    return FrameCheck(status, message, None)


def check_frame(
    image: object, expected_shape: tuple[int, int] | None = None, encoding: str | None = None
) -> FrameCheck:
    """Check one frame; never raises for bad input (that is what the status is for).

    ``expected_shape`` is the configured camera's (rows, columns); None accepts any size.
    ``encoding`` is the sensor_msgs/Image encoding when known (8UC1/8UC3 read as
    mono8/bgr8); None infers it from the array (HxW: mono8, HxWx3: bgr8).
    """
    encoding = ENCODING_ALIASES.get(encoding, encoding) if encoding is not None else None
    rejected = _array_problem(image)
    if rejected is not None:
        return _reject(*rejected)
    frame = cast(NDArray[np.uint8], image)  # _array_problem checked it is a uint8 array
    channels = _channels(frame) or 0
    problem = _encoding_problem(channels, encoding)
    if problem:
        return _reject(FrameStatus.WRONG_ENCODING, problem)
    rows, cols = frame.shape[:2]
    if expected_shape is not None and (rows, cols) != tuple(expected_shape):
        return _reject(
            FrameStatus.WRONG_SIZE,
            f"The frame is {cols}x{rows} px but the camera is configured for "
            f"{expected_shape[1]}x{expected_shape[0]} px; fix the camera's resolution or the "
            "configured image size (the pixel scale depends on it).",
        )
    if frame.ndim == 3 and channels == 1:
        frame = frame[:, :, 0]
    sample = frame[::SAMPLE_STRIDE, ::SAMPLE_STRIDE]
    limit = max(1, int(BRIGHT_FRACTION * sample.size))
    if np.count_nonzero(sample >= DARK_LEVEL) < limit:
        return _reject(
            FrameStatus.DARK_FRAME,
            f"The frame is black: fewer than 1 % of its pixels reach grey level {DARK_LEVEL}; "
            "switch on the backlight, open the shutter or raise the exposure.",
        )
    if np.count_nonzero(sample <= SATURATED_LEVEL) < limit:
        return _reject(
            FrameStatus.OVEREXPOSED_FRAME,
            f"The frame is washed out: fewer than 1 % of its pixels are below grey level "
            f"{SATURATED_LEVEL}, so no silhouette is visible; lower the exposure or the backlight.",
        )
    if encoding == "rgb8":
        frame = np.asarray(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), dtype=np.uint8)
    return FrameCheck(FrameStatus.OK, "", frame)


def _array_problem(image: object) -> tuple[FrameStatus, str] | None:
    """Status and sentence when ``image`` is not a non-empty uint8 HxW or HxWxC array."""
    if image is None:
        return FrameStatus.EMPTY_FRAME, "The frame is None: the camera delivered no image."
    if not isinstance(image, np.ndarray):
        return (
            FrameStatus.WRONG_ENCODING,
            f"The frame is a {type(image).__name__}, not a numpy array; pass the decoded image.",
        )
    if image.size == 0:
        return (
            FrameStatus.EMPTY_FRAME,
            f"The frame has no pixels (shape {image.shape}); check that the camera is streaming.",
        )
    if image.dtype != np.uint8:
        return (
            FrameStatus.WRONG_ENCODING,
            f"The frame's pixels are {image.dtype}, but the analysis needs 8-bit (uint8) pixels; "
            "configure the camera for mono8 or bgr8.",
        )
    if _channels(image) is None:
        return (
            FrameStatus.WRONG_ENCODING,
            f"The frame has shape {image.shape}; expected HxW (mono8) or HxWx3 (bgr8) pixels.",
        )
    return None


def _channels(image: NDArray[np.uint8]) -> int | None:
    if image.ndim == 2:
        return 1
    if image.ndim == 3 and image.shape[2] in (1, 3, 4):
        return int(image.shape[2])
    return None


def _encoding_problem(channels: int, encoding: str | None) -> str:
    """A sentence when the array and the declared encoding do not fit the analysis, else ''."""
    if encoding is None:
        if channels == 4:
            return (
                "The frame has 4 channels (bgra8/rgba8); the analysis accepts mono8, bgr8 or rgb8: "
                "configure the camera without an alpha channel."
            )
        return ""
    if encoding not in ACCEPTED_ENCODINGS:
        return (
            f"The frame's encoding is {encoding!r}; the analysis accepts "
            f"{', '.join(ACCEPTED_ENCODINGS)}: configure the camera for one of them."
        )
    wanted = 1 if encoding == "mono8" else 3
    if channels != wanted:
        return (
            f"The frame is declared {encoding} ({wanted} channel{'s' if wanted > 1 else ''}) but has "
            f"{channels}; the publisher's encoding does not match its pixels."
        )
    return ""


def to_grey(image: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """The frame as HxW grey levels: mono8 as is (no copy), bgr8 through OpenCV's luma weights."""
    if image.ndim == 2:
        return image
    if image.shape[2] == 1:
        return image[:, :, 0]
    return np.asarray(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), dtype=np.uint8)
