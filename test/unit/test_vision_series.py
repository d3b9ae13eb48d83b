"""analyse_series on measured twin series: fits, figures of merit, caveats and refusals."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tablet_workcell.twin.blend import Formulation
from tablet_workcell.twin.disintegration import DropletSeries, sessile_drop
from tablet_workcell.twin.observation import ObservationNoise, ObservedSeries, observe
from tablet_workcell.vision.regimes import SWELLING
from tablet_workcell.vision.series import SeriesError, analyse_series
from tablet_workcell.vision.series_inputs import cap_base_radius_m, cap_volume_for_area_m3
from tablet_workcell.vision.types import Fit, SeriesAnalysis

IMMEDIATE_RELEASE = {"mcc": 0.6, "lactose": 0.35, "ccs": 0.04, "mgst": 0.01}
SOLUBLE = 0.35  # lactose


def drop(
    fractions: dict[str, float], porosity: float, duration_s: float = 60.0, soluble: float = 0.0
) -> DropletSeries:
    blend = Formulation.of(fractions).properties
    return sessile_drop(
        blend, 8e-3, 1.5e-3, porosity, 2e6, 5e-9, duration_s, 1 / 30, soluble_fraction=soluble
    )


def analyse(
    measured: ObservedSeries, porosity: float, widths: bool = True, **extra: object
) -> SeriesAnalysis:
    return analyse_series(
        measured.time_s,
        measured.droplet_volume_m3,
        measured.droplet_area_m2,
        measured.tablet_height_m,
        porosity=porosity,
        tablet_thickness_m=1.5e-3,
        droplet_volume_dispensed_m3=5e-9,
        base_width_m=measured.base_width_m if widths else None,
        tablet_diameter_m=8e-3,
        **extra,  # type: ignore[arg-type]
    )


def fit_of(analysis: SeriesAnalysis, model: str, series: str) -> Fit:
    return next(f for f in analysis.fits if (f.model, f.series) == (model, series))


@pytest.mark.parametrize("seed", [0, 1])
def test_swelling_tablet_gives_constants_and_figures_of_merit_near_the_truth(seed: int) -> None:
    series = drop(IMMEDIATE_RELEASE, 0.08, soluble=SOLUBLE)
    measured = observe(series, np.random.default_rng(seed))
    analysis = analyse(measured, 0.08, tensile_strength_pa=2e6, soluble_fraction=SOLUBLE)
    washburn = fit_of(analysis, "washburn", "droplet_volume")
    assert washburn.value("C") == pytest.approx(series.washburn_coefficient_m2_per_s, rel=0.10)
    assert washburn.value("v_s") == pytest.approx(series.swelling_velocity_m_per_s, rel=0.10)
    swelling = fit_of(analysis, "first_order", "tablet_height")
    assert swelling.value("k_s") == pytest.approx(series.swelling_rate_per_s, rel=0.10)
    assert analysis.absorption_time_s == pytest.approx(series.absorption_time_s, rel=0.02)
    assert analysis.predicted_disintegration_time_s == pytest.approx(series.disintegration_time_s, rel=0.10)
    assert {(f.model, f.series) for f in analysis.fits} >= {
        ("washburn_sqrt", "droplet_volume"),
        ("first_order", "droplet_volume"),
        ("power_law", "tablet_height"),
    }
    assert any(interval.regime == SWELLING for interval in analysis.regimes)


def test_absorption_only_tablet_has_no_swelling_regime_and_does_not_disintegrate() -> None:
    series = drop({"lactose": 1.0}, 0.13)
    analysis = analyse(observe(series, np.random.default_rng(2)), 0.13, tensile_strength_pa=2e6)
    assert fit_of(analysis, "washburn", "droplet_volume").value("C") == pytest.approx(
        series.washburn_coefficient_m2_per_s, rel=0.10
    )
    assert not any(f.series == "tablet_height" and f.model == "first_order" for f in analysis.fits)
    assert any("no swelling to fit" in m for m in analysis.messages)
    assert all(interval.regime != SWELLING for interval in analysis.regimes)
    assert analysis.absorption_time_s == pytest.approx(series.absorption_time_s, rel=0.02)
    assert analysis.predicted_disintegration_time_s == 3600.0
    assert any("does not disintegrate" in m for m in analysis.messages)


def test_rejected_frames_and_a_burst_of_them_are_tolerated() -> None:
    series = drop(IMMEDIATE_RELEASE, 0.13)
    measured = observe(series, np.random.default_rng(3), ObservationNoise(rejected_fraction=0.1))
    for array in (measured.droplet_volume_m3, measured.droplet_area_m2, measured.base_width_m):
        array[40:70] = np.nan  # one second of lost frames in the middle of absorption
    analysis = analyse(measured, 0.13)
    assert fit_of(analysis, "washburn", "droplet_volume").value("C") == pytest.approx(
        series.washburn_coefficient_m2_per_s, rel=0.10
    )
    assert analysis.absorption_time_s == pytest.approx(series.absorption_time_s, rel=0.02)


def test_no_droplet_frames_reported_as_nan_volume_and_tiny_area_read_as_gone() -> None:
    series = drop(IMMEDIATE_RELEASE, 0.13)
    measured = observe(series, np.random.default_rng(4))
    gone = measured.droplet_volume_m3 == 0.0
    measured.droplet_volume_m3[gone] = np.nan  # as the pipeline's NO_DROPLET frames
    measured.droplet_area_m2[gone] = 3 * (20e-6) ** 2
    analysis = analyse(measured, 0.13)
    assert analysis.absorption_time_s == pytest.approx(series.absorption_time_s, rel=0.02)


def test_record_that_ends_before_the_droplet_is_gone_says_so() -> None:
    series = drop({"lactose": 1.0}, 0.13, duration_s=15.0)
    analysis = analyse(observe(series, np.random.default_rng(5)), 0.13)
    assert math.isnan(analysis.absorption_time_s)
    assert any("not fully absorbed within the 15.0 s record" in m for m in analysis.messages)
    assert fit_of(analysis, "washburn", "droplet_volume").value("C") == pytest.approx(
        series.washburn_coefficient_m2_per_s, rel=0.10
    )


def test_without_base_widths_the_base_radius_comes_from_area_and_volume() -> None:
    series = drop(IMMEDIATE_RELEASE, 0.13)
    analysis = analyse(observe(series, np.random.default_rng(6)), 0.13, widths=False)
    assert fit_of(analysis, "washburn", "droplet_volume").value("C") == pytest.approx(
        series.washburn_coefficient_m2_per_s, rel=0.10
    )


def test_cap_geometry_round_trips() -> None:
    radius, angle = 1.9e-3, math.radians(40.0)
    sphere = radius / math.sin(angle)
    area = sphere**2 * (angle - math.sin(angle) * math.cos(angle))
    height = radius * math.tan(angle / 2)
    volume = math.pi * height * (3 * radius**2 + height**2) / 6
    assert cap_base_radius_m(area, volume) == pytest.approx(radius, rel=1e-9)
    assert cap_volume_for_area_m3(np.array([area]), radius)[0] == pytest.approx(volume, rel=1e-9)


def test_missing_tensile_strength_gives_nan_with_the_reason() -> None:
    analysis = analyse(observe(drop(IMMEDIATE_RELEASE, 0.13), np.random.default_rng(8)), 0.13)
    assert math.isnan(analysis.predicted_disintegration_time_s)
    assert any("tensile strength" in m for m in analysis.messages)


def test_a_record_too_short_for_a_fit_keeps_the_numbers_it_can_stand_behind() -> None:
    series = drop(IMMEDIATE_RELEASE, 0.08, duration_s=0.3)
    analysis = analyse(
        observe(series, np.random.default_rng(9), ObservationNoise(rejected_fraction=0.0)), 0.08
    )
    assert not any(f.model == "washburn" for f in analysis.fits)
    assert any("Washburn absorption fit: only" in m for m in analysis.messages)
    assert math.isnan(analysis.absorption_time_s) and math.isnan(analysis.predicted_disintegration_time_s)


def test_unusable_input_is_refused_with_a_sentence() -> None:
    t = np.linspace(0.0, 1.0, 5)
    with pytest.raises(SeriesError, match="at least 8 finite, strictly increasing samples; got 5"):
        analyse_series(t, t, t, t, porosity=0.1, tablet_thickness_m=1.5e-3)
    t = np.linspace(0.0, 1.0, 50)
    with pytest.raises(SeriesError, match="1-D arrays of one length"):
        analyse_series(t, t[:-1], t, t, porosity=0.1, tablet_thickness_m=1.5e-3)
    with pytest.raises(SeriesError, match=r"porosity 1\.5 must lie strictly between 0 and 1"):
        analyse_series(t, t, t, t, porosity=1.5, tablet_thickness_m=1.5e-3)
    nothing = np.full(t.size, np.nan)
    with pytest.raises(SeriesError, match="no frame after spreading has a measured droplet volume"):
        analyse_series(t, nothing, nothing, t, porosity=0.1, tablet_thickness_m=1.5e-3)


def test_a_swelling_record_short_against_one_over_k_s_flags_k_s_as_poorly_determined() -> None:
    series = drop({"mcc": 0.8, "dcpa": 0.2}, 0.17, duration_s=3.0)  # 1/k_s = 8 s
    analysis = analyse(observe(series, np.random.default_rng(10)), 0.17)
    assert any(m.startswith("k_s = ") and "filming longer after absorption" in m for m in analysis.messages)
