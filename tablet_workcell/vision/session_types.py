"""Value types of a disintegration test session: settings, live samples, the result.

Separate from :mod:`tablet_workcell.vision.session` (the logic) so the ROS adapter, the
re-analysis and the command line share them without reading the session's internals.
"""

from __future__ import annotations

import enum
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from tablet_workcell.vision.types import FrameAnalysis, SeriesAnalysis, VisionError


class FrameAnalyser(Protocol):
    """What the session needs of a frame analyser (``pipeline.FrameAnalyser`` is one)."""

    def analyse(self, image: object, time_s: float, encoding: str | None = None) -> FrameAnalysis: ...


@dataclass(frozen=True)
class TabletInfo:
    """The tablet under the droplet, from the press (the series analysis needs porosity and thickness)."""

    thickness_m: float = float("nan")
    porosity: float = float("nan")
    diameter_m: float = float("nan")  # NaN: no lateral cap on the wetted region
    tensile_strength_pa: float = float("nan")  # NaN: no predicted disintegration time
    soluble_fraction: float = 0.0

    @property
    def known(self) -> bool:
        return math.isfinite(self.thickness_m) and self.thickness_m > 0 and 0.0 < self.porosity < 1.0


class StopReason(enum.Enum):
    RUNNING = "running"
    ABSORBED = "absorbed"  # droplet gone for absorbed_margin_s
    MAX_DURATION = "max_duration"
    NO_CONTACT = "no_contact"  # no droplet ever seen
    STOPPED = "stopped"  # ended from outside (cancel, e-stop, shutdown) before either
    END_OF_DATA = "end_of_data"  # a bag's frames ran out (offline analysis)


ENDED_NORMALLY = (StopReason.ABSORBED, StopReason.MAX_DURATION, StopReason.END_OF_DATA)


@dataclass(frozen=True)
class SessionSettings:
    """Everything besides the frames that decides a test's numbers (recorded with the frames)."""

    pixel_size_m: float
    expected_shape: tuple[int, int] | None  # (rows, columns) of the camera; None: any size
    max_duration_s: float  # instrument seconds after contact
    droplet_volume_m3: float = float("nan")  # as dispensed (NaN: unknown)
    absorbed_margin_s: float = 1.0  # droplet absent this long -> absorbed
    time_scale: float = 1.0  # instrument seconds per stamp second
    tablet: TabletInfo = field(default_factory=TabletInfo)
    experiment_id: str = ""

    def __post_init__(self) -> None:
        checks = (
            ("pixel_size_m", self.pixel_size_m, 0.0, 1e-2),
            ("max_duration_s", self.max_duration_s, 0.0, 1e6),
            ("time_scale", self.time_scale, 0.0, 1e6),
        )
        for name, value, low, high in checks:
            if not (math.isfinite(value) and low < value <= high):
                raise VisionError(
                    f"session setting {name} = {value!r} must be finite and in ({low:g}, {high:g}]; "
                    "check the camera calibration and the goal."
                )
        if not (math.isfinite(self.absorbed_margin_s) and self.absorbed_margin_s >= 0.0):
            raise VisionError(f"absorbed_margin_s = {self.absorbed_margin_s!r} must be finite and >= 0.")

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["expected_shape"] = list(self.expected_shape) if self.expected_shape is not None else None
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SessionSettings:
        values = dict(data)
        shape = values.get("expected_shape")
        values["expected_shape"] = (int(shape[0]), int(shape[1])) if shape is not None else None
        values["tablet"] = TabletInfo(**values.get("tablet", {}))
        return cls(**values)


@dataclass(frozen=True)
class LiveSample:
    """What one analysed frame means for the running test (feedback, overlay, area curve)."""

    stamp_ns: int
    elapsed_s: float  # since contact; NaN before contact
    analysis: FrameAnalysis
    regime: int  # RegimeSegment.REGIME_* estimate at this frame
    stop_reason: StopReason


@dataclass(frozen=True)
class SessionResult:
    """Everything a DisintegrationResult carries, in SI units, plus the bookkeeping."""

    experiment_id: str
    time_s: NDArray[np.float64]  # since contact, frames with a measurement (status OK)
    droplet_area_m2: NDArray[np.float64]
    contact_angle_rad: NDArray[np.float64]
    tablet_height_m: NDArray[np.float64]
    droplet_volume_m3: NDArray[np.float64]  # spherical cap per frame
    base_width_m: NDArray[np.float64]
    analysis: SeriesAnalysis | None  # None when the test failed before a series existed
    droplet_volume_dispensed_m3: float
    segmenter: str  # "<name> <version>"
    contact_stamp_ns: int | None
    frames_analysed: int
    frame_statuses: dict[str, int]  # FrameStatus value -> count, every analysed frame
    frames_out_of_order: int  # stamped at or before the previous frame: left out
    stop_reason: StopReason
    success: bool
    message: str

    def to_json(self) -> dict[str, Any]:
        """The numbers as plain JSON values (NaN stays NaN): compare two runs with ``==`` on the dump."""
        analysis = self.analysis
        return {
            "experiment_id": self.experiment_id,
            "time_s": self.time_s.tolist(),
            "droplet_area_m2": self.droplet_area_m2.tolist(),
            "contact_angle_rad": self.contact_angle_rad.tolist(),
            "tablet_height_m": self.tablet_height_m.tolist(),
            "droplet_volume_m3": self.droplet_volume_m3.tolist(),
            "base_width_m": self.base_width_m.tolist(),
            "analysis": None if analysis is None else _analysis_json(analysis),
            "droplet_volume_dispensed_m3": self.droplet_volume_dispensed_m3,
            "segmenter": self.segmenter,
            "contact_stamp_ns": self.contact_stamp_ns,
            "frames_analysed": self.frames_analysed,
            "frame_statuses": dict(sorted(self.frame_statuses.items())),
            "frames_out_of_order": self.frames_out_of_order,
            "stop_reason": self.stop_reason.value,
            "success": self.success,
            "message": self.message,
        }


def _analysis_json(analysis: SeriesAnalysis) -> dict[str, Any]:
    return {
        "regimes": [asdict(r) for r in analysis.regimes],
        "fits": [asdict(f) for f in analysis.fits],
        "absorption_time_s": analysis.absorption_time_s,
        "predicted_disintegration_time_s": analysis.predicted_disintegration_time_s,
        "messages": list(analysis.messages),
    }
