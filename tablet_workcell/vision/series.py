"""From a measured sessile-drop series to regimes, fits and figures of merit (analyse_series).

Input contract: arrays of one length, one value per analysed frame, SI units, NaN for a
frame the pipeline rejected; a frame in which the droplet is gone carries 0 (a trailing
run of NaN after a small droplet is also read as "gone"). Time counts from the moment
the droplet touched the tablet.

Steps, each of which may fail on its own without hiding the others (a failure becomes a
message, never a made-up number):

1. Start volume V0 (median of the first frames after spreading) and pinned base radius a
   (given, else half the median base width while pinned, else from the spherical cap
   that has the measured side area and volume).
2. Washburn fit of the volume with the swelling term (C, v_s) and the classic sqrt(t)
   form for reference; first-order fit V0 exp(-k_a t).
3. Swelling fits of the tablet height: first order, with only the wetted fraction
   min(1, L/h0) swelling (L from step 2), and a power law.
4. When the volume record cannot separate v_s from C (relative error of v_s above
   V_S_MAX_RELATIVE_ERROR: the droplet is gone before swelling matters), v_s is taken from
   the tablet's initial swelling velocity h0 S k_s (the swelling-driven uptake moves with
   the swelling front) and C refitted; without detectable swelling v_s = 0 (sqrt form).
5. Absorption time: when the droplet is gone (regimes.droplet_gone_time_s).
6. Regimes: the learned model (regime_model.py) when given, else the physics baseline.
7. Predicted disintegration time = t_full + (sigma_t / 0.1 MPa) / (k_s S + 0.004 x
   soluble fraction): t_full, the time the front needs to cross the tablet thickness
   t(h0) = h0/v_s - C/(2 v_s^2) ln(1 + 2 v_s h0 / C), plus a bond-breaking time that
   scales with the tensile strength (from the press's breaking test) and falls with the
   swelling and dissolution rates (the twin's calibration, immediate-release blends at
   2.5-10 min), capped at one hour (an undisintegrating compact). NaN without a tensile
   strength or without an absorption fit.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from tablet_workcell.vision import fits, regimes
from tablet_workcell.vision.fits import FitError
from tablet_workcell.vision.imbibition import F64, WettingGeometry, time_at_depth
from tablet_workcell.vision.regime_model import load_regime_model
from tablet_workcell.vision.types import Fit, SeriesAnalysis, VisionError

logger = logging.getLogger(__name__)

V_S_MAX_RELATIVE_ERROR = 0.25
BOND_STRESS_SCALE_PA = 0.1e6
DISSOLUTION_RATE_PER_S = 0.004
MAX_DISINTEGRATION_S = 3600.0
PINNED_VOLUME_FRACTION = 0.8  # the base stays pinned until the angle halves, well below this volume
VOLUME_MISMATCH = 0.25


class SeriesError(VisionError):
    """A series that cannot be analysed at all (wrong shapes, too short, impossible parameters)."""


def analyse_series(
    time_s: Sequence[float] | F64,
    droplet_volume_m3: Sequence[float] | F64,
    droplet_area_m2: Sequence[float] | F64,
    tablet_height_m: Sequence[float] | F64,
    *,
    porosity: float,
    tablet_thickness_m: float,
    base_radius_m: float | None = None,
    droplet_volume_dispensed_m3: float | None = None,
    regime_model: object | str | Path | None = None,
    base_width_m: Sequence[float] | F64 | None = None,
    tablet_diameter_m: float | None = None,
    tensile_strength_pa: float | None = None,
    soluble_fraction: float = 0.0,
) -> SeriesAnalysis:
    """Regimes, fits, absorption time and predicted disintegration time of one test.

    ``regime_model``: a loaded :class:`~tablet_workcell.vision.regime_model.RegimeModel`
    or the path of its ONNX file; None uses the physics baseline. Raises SeriesError only
    when nothing can be analysed; partial failures become ``messages``.
    """
    t, volume, area, height = _check(time_s, droplet_volume_m3, droplet_area_m2, tablet_height_m)
    if not 0.0 < porosity < 1.0:
        raise SeriesError(f"tablet porosity {porosity!r} must lie strictly between 0 and 1 (e.g. 0.13).")
    if not tablet_thickness_m > 0:
        raise SeriesError(f"tablet thickness {tablet_thickness_m!r} m must be positive (e.g. 1.5e-3).")
    messages: list[str] = []
    volume = _gone_as_zero(t, volume, area)
    v0 = start_volume_m3(t, volume)
    radius = (
        base_radius_m
        if base_radius_m is not None
        else pinned_base_radius_m(t, volume, area, base_width_m, v0)
    )
    geometry = WettingGeometry(
        porosity,
        radius,
        tablet_thickness_m,
        math.inf if tablet_diameter_m is None else tablet_diameter_m / 2.0,
    )
    absorption, swelling, extra = _fit_all(t, volume, height, geometry, messages)
    if absorption is not None:
        v0 = absorption.value("V0")  # extrapolated to contact: a fast drop has lost volume by the first frame
    if droplet_volume_dispensed_m3 and math.isfinite(v0):
        mismatch = v0 / droplet_volume_dispensed_m3 - 1.0
        if abs(mismatch) > VOLUME_MISMATCH:
            messages.append(
                f"measured start volume {v0 * 1e9:.2f} uL differs by {100 * mismatch:+.0f} % from the "
                f"dispensed {droplet_volume_dispensed_m3 * 1e9:.2f} uL: check the pixel scale and dispense."
            )
    gone_s = regimes.droplet_gone_time_s(t, volume if np.isfinite(volume).any() else area)
    if math.isnan(gone_s):
        messages.append(f"the droplet was not fully absorbed within the {t[-1] - t[0]:.1f} s record.")
    c = absorption.value("C") if absorption else None
    v_s = (
        absorption.value("v_s")
        if absorption and "v_s" in absorption.parameter_names
        else (0.0 if c else None)
    )
    if regime_model is None:
        found = regimes.baseline_regimes(t, c, v_s, gone_s)
        messages.append("regimes from the physics baseline (fitted C/(2L) = v_s, droplet gone).")
    else:
        model = load_regime_model(regime_model)
        found = model.regimes(t, volume, area, height)
        messages.append(f"regimes from the learned model {model.name} {model.version[:12]}.")
    predicted = predicted_disintegration_time_s(
        absorption, swelling, tablet_thickness_m, tensile_strength_pa, soluble_fraction, messages
    )
    all_fits = tuple(f for f in (absorption, *extra, swelling) if f is not None)
    return SeriesAnalysis(found, all_fits, gone_s, predicted, tuple(messages))


def _check(*arrays: Sequence[float] | F64) -> tuple[F64, F64, F64, F64]:
    values = [np.asarray(a, dtype=np.float64) for a in arrays]
    shapes = {v.shape for v in values}
    if len(shapes) != 1 or values[0].ndim != 1:
        raise SeriesError(
            f"time, volume, area and height must be 1-D arrays of one length; got shapes {sorted(shapes)}."
        )
    t = values[0]
    if t.size < fits.MIN_POINTS or not np.all(np.isfinite(t)) or np.any(np.diff(t) <= 0):
        raise SeriesError(
            f"time must hold at least {fits.MIN_POINTS} finite, strictly increasing samples; got {t.size}."
        )
    return values[0], values[1], values[2], values[3]


def _gone_as_zero(t: F64, volume: F64, area: F64) -> F64:
    """Volume 0 where no volume was measured but the area says the droplet is (nearly) gone.

    The pipeline reports a frame without a droplet as NO_DROPLET: volume NaN, area the few
    droplet pixels left (or 0); that is a measurement of "gone", not a rejected frame.
    """
    start_area = start_volume_m3(t, area)
    if not math.isfinite(start_area):
        return volume
    gone = ~np.isfinite(volume) & np.isfinite(area) & (area <= regimes.GONE_FRACTION * start_area)
    return np.where(gone, 0.0, volume)


def start_volume_m3(time_s: F64, volume_m3: F64) -> float:
    """Median of the first ten valid volumes after spreading (NaN when there are none)."""
    keep = (time_s >= fits.SPREADING_END_S) & np.isfinite(volume_m3) & (volume_m3 > 0)
    return float(np.median(volume_m3[keep][:10])) if keep.any() else math.nan


def pinned_base_radius_m(
    time_s: F64, volume_m3: F64, area_m2: F64, base_width_m: Sequence[float] | F64 | None, v0_m3: float
) -> float:
    """Base radius while pinned: from base widths when given, else from the cap of area and volume."""
    pinned = (time_s >= fits.SPREADING_END_S) & (volume_m3 >= PINNED_VOLUME_FRACTION * v0_m3)
    if base_width_m is not None:
        width = np.asarray(base_width_m, dtype=np.float64)[pinned]
        if np.isfinite(width).sum() >= 3:
            return float(np.nanmedian(width)) / 2.0
    both = pinned & np.isfinite(area_m2) & (area_m2 > 0) & np.isfinite(volume_m3)
    if both.sum() < 3:
        raise SeriesError(
            "the base radius cannot be measured: fewer than 3 frames with both area and volume while the "
            "drop is pinned; pass base_radius_m or base widths."
        )
    return cap_base_radius_m(float(np.median(area_m2[both])), float(np.median(volume_m3[both])))


def cap_base_radius_m(side_area_m2: float, volume_m3: float) -> float:
    """Base radius of the spherical cap with this side-view area and volume (V^2/A^3 fixes the angle)."""
    target = volume_m3**2 / side_area_m2**3
    low, high = 1e-4, math.pi - 1e-4
    for _ in range(80):  # V^2/A^3 falls monotonically with the contact angle
        mid = 0.5 * (low + high)
        if _ratio(mid) > target:
            low = mid
        else:
            high = mid
    theta = 0.5 * (low + high)
    sphere = math.sqrt(side_area_m2 / (theta - math.sin(theta) * math.cos(theta)))
    return sphere * math.sin(theta)


def _ratio(theta: float) -> float:
    c = math.cos(theta)
    volume = math.pi * (2.0 - 3.0 * c + c**3) / 3.0
    area = theta - math.sin(theta) * c
    return volume**2 / area**3


def _fit_all(
    t: F64, volume: F64, height: F64, geometry: WettingGeometry, messages: list[str]
) -> tuple[Fit | None, Fit | None, list[Fit]]:
    """Absorption (primary), swelling and the reference fits; failures become messages."""
    extra: list[Fit] = []
    absorption = _attempt(lambda: fits.fit_washburn(t, volume, geometry), "Washburn absorption", messages)
    c = absorption.value("C") if absorption else None
    v_s = absorption.value("v_s") if absorption else None
    swelling = _attempt(
        lambda: fits.fit_swelling_first_order(t, height, c_m2_per_s=c, v_s_m_per_s=v_s), "swelling", messages
    )
    if absorption is not None and v_s is not None:
        error = absorption.standard_errors[2]
        if not error <= V_S_MAX_RELATIVE_ERROR * max(v_s, 1e-30):
            held = _held_swelling_velocity(swelling, geometry.tablet_thickness_m)
            refit = _attempt(
                lambda: fits.fit_washburn(t, volume, geometry, fixed_v_s=held),
                "constrained Washburn",
                messages,
            )
            if refit is not None:
                messages.append(
                    f"v_s is not resolved by the volume record ({v_s:.3g} +- {error:.3g} m/s); "
                    + (
                        f"held at the tablet's swelling velocity h0 S k_s = {held[0]:.3g} m/s."
                        if held[0] > 0
                        else "no swelling seen, so v_s = 0 (rigid-tablet Washburn)."
                    )
                )
                absorption = refit
                if swelling is not None:
                    swelling = _attempt(
                        lambda: fits.fit_swelling_first_order(
                            t, height, c_m2_per_s=refit.value("C"), v_s_m_per_s=held[0]
                        ),
                        "swelling",
                        messages,
                    )
    for name, attempt in (
        ("rigid-tablet Washburn", lambda: fits.fit_washburn(t, volume, geometry, swelling=False)),
        ("first-order absorption", lambda: fits.fit_absorption_first_order(t, volume)),
        ("power-law swelling", lambda: fits.fit_swelling_power_law(t, height)),
    ):
        fitted = _attempt(attempt, name, messages, quiet=True)
        if fitted is not None:
            extra.append(fitted)
    return absorption, swelling, extra


def _held_swelling_velocity(swelling: Fit | None, thickness_m: float) -> tuple[float, float]:
    if swelling is None:
        return 0.0, 0.0
    s, k = swelling.value("S"), swelling.value("k_s")
    value = thickness_m * s * k
    rel = math.hypot(swelling.standard_errors[1] / max(s, 1e-30), swelling.standard_errors[2] / max(k, 1e-30))
    return value, value * rel


def _attempt(make: Callable[[], Fit], name: str, messages: list[str], quiet: bool = False) -> Fit | None:
    try:
        return make()
    except FitError as error:
        if not quiet:
            messages.append(f"{name} fit: {error}")
        logger.info("%s fit failed: %s", name, error)
        return None


def predicted_disintegration_time_s(
    absorption: Fit | None,
    swelling: Fit | None,
    thickness_m: float,
    tensile_strength_pa: float | None,
    soluble_fraction: float,
    messages: list[str],
) -> float:
    """t_full + (sigma_t / 0.1 MPa) / (k_s S + 0.004 soluble), capped at one hour; see the module doc."""
    if absorption is None:
        messages.append("no predicted disintegration time: the absorption fit failed.")
        return math.nan
    if tensile_strength_pa is None:
        messages.append(
            "no predicted disintegration time: give the tablet's tensile strength (breaking test)."
        )
        return math.nan
    c = absorption.value("C")
    v_s = absorption.value("v_s") if "v_s" in absorption.parameter_names else 0.0
    full = float(time_at_depth(np.array([thickness_m]), c, v_s)[0])
    rate = DISSOLUTION_RATE_PER_S * soluble_fraction + 1e-6
    if swelling is not None:
        rate += swelling.value("k_s") * swelling.value("S")
    predicted = full + (tensile_strength_pa / BOND_STRESS_SCALE_PA) / rate
    if predicted >= MAX_DISINTEGRATION_S:
        messages.append(
            f"predicted disintegration beyond {MAX_DISINTEGRATION_S:.0f} s: the tablet does not disintegrate."
        )
        return MAX_DISINTEGRATION_S
    return predicted
