"""One frame in, one :class:`FrameAnalysis` out; and the per-test series the analyses add up to.

``FrameAnalyser`` chains the three steps every caller (the disintegration node, the
benchmark, re-analysis of a recorded video) must run in the same order: check the frame
(:mod:`~tablet_workcell.vision.frames`), segment it (any
:class:`~tablet_workcell.vision.types.Segmenter`), measure the labels
(:mod:`~tablet_workcell.vision.measurement`). It never raises for a bad frame or a failing
model: each becomes a status with a sentence, so a live test keeps running and the series
shows exactly which frames were rejected and why.

``SeriesRecorder`` collects the analyses of one test into numpy arrays (NaN where a frame
gave no number) for the regime and fit analysis.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import dataclass, fields

import numpy as np
from numpy.typing import NDArray

from tablet_workcell.vision.frames import check_frame
from tablet_workcell.vision.measurement import measure
from tablet_workcell.vision.overlay import draw_overlay
from tablet_workcell.vision.types import (
    DropletMeasurement,
    FrameAnalysis,
    FrameStatus,
    Segmenter,
    VisionError,
)

__all__ = ["FrameAnalyser", "MeasuredSeries", "SeriesRecorder", "draw_overlay"]

logger = logging.getLogger(__name__)

F64 = NDArray[np.float64]


class FrameAnalyser:
    """Check, segment and measure frames of one camera with one segmenter."""

    def __init__(
        self, segmenter: Segmenter, pixel_size_m: float, expected_shape: tuple[int, int] | None = None
    ) -> None:
        if not (math.isfinite(pixel_size_m) and pixel_size_m > 0.0):
            raise VisionError(
                f"pixel_size_m is {pixel_size_m!r}; use the calibrated positive size of one pixel in "
                "metres (e.g. 20e-6 from the camera's mm/px calibration)."
            )
        if expected_shape is not None and (len(expected_shape) != 2 or min(expected_shape) <= 0):
            raise VisionError(
                f"expected_shape is {expected_shape!r}; use (rows, columns) of the camera, e.g. (480, 640), "
                "or None to accept any size."
            )
        self.segmenter = segmenter
        self.pixel_size_m = pixel_size_m
        self.expected_shape = expected_shape

    def analyse(self, image: object, time_s: float, encoding: str | None = None) -> FrameAnalysis:
        """Analyse one frame taken at ``time_s``; bad frames and model failures are statuses."""
        check = check_frame(image, self.expected_shape, encoding)
        if check.image is None:
            return FrameAnalysis(time_s, DropletMeasurement(check.status, check.message), None)
        frame = check.image
        try:
            segmentation = self.segmenter.segment(frame)
            labels = segmentation.labels
        except Exception as error:  # a model must never take the live test down with it
            logger.warning("segmenter %s failed: %s", self.segmenter.name, error)
            message = (
                f"The {self.segmenter.name} segmenter (version {self.segmenter.version}) failed on "
                f"this frame: {error}"
            )
            return FrameAnalysis(time_s, DropletMeasurement(FrameStatus.MODEL_ERROR, message), None)
        if not isinstance(labels, np.ndarray) or labels.dtype != np.uint8 or labels.shape != frame.shape[:2]:
            described = f"{labels.dtype} {labels.shape}" if isinstance(labels, np.ndarray) else repr(labels)
            message = (
                f"The {self.segmenter.name} segmenter returned labels {described} for a "
                f"{frame.shape[1]}x{frame.shape[0]} frame; it must return one uint8 label per pixel."
            )
            return FrameAnalysis(time_s, DropletMeasurement(FrameStatus.MODEL_ERROR, message), None)
        top = getattr(segmentation, "tablet_top", None)
        bottom = getattr(segmentation, "tablet_bottom", None)
        edges = (top, bottom) if top is not None and bottom is not None else None
        return FrameAnalysis(time_s, measure(labels, self.pixel_size_m, edges), labels)


@dataclass(frozen=True, eq=False)
class MeasuredSeries:
    """The measured series of one test, one element per analysed frame (NaN: no number)."""

    time_s: F64
    droplet_area_m2: F64
    contact_angle_rad: F64
    base_width_m: F64
    droplet_height_m: F64
    droplet_volume_m3: F64
    tablet_height_m: F64
    status: tuple[FrameStatus, ...]

    @property
    def ok(self) -> NDArray[np.bool_]:
        """True for frames whose status is OK (a droplet was measured)."""
        return np.array([s is FrameStatus.OK for s in self.status], dtype=bool)

    def status_counts(self) -> dict[FrameStatus, int]:
        return dict(Counter(self.status))


_SERIES_FIELDS = tuple(f.name for f in fields(MeasuredSeries) if f.name not in ("time_s", "status"))


class SeriesRecorder:
    """Accumulates frame analyses of one test in arrival order (appending is O(1))."""

    def __init__(self) -> None:
        self._time_s: list[float] = []
        self._values: dict[str, list[float]] = {name: [] for name in _SERIES_FIELDS}
        self._status: list[FrameStatus] = []

    def __len__(self) -> int:
        return len(self._time_s)

    def add(self, analysis: FrameAnalysis) -> None:
        measurement = analysis.measurement
        self._time_s.append(float(analysis.time_s))
        for name, values in self._values.items():
            values.append(float(getattr(measurement, name)))
        self._status.append(measurement.status)

    def clear(self) -> None:
        self._time_s.clear()
        for values in self._values.values():
            values.clear()
        self._status.clear()

    def series(self) -> MeasuredSeries:
        """A snapshot of everything recorded so far as float64 arrays."""
        arrays = {name: np.array(values, dtype=np.float64) for name, values in self._values.items()}
        return MeasuredSeries(
            time_s=np.array(self._time_s, dtype=np.float64), status=tuple(self._status), **arrays
        )
