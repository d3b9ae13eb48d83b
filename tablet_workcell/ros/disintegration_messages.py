"""ROS messages of the disintegration node: library results in, tablet_workcell messages out.

Pure conversion, no analysis (that is :mod:`tablet_workcell.vision.session`). NaN stays
NaN in float64 fields (ROS messages carry IEEE floats): an absorption time that was not
reached is NaN, as the message definition says.

Goal fields that arrived with this package version (the tablet, feedback counters) are
read and written through ``getattr``/``hasattr``: a client or an interface build from
before them still works, with the node's defaults.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import PointStamped

from tablet_workcell.action import DisintegrationTest
from tablet_workcell.msg import DisintegrationResult, ModelFit, RegimeSegment
from tablet_workcell.vision.live import LiveSession, LiveStats
from tablet_workcell.vision.session import LiveSample, SessionResult, TabletInfo

NS_PER_S = 1_000_000_000


def stamp(stamp_ns: int) -> Time:
    sec, nanosec = divmod(int(stamp_ns), NS_PER_S)
    return Time(sec=sec, nanosec=nanosec)


def _positive(goal: Any, name: str) -> float:
    value = float(getattr(goal, name, 0.0))
    return value if math.isfinite(value) and value > 0.0 else math.nan


def tablet_from_goal(goal: Any, defaults: TabletInfo) -> TabletInfo:
    """The goal's tablet, each field 0 (or absent) replaced by the node's default."""

    def pick(name: str, default: float) -> float:
        value = _positive(goal, name)
        return default if math.isnan(value) else value

    soluble = float(getattr(goal, "soluble_fraction", 0.0)) or defaults.soluble_fraction
    return TabletInfo(
        thickness_m=pick("tablet_thickness_m", defaults.thickness_m),
        porosity=pick("tablet_porosity", defaults.porosity),
        diameter_m=pick("tablet_diameter_m", defaults.diameter_m),
        tensile_strength_pa=pick("tensile_strength_pa", defaults.tensile_strength_pa),
        soluble_fraction=soluble if math.isfinite(soluble) and 0.0 <= soluble <= 1.0 else 0.0,
    )


def feedback_message(sample: LiveSample, stats: LiveStats) -> Any:
    measurement = sample.analysis.measurement
    feedback = DisintegrationTest.Feedback(
        elapsed_s=float(sample.elapsed_s),
        droplet_area_m2=float(measurement.droplet_area_m2),
        contact_angle_rad=float(measurement.contact_angle_rad),
        tablet_height_m=float(measurement.tablet_height_m),
        regime=int(sample.regime),
    )
    extra = {
        "frame_status": measurement.status.value,
        "frames_analysed": stats.analysed,
        "frames_skipped": stats.skipped,
    }
    for name, value in extra.items():
        if hasattr(feedback, name):
            setattr(feedback, name, value)
    return feedback


def area_point(sample: LiveSample) -> PointStamped:
    """One point of the live area curve: x = time since contact [s], y = droplet area [m^2],
    z = tablet height [m], stamped with the frame's camera stamp."""
    measurement = sample.analysis.measurement
    point = PointStamped()
    point.header.stamp = stamp(sample.stamp_ns)
    point.header.frame_id = "disintegration"
    point.point.x = float(sample.elapsed_s)
    point.point.y = float(measurement.droplet_area_m2)
    point.point.z = float(measurement.tablet_height_m)
    return point


def _floats(values: np.ndarray) -> list[float]:
    return [float(v) for v in values]


def result_message(result: SessionResult, stamp_ns: int, model_version: str) -> DisintegrationResult:
    message = DisintegrationResult()
    message.header.stamp = stamp(stamp_ns)
    message.header.frame_id = "disintegration"
    message.experiment_id = result.experiment_id
    message.time_s = _floats(result.time_s)
    message.droplet_area_m2 = _floats(result.droplet_area_m2)
    message.contact_angle_rad = _floats(result.contact_angle_rad)
    message.tablet_height_m = _floats(result.tablet_height_m)
    message.droplet_volume_m3 = float(result.droplet_volume_dispensed_m3)
    message.model_version = model_version
    message.success = bool(result.success)
    message.message = result.message
    analysis = result.analysis
    if analysis is None:
        message.absorption_time_s = math.nan
        message.predicted_disintegration_time_s = math.nan
        return message
    message.absorption_time_s = float(analysis.absorption_time_s)
    message.predicted_disintegration_time_s = float(analysis.predicted_disintegration_time_s)
    message.regimes = [
        RegimeSegment(regime=int(r.regime), start_time_s=float(r.start_s), end_time_s=float(r.end_s))
        for r in analysis.regimes
    ]
    message.fits = [
        ModelFit(
            model=fit.model,
            series=fit.series,
            parameter_names=list(fit.parameter_names),
            parameter_units=list(fit.parameter_units),
            values=[float(v) for v in fit.values],
            standard_errors=[float(v) for v in fit.standard_errors],
            r_squared=float(fit.r_squared),
            start_time_s=float(fit.start_s),
            end_time_s=float(fit.end_s),
        )
        for fit in analysis.fits
    ]
    return message


class FeedbackThrottle:
    """Publishes a goal's latest analysed frame as feedback, at most every ``period_s``."""

    def __init__(
        self,
        goal_handle: Any,
        live: LiveSession,
        latest: Callable[[], LiveSample | None],
        period_s: float,
    ) -> None:
        self.goal_handle, self.live, self.latest, self.period_s = goal_handle, live, latest, period_s
        self._next_s = 0.0
        self._sent: LiveSample | None = None

    def tick(self, force: bool = False) -> None:
        """Publish when a new frame was analysed and the period is over (or ``force``)."""
        sample = self.latest()
        if sample is None or sample is self._sent or (not force and time.monotonic() < self._next_s):
            return
        self._next_s = time.monotonic() + self.period_s
        self._sent = sample
        self.goal_handle.publish_feedback(feedback_message(sample, self.live.stats()))


def failure_result(experiment_id: str, message: str) -> DisintegrationResult:
    """The result of a goal that ended before a test could run (refused, no camera)."""
    result = DisintegrationResult(experiment_id=experiment_id, success=False)
    result.message = message
    result.absorption_time_s = math.nan
    result.predicted_disintegration_time_s = math.nan
    return result
