"""The disintegration node's message conversions: library results in, ROS messages out (no graph)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np

from tablet_workcell.action import DisintegrationTest
from tablet_workcell.ros.disintegration_messages import (
    area_point,
    feedback_message,
    result_message,
    tablet_from_goal,
)
from tablet_workcell.vision.live import LiveStats
from tablet_workcell.vision.session import LiveSample, SessionResult, StopReason, TabletInfo
from tablet_workcell.vision.types import (
    DropletMeasurement,
    Fit,
    FrameAnalysis,
    FrameStatus,
    RegimeInterval,
    SeriesAnalysis,
)

NAN = math.nan


def result(analysis: SeriesAnalysis | None) -> SessionResult:
    return SessionResult(
        experiment_id="E7",
        time_s=np.array([0.0, 0.1, 0.2]),
        droplet_area_m2=np.array([2e-6, NAN, 0.0]),
        contact_angle_rad=np.array([1.0, NAN, NAN]),
        tablet_height_m=np.array([1.5e-3, NAN, 1.51e-3]),
        droplet_volume_m3=np.array([5e-9, NAN, 0.0]),
        base_width_m=np.array([3e-3, NAN, 0.0]),
        analysis=analysis,
        droplet_volume_dispensed_m3=5e-9,
        segmenter="unet-onnx 8ab16a50e612",
        contact_stamp_ns=10**18,
        frames_analysed=4,
        frame_statuses={"ok": 1, "dark_frame": 1, "no_droplet": 2},
        frames_out_of_order=0,
        stop_reason=StopReason.ABSORBED,
        success=analysis is not None,
        message="droplet fully absorbed",
    )


def test_a_result_carries_series_regimes_fits_and_nan_where_nothing_was_measured() -> None:
    fit = Fit(
        "washburn",
        "droplet_volume",
        ("V0", "C"),
        ("m^3", "m^2/s"),
        (5e-9, 5e-7),
        (1e-11, 1e-8),
        0.99,
        0.05,
        3.6,
    )
    analysis = SeriesAnalysis(
        (RegimeInterval(0, 0.0, 0.05), RegimeInterval(1, 0.05, 3.6)), (fit,), 3.6, 150.0
    )
    message = result_message(result(analysis), 1_700_000_000_123_456_789, "unet-onnx 8ab16a50e612")
    assert (message.header.stamp.sec, message.header.stamp.nanosec) == (1_700_000_000, 123_456_789)
    assert message.experiment_id == "E7" and message.success and message.model_version.startswith("unet")
    assert list(message.time_s) == [0.0, 0.1, 0.2] and math.isnan(message.droplet_area_m2[1])
    assert [(r.regime, r.start_time_s, r.end_time_s) for r in message.regimes] == [
        (0, 0.0, 0.05),
        (1, 0.05, 3.6),
    ]
    assert message.fits[0].model == "washburn" and list(message.fits[0].parameter_names) == ["V0", "C"]
    assert list(message.fits[0].standard_errors) == [1e-11, 1e-8]
    assert message.absorption_time_s == 3.6 and message.predicted_disintegration_time_s == 150.0
    failed = result_message(result(None), 0, "classical classical-1")
    assert not failed.success and math.isnan(failed.absorption_time_s) and not failed.regimes


def test_the_goal_tablet_falls_back_to_the_defaults_field_by_field() -> None:
    defaults = TabletInfo(
        thickness_m=1.5e-3, porosity=0.13, diameter_m=8e-3, tensile_strength_pa=2e6, soluble_fraction=0.3
    )
    assert tablet_from_goal(SimpleNamespace(), defaults) == defaults  # a goal built before the tablet fields
    goal = SimpleNamespace(
        tablet_thickness_m=1.8e-3, tablet_porosity=0.0, tablet_diameter_m=NAN, soluble_fraction=0.5
    )
    tablet = tablet_from_goal(goal, defaults)
    assert tablet == TabletInfo(1.8e-3, 0.13, 8e-3, 2e6, 0.5)


def test_feedback_and_the_area_curve_of_one_frame() -> None:
    measurement = DropletMeasurement(
        FrameStatus.OK, "", droplet_area_m2=1.9e-6, contact_angle_rad=0.8, tablet_height_m=1.5e-3
    )
    sample = LiveSample(2_000_000_000, 1.25, FrameAnalysis(1.25, measurement, None), 1, StopReason.RUNNING)
    stats = LiveStats(
        delivered=40, analysed=37, skipped=3, ignored=0, wall_s=1.3, analysis_s_mean=0.01, analysis_s_max=0.02
    )
    feedback = feedback_message(sample, stats)
    assert isinstance(feedback, DisintegrationTest.Feedback)
    assert (feedback.elapsed_s, feedback.droplet_area_m2, feedback.regime) == (1.25, 1.9e-6, 1)
    if hasattr(feedback, "frames_skipped"):  # fields of this package version's interface
        assert (feedback.frame_status, feedback.frames_analysed, feedback.frames_skipped) == ("ok", 37, 3)
    point = area_point(sample)
    assert (point.header.stamp.sec, point.point.x, point.point.y, point.point.z) == (2, 1.25, 1.9e-6, 1.5e-3)
