"""Value types shared by the vision layers: what a frame analysis and a series analysis return.

They are plain frozen dataclasses so the ROS adapters, the benchmark, the CLI and the
tests all speak one vocabulary, and so a result can be compared field by field when a
recorded video is re-analysed.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from tablet_workcell.errors import WorkcellError

LABEL_BACKGROUND = 0
LABEL_DROPLET = 1
LABEL_TABLET = 2


class VisionError(WorkcellError):
    """Base of the vision layer's typed errors; messages name the value, the limit and the fix."""


class ModelError(VisionError):
    """A segmentation model that is missing, corrupt, or does not match its card / input contract."""


class FrameStatus(enum.Enum):
    """Why a frame did or did not yield trustworthy numbers (never a silent wrong number)."""

    OK = "ok"
    EMPTY_FRAME = "empty_frame"  # no pixels at all
    DARK_FRAME = "dark_frame"  # black / unlit: nothing can be segmented
    OVEREXPOSED_FRAME = "overexposed_frame"  # washed-out white: no silhouette visible
    WRONG_SIZE = "wrong_size"
    WRONG_ENCODING = "wrong_encoding"
    NO_DROPLET = "no_droplet"
    DROPLET_AT_EDGE = "droplet_at_edge"  # touches the frame border: area would be cut off
    NO_TABLET = "no_tablet"
    MODEL_ERROR = "model_error"


@dataclass(frozen=True)
class Line:
    """y = intercept + slope * x in image pixel coordinates (x right, y down; pixel i spans [i, i + 1])."""

    intercept: float
    slope: float

    def y(self, x: float) -> float:
        return self.intercept + self.slope * x


@dataclass(frozen=True, eq=False)
class Segmentation:
    """Per-pixel labels at the input frame's full resolution (0 background, 1 droplet, 2 tablet).

    ``tablet_top`` and ``tablet_bottom``: the tablet's top edge and the stage's top edge (its
    bottom), when the segmenter placed them on the frame at sub-pixel precision. The label
    map can only hold them to a pixel per column, which with a level camera (every column
    the same row) quantises the tablet height, the swelling, to whole pixels; the
    measurement uses these lines when given.
    """

    labels: NDArray[np.uint8]
    tablet_top: Line | None = None
    tablet_bottom: Line | None = None


class Segmenter(Protocol):
    """Anything that turns a checked BGR/mono uint8 frame into a full-resolution label map."""

    name: str
    version: str  # model hash (ONNX) or algorithm version (classical)

    def segment(self, image: NDArray[np.uint8]) -> Segmentation: ...


@dataclass(frozen=True)
class DropletMeasurement:
    """Geometry of one frame in SI units; NaN where the status says a value is not measurable."""

    status: FrameStatus
    message: str  # a sentence for operators; empty when OK
    droplet_area_m2: float = float("nan")  # side-view (projected) area
    base_width_m: float = float("nan")
    droplet_height_m: float = float("nan")  # apex above the tablet top
    contact_angle_rad: float = float("nan")  # mean of left and right edge angles
    droplet_volume_m3: float = float("nan")  # spherical cap from base width and height
    tablet_height_m: float = float("nan")  # tablet top above the stage (swelling)


@dataclass(frozen=True, eq=False)
class FrameAnalysis:
    """One analysed frame: the measurement and the labels it came from (for overlays)."""

    time_s: float
    measurement: DropletMeasurement
    labels: NDArray[np.uint8] | None  # None when the frame was rejected before segmentation


@dataclass(frozen=True)
class RegimeInterval:
    regime: int  # tablet_workcell.twin.disintegration.Regime / RegimeSegment.REGIME_* values
    start_s: float
    end_s: float


@dataclass(frozen=True)
class Fit:
    """A model fitted to one series over one interval (mirrors tablet_workcell/msg/ModelFit)."""

    model: str  # "washburn", "first_order", "power_law", ...
    series: str  # "droplet_volume", "droplet_area", "tablet_height", ...
    parameter_names: tuple[str, ...]
    parameter_units: tuple[str, ...]
    values: tuple[float, ...]
    standard_errors: tuple[float, ...]
    r_squared: float
    start_s: float
    end_s: float

    def value(self, name: str) -> float:
        return self.values[self.parameter_names.index(name)]


@dataclass(frozen=True)
class SeriesAnalysis:
    """Regimes, fits and figures of merit of one sessile-drop test."""

    regimes: tuple[RegimeInterval, ...]
    fits: tuple[Fit, ...]
    absorption_time_s: float  # NaN when the droplet was not fully absorbed in the record
    predicted_disintegration_time_s: float
    messages: tuple[str, ...] = field(default=())  # caveats (short record, poor fit, ...)
