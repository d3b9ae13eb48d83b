"""Regime baseline, droplet-gone detection and the boundary-error metric."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tablet_workcell.twin.blend import Formulation
from tablet_workcell.twin.disintegration import DropletSeries, Regime, sessile_drop
from tablet_workcell.twin.observation import GoneAs, ObservationNoise, observe
from tablet_workcell.vision import regimes
from tablet_workcell.vision.regimes import ABSORPTION, COMPLETE, SPREADING, SWELLING
from tablet_workcell.vision.series import analyse_series
from tablet_workcell.vision.types import RegimeInterval


def drop(fractions: dict[str, float], porosity: float, duration_s: float = 60.0) -> DropletSeries:
    blend = Formulation.of(fractions).properties
    return sessile_drop(blend, 8e-3, 1.5e-3, porosity, 2e6, 5e-9, duration_s, 1 / 30)


def test_regime_constants_mirror_the_twin_and_the_message() -> None:
    assert (SPREADING, ABSORPTION, SWELLING, COMPLETE) == (
        Regime.SPREADING,
        Regime.ABSORPTION,
        Regime.SWELLING,
        Regime.COMPLETE,
    )


def linear_decline(gone_s: float = 5.0) -> tuple[np.ndarray, np.ndarray]:
    t = np.arange(0.0, 10.0, 0.1)
    return t, np.maximum(5e-9 * (1.0 - t / gone_s), 0.0)


def test_gone_time_is_interpolated_between_last_seen_and_first_empty_frame() -> None:
    t, volume = linear_decline(4.96)
    assert regimes.droplet_gone_time_s(t, volume) == pytest.approx(4.96, abs=1e-6)


def test_gone_time_tolerates_rejected_frames_a_stray_detection_and_noise() -> None:
    t, volume = linear_decline()
    noisy = volume * (1 + 0.03 * np.random.default_rng(0).standard_normal(t.size))
    noisy[3::9] = np.nan
    noisy[70] = 2e-9  # one spurious detection long after the droplet has gone
    assert regimes.droplet_gone_time_s(t, noisy) == pytest.approx(5.0, abs=0.15)


def test_a_pipeline_that_reports_no_droplet_as_nan_still_gives_the_gone_time() -> None:
    t, volume = linear_decline()
    volume[volume <= 0] = np.nan
    assert regimes.droplet_gone_time_s(t, volume) == pytest.approx(5.0, abs=0.1)


def test_droplet_still_present_at_the_end_gives_nan() -> None:
    t = np.arange(0.0, 10.0, 0.1)
    assert math.isnan(regimes.droplet_gone_time_s(t, 5e-9 * (1.0 - 0.05 * t)))
    assert math.isnan(regimes.droplet_gone_time_s(t, np.full(t.size, np.nan)))


def test_intervals_keep_the_physical_order_and_skip_absent_regimes() -> None:
    found = regimes.intervals_from_boundaries(0.0, 60.0, (0.05, math.inf, 20.0))
    assert found == (
        RegimeInterval(SPREADING, 0.0, 0.05),
        RegimeInterval(ABSORPTION, 0.05, 20.0),
        RegimeInterval(COMPLETE, 20.0, 60.0),
    )
    # A swelling boundary after the droplet is gone cannot happen: complete ends the earlier regimes.
    assert [i.regime for i in regimes.intervals_from_boundaries(0.0, 60.0, (0.05, 30.0, 20.0))] == [0, 1, 3]
    assert [i.regime for i in regimes.intervals_from_boundaries(0.0, 60.0, (0.05, 10.0, math.nan))] == [
        0,
        1,
        2,
    ]


def test_boundary_error_counts_a_missing_regime_as_a_displaced_boundary() -> None:
    truth = regimes.intervals_from_boundaries(0.0, 60.0, (0.05, 10.0, 20.0))
    assert regimes.boundary_error(truth, truth, 0.0, 60.0) == 0.0
    without_swelling = regimes.intervals_from_boundaries(0.0, 60.0, (0.05, math.inf, 20.0))
    assert regimes.boundary_error(without_swelling, truth, 0.0, 60.0) == pytest.approx(10.0 / 60.0)
    late = regimes.intervals_from_boundaries(0.0, 60.0, (0.05, 13.0, 20.0))
    assert regimes.boundary_error(late, truth, 0.0, 60.0) == pytest.approx(3.0 / 60.0)


def test_intervals_from_labels_end_where_the_next_begins() -> None:
    t = np.arange(6, dtype=np.float64) * 0.5
    assert regimes.intervals_from_labels(t, [0, 1, 1, 2, 3, 3]) == (
        RegimeInterval(0, 0.0, 0.5),
        RegimeInterval(1, 0.5, 1.5),
        RegimeInterval(2, 1.5, 2.0),
        RegimeInterval(3, 2.0, 2.5),
    )


CASES = [
    ({"mcc": 0.6, "lactose": 0.35, "ccs": 0.04, "mgst": 0.01}, 0.08, "zero", True),
    ({"mcc": 0.5, "lactose": 0.45, "ssg": 0.05}, 0.13, "nan", True),
    ({"mcc": 0.6, "lactose": 0.4}, 0.08, "zero", True),
    ({"lactose": 1.0}, 0.13, "nan", False),
    ({"dcpa": 1.0}, 0.2, "zero", False),
]


@pytest.mark.parametrize(("fractions", "porosity", "gone_as", "swells"), CASES)
def test_baseline_boundaries_within_five_percent_of_the_test(
    fractions: dict[str, float], porosity: float, gone_as: GoneAs, swells: bool
) -> None:
    series = drop(fractions, porosity)
    measured = observe(
        series, np.random.default_rng(7), ObservationNoise(gone_as=gone_as, rejected_fraction=0.03)
    )
    analysis = analyse_series(
        measured.time_s,
        measured.droplet_volume_m3,
        measured.droplet_area_m2,
        measured.tablet_height_m,
        porosity=porosity,
        tablet_thickness_m=1.5e-3,
        base_width_m=measured.base_width_m,
        tablet_diameter_m=8e-3,
    )
    truth = regimes.intervals_from_labels(series.time_s, series.regime)
    assert regimes.boundary_error(analysis.regimes, truth, 0.0, 60.0) <= 0.05
    found = [interval.regime for interval in analysis.regimes]
    assert (SWELLING in found) is swells
    assert found == sorted(found) and found[0] == SPREADING and found[-1] == COMPLETE
