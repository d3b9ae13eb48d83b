"""Absorption and swelling fits recover the twin's own constants from noisy measured series."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tablet_workcell.twin.blend import Formulation
from tablet_workcell.twin.disintegration import DropletSeries, sessile_drop
from tablet_workcell.twin.observation import ObservationNoise, observe
from tablet_workcell.vision import fits
from tablet_workcell.vision.fits import FitError
from tablet_workcell.vision.imbibition import WettingGeometry, boundary_time_s, front_depth_m, time_at_depth
from tablet_workcell.vision.series_inputs import refine_pinned_volume_m3

THICKNESS_M = 1.5e-3
BLENDS = {
    "immediate_release": {"mcc": 0.6, "lactose": 0.35, "ccs": 0.04, "mgst": 0.01},
    "mcc": {"mcc": 1.0},
    "ssg": {"mcc": 0.5, "lactose": 0.45, "ssg": 0.05},
    "mcc_lactose": {"mcc": 0.6, "lactose": 0.4},
}


def drop(fractions: dict[str, float], porosity: float, duration_s: float = 60.0) -> DropletSeries:
    blend = Formulation.of(fractions).properties
    return sessile_drop(blend, 8e-3, THICKNESS_M, porosity, 2e6, 5e-9, duration_s, 1 / 30)


def geometry_of(
    series: DropletSeries, porosity: float, base_radius_m: float | None = None
) -> WettingGeometry:
    radius = base_radius_m if base_radius_m is not None else float(series.base_radius_m[10])
    return WettingGeometry(porosity, radius, THICKNESS_M, 4e-3)


def test_front_depth_inverts_the_closed_form_time_and_has_the_pure_limits() -> None:
    t = np.geomspace(1e-3, 100.0, 50)
    depth = front_depth_m(t, 3e-7, 1.5e-4)
    assert time_at_depth(depth, 3e-7, 1.5e-4) == pytest.approx(t, rel=1e-9)
    assert front_depth_m(t, 3e-7, 0.0) == pytest.approx(np.sqrt(3e-7 * t))
    assert front_depth_m(t, 0.0, 1e-4) == pytest.approx(1e-4 * t)
    # Capillarity equals swelling at L* = C / (2 v_s).
    c, v = 3e-7, 1.5e-4
    assert front_depth_m(np.array([boundary_time_s(c, v)]), c, v)[0] == pytest.approx(c / (2 * v), rel=1e-9)
    assert boundary_time_s(c, 0.0) == math.inf


def test_a_vanishing_swelling_velocity_is_the_rigid_limit_not_nan() -> None:
    # A fit may try v_s = 1e-170 m/s: C / (2 v_s^2) overflows, and the closed form must not
    # turn that into inf * 0 = NaN (a NaN residual ends the fit from that start).
    depth = np.geomspace(1e-7, 3e-3, 40)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        times = time_at_depth(depth, 3e-7, 1e-170)
    assert times == pytest.approx(depth**2 / 3e-7, rel=1e-12)
    assert front_depth_m(np.geomspace(1e-3, 50.0, 20), 3e-7, 1e-170) == pytest.approx(
        np.sqrt(3e-7 * np.geomspace(1e-3, 50.0, 20)), rel=1e-9
    )


def test_washburn_fit_of_exact_twin_volume_recovers_c_and_v_s() -> None:
    series = drop(BLENDS["immediate_release"], 0.08)
    fit = fits.fit_washburn(series.time_s, series.volume_m3, geometry_of(series, 0.08))
    assert fit.model == "washburn" and fit.series == "droplet_volume"
    assert fit.value("C") == pytest.approx(series.washburn_coefficient_m2_per_s, rel=0.005)
    assert fit.value("v_s") == pytest.approx(series.swelling_velocity_m_per_s, rel=0.005)
    assert fit.value("V0") == pytest.approx(5e-9, rel=1e-3)
    assert fit.r_squared > 0.9999


@pytest.mark.parametrize(
    ("name", "porosity", "seed"),
    [("immediate_release", 0.08, 0), ("mcc", 0.08, 1), ("ssg", 0.13, 2), ("mcc_lactose", 0.13, 3)],
)
def test_noisy_series_give_c_and_k_s_within_ten_percent(name: str, porosity: float, seed: int) -> None:
    series = drop(BLENDS[name], porosity)
    measured = observe(series, np.random.default_rng(seed))
    pinned = (measured.time_s > 0.05) & (measured.droplet_volume_m3 > 0.8 * 5e-9)
    radius = float(np.nanmedian(measured.base_width_m[pinned])) / 2.0
    # Pinned frames' volumes from the (less noisy) area, as analyse_series does.
    volume = refine_pinned_volume_m3(
        measured.droplet_volume_m3, measured.droplet_area_m2, measured.base_width_m, radius, 5e-9
    )
    absorption = fits.fit_washburn(measured.time_s, volume, geometry_of(series, porosity, radius))
    assert absorption.value("C") == pytest.approx(series.washburn_coefficient_m2_per_s, rel=0.10)
    c_error = absorption.standard_errors[1]
    assert 0.0 < c_error < 0.1 * absorption.value("C")
    swelling = fits.fit_swelling_first_order(
        measured.time_s,
        measured.tablet_height_m,
        c_m2_per_s=absorption.value("C"),
        v_s_m_per_s=absorption.value("v_s"),
    )
    assert swelling.value("k_s") == pytest.approx(series.swelling_rate_per_s, rel=0.10)
    assert swelling.value("S") == pytest.approx(series.swelling_strain, rel=0.10)
    assert swelling.value("h0") == pytest.approx(THICKNESS_M, rel=0.02)
    assert all(0.0 < e < math.inf for e in swelling.standard_errors)


def test_rigid_tablet_sqrt_form_and_first_order_fit_run_on_the_same_window() -> None:
    series = drop({"lactose": 1.0}, 0.13)
    measured = observe(series, np.random.default_rng(5))
    sqrt_fit = fits.fit_washburn(
        measured.time_s, measured.droplet_volume_m3, geometry_of(series, 0.13), swelling=False
    )
    assert sqrt_fit.model == "washburn_sqrt" and sqrt_fit.parameter_names == ("V0", "C")
    assert sqrt_fit.value("C") == pytest.approx(series.washburn_coefficient_m2_per_s, rel=0.10)
    first = fits.fit_absorption_first_order(measured.time_s, measured.droplet_volume_m3)
    assert first.parameter_units == ("m^3", "1/s") and first.value("k_a") > 0
    assert (first.start_s, first.end_s) == (sqrt_fit.start_s, sqrt_fit.end_s)


def test_first_order_absorption_and_power_law_swelling_recover_exact_curves() -> None:
    t = np.linspace(0.0, 30.0, 301)
    first = fits.fit_absorption_first_order(t, 5e-9 * np.exp(-0.07 * t))
    assert first.value("k_a") == pytest.approx(0.07, rel=1e-4)
    assert first.value("V0") == pytest.approx(5e-9, rel=1e-4)
    power = fits.fit_swelling_power_law(t, 1.5e-3 + 2e-5 * t**0.6)
    assert power.value("K") == pytest.approx(2e-5, rel=1e-3)
    assert power.value("n") == pytest.approx(0.6, rel=1e-3)
    assert power.r_squared > 0.99999


def test_plain_first_order_swelling_without_front_depth() -> None:
    t = np.linspace(0.0, 40.0, 401)
    height = 1.5e-3 * (1 + 0.3 * (1 - np.exp(-0.2 * t)))
    fit = fits.fit_swelling_first_order(t, height)
    assert fit.value("k_s") == pytest.approx(0.2, rel=1e-4)
    assert fit.value("S") == pytest.approx(0.3, rel=1e-4)


def test_nan_frames_are_skipped() -> None:
    series = drop(BLENDS["immediate_release"], 0.13)
    volume = series.volume_m3.copy()
    volume[5::7] = np.nan
    fit = fits.fit_washburn(series.time_s, volume, geometry_of(series, 0.13))
    assert fit.value("C") == pytest.approx(series.washburn_coefficient_m2_per_s, rel=0.01)


def test_too_few_points_fail_with_a_clear_message() -> None:
    t = np.linspace(0.1, 1.0, 5)
    with pytest.raises(FitError, match=r"5 valid droplet-volume samples.*at least 8"):
        fits.fit_washburn(t, 5e-9 * (1 - 0.1 * t), WettingGeometry(0.1, 2e-3, 1.5e-3))
    with pytest.raises(FitError, match=r"at least 8"):
        fits.fit_swelling_power_law(t, 1.5e-3 + t * 1e-5)
    with pytest.raises(FitError, match="1-D arrays of one length"):
        fits.fit_absorption_first_order(t, np.ones(6))


def test_unchanging_series_are_refused_not_fitted() -> None:
    t = np.linspace(0.0, 10.0, 300)
    rng = np.random.default_rng(0)
    with pytest.raises(FitError, match=r"absorbed in the record .* record longer"):
        fits.fit_washburn(
            t, 5e-9 * (1 + 0.01 * rng.standard_normal(t.size)), WettingGeometry(0.1, 2e-3, 1.5e-3)
        )
    flat = 1.5e-3 + 20e-6 * np.round(rng.standard_normal(t.size))
    with pytest.raises(FitError, match="no swelling to fit"):
        fits.fit_swelling_first_order(t, flat)
    # Sub-pixel lines: a rigid tablet whose measured height steps by 0.1 px (2 um, 0.13 %)
    # when the droplet leaves its top. The step is far above the 0.6 um noise, but no swelling.
    stepped = 1.5e-3 + 0.6e-6 * rng.standard_normal(t.size) + np.where(t > 4.0, 2e-6, 0.0)
    with pytest.raises(FitError, match=r"0\.13 % of its height, less than the 0\.2 %.*no swelling to fit"):
        fits.fit_swelling_first_order(t, stepped)


def test_short_record_of_a_fast_drop_still_measures_c_but_not_v_s() -> None:
    series = drop(BLENDS["mcc"], 0.2, duration_s=3.0)
    measured = observe(series, np.random.default_rng(9), ObservationNoise(rejected_fraction=0.0))
    fit = fits.fit_washburn(measured.time_s, measured.droplet_volume_m3, geometry_of(series, 0.2))
    # The drop is gone in ~1.3 s, long before swelling matters: v_s is not identifiable, and says so.
    assert fit.standard_errors[2] > 0.25 * max(fit.value("v_s"), 1e-12)
