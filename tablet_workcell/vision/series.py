"""From a measured sessile-drop series to regimes, fits and figures of merit (analyse_series).

Input contract: arrays of one length, one value per analysed frame, SI units, NaN for a
frame the pipeline rejected; a frame in which the droplet is gone carries 0 (or NaN
volume with a near-zero area, or a trailing run of NaN after a small droplet). Time
counts from the moment the droplet touched the tablet.

Steps, each of which may fail on its own without hiding the others (a failure becomes a
message, never a made-up number):

1. Preparation (series_inputs.prepare_series): gone frames, start volume V0, pinned base
   radius a, pinned frames' volumes from the less noisy side area.
2. Washburn fit of the volume with the swelling term (C, v_s) and the classic sqrt(t)
   form for reference; first-order fit V0 exp(-k_a t).
3. Swelling fits of the tablet height: first order, with only the wetted fraction
   min(1, L/h0) swelling (L from step 2), and a power law.
4. When the tablet swells measurably, volume and height are fitted jointly with
   v_s = h0 S k_s (joint_fit.py) and the joint fit replaces the separate ones if its v_s
   agrees with the volume's own within JOINT_AGREEMENT_SIGMAS; without measurable
   swelling and with v_s unresolved by the volume (relative error above
   V_S_MAX_RELATIVE_ERROR), v_s = 0 (rigid-tablet Washburn). A C or k_s whose relative
   error exceeds UNCERTAIN_RELATIVE_ERROR is flagged in the messages with the remedy.
5. Absorption time: when the droplet is gone (regimes.droplet_gone_time_s).
6. Regimes: the learned model (regime_model.py, which also reads the fits of step 2-4
   and the absorption time) when given, else the physics baseline.
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
from tablet_workcell.vision.joint_fit import fit_joint
from tablet_workcell.vision.regime_model import PhysicsEstimate, RegimeModel, load_regime_model
from tablet_workcell.vision.series_inputs import SeriesError, prepare_series
from tablet_workcell.vision.types import Fit, RegimeInterval, SeriesAnalysis

logger = logging.getLogger(__name__)

V_S_MAX_RELATIVE_ERROR = 0.25
JOINT_AGREEMENT_SIGMAS = 3.0
UNCERTAIN_RELATIVE_ERROR = 0.05  # one sigma: beyond it a 10 % accuracy is not assured
BOND_STRESS_SCALE_PA = 0.1e6
DISSOLUTION_RATE_PER_S = 0.004
MAX_DISINTEGRATION_S = 3600.0
VOLUME_MISMATCH = 0.25

__all__ = ["SeriesError", "analyse_series", "predicted_disintegration_time_s", "prepare_series"]


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
    regime_model: RegimeModel | str | Path | None = None,
    base_width_m: Sequence[float] | F64 | None = None,
    tablet_diameter_m: float | None = None,
    tensile_strength_pa: float | None = None,
    soluble_fraction: float = 0.0,
) -> SeriesAnalysis:
    """Regimes, fits, absorption time and predicted disintegration time of one test.

    ``regime_model``: a loaded :class:`~tablet_workcell.vision.regime_model.RegimeModel`
    or the path of its ONNX file; None uses the physics baseline (:func:`baseline_regimes`
    of the same fits gives the baseline next to a model's answer). ``base_width_m`` (the
    pipeline's per-frame base widths) sharpens the base radius and the pinned volumes.
    Raises SeriesError only when nothing can be analysed; partial failures become
    ``messages``.
    """
    prepared = prepare_series(
        time_s,
        droplet_volume_m3,
        droplet_area_m2,
        tablet_height_m,
        porosity=porosity,
        tablet_thickness_m=tablet_thickness_m,
        base_radius_m=base_radius_m,
        base_width_m=base_width_m,
        tablet_diameter_m=tablet_diameter_m,
    )
    messages: list[str] = []
    t = prepared.time_s
    absorption, swelling, extra = _fit_all(
        t, prepared.volume_m3, prepared.tablet_height_m, prepared.geometry, messages
    )
    v0 = absorption.value("V0") if absorption is not None else prepared.start_volume_m3
    if droplet_volume_dispensed_m3 and math.isfinite(v0):
        mismatch = v0 / droplet_volume_dispensed_m3 - 1.0
        if abs(mismatch) > VOLUME_MISMATCH:
            messages.append(
                f"measured start volume {v0 * 1e9:.2f} uL differs by {100 * mismatch:+.0f} % from the "
                f"dispensed {droplet_volume_dispensed_m3 * 1e9:.2f} uL: check the pixel scale and dispense."
            )
    gone_s = regimes.droplet_gone_time_s(t, prepared.raw_volume_m3)
    if math.isnan(gone_s):
        messages.append(f"the droplet was not fully absorbed within the {t[-1] - t[0]:.1f} s record.")
    if regime_model is None:
        found = baseline_regimes(t, absorption, gone_s)
        messages.append("regimes from the physics baseline (fitted C/(2L) = v_s, droplet gone).")
    else:
        model = load_regime_model(regime_model)
        found = model.regimes(prepared, PhysicsEstimate.from_fit(absorption, gone_s))
        messages.append(f"regimes from the learned model {model.name} {model.version[:12]}.")
    predicted = predicted_disintegration_time_s(
        absorption, swelling, tablet_thickness_m, tensile_strength_pa, soluble_fraction, messages
    )
    _flag_uncertain(absorption, "C", "a longer capillary stage (higher frame rate, larger droplet)", messages)
    _flag_uncertain(
        swelling, "k_s", f"filming longer after absorption (this record: {t[-1] - t[0]:.1f} s)", messages
    )
    all_fits = tuple(f for f in (absorption, *extra, swelling) if f is not None)
    return SeriesAnalysis(found, all_fits, gone_s, predicted, tuple(messages))


def _flag_uncertain(fit: Fit | None, name: str, remedy: str, messages: list[str]) -> None:
    """A message when a rate constant's relative standard error exceeds UNCERTAIN_RELATIVE_ERROR."""
    if fit is None:
        return
    value, error = fit.value(name), fit.standard_errors[fit.parameter_names.index(name)]
    if not error <= UNCERTAIN_RELATIVE_ERROR * abs(value):
        messages.append(
            f"{name} = {value:.3g} is poorly determined (+- {100 * error / abs(value):.0f} %); "
            f"it would need {remedy}."
        )


def baseline_regimes(time_s: F64, absorption: Fit | None, gone_s: float) -> tuple[RegimeInterval, ...]:
    """The physics baseline from the primary absorption fit (no swelling regime without v_s)."""
    c = absorption.value("C") if absorption is not None else None
    v_s = absorption.value("v_s") if absorption is not None and "v_s" in absorption.parameter_names else 0.0
    return regimes.baseline_regimes(time_s, c, v_s if c is not None else None, gone_s)


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
    if absorption is not None and swelling is not None:
        absorption, swelling = _joint(t, volume, height, geometry, absorption, swelling, messages)
    elif absorption is not None and v_s is not None:
        error = absorption.standard_errors[2]
        if not error <= V_S_MAX_RELATIVE_ERROR * max(v_s, 1e-30):
            rigid = _attempt(
                lambda: fits.fit_washburn(t, volume, geometry, fixed_v_s=(0.0, 0.0)),
                "rigid Washburn",
                messages,
            )
            if rigid is not None:
                messages.append(
                    f"v_s is not resolved by the volume record ({v_s:.3g} +- {error:.3g} m/s) and the tablet "
                    "does not swell measurably: v_s = 0 (rigid-tablet Washburn)."
                )
                absorption = rigid
    for name, attempt in (
        ("rigid-tablet Washburn", lambda: fits.fit_washburn(t, volume, geometry, swelling=False)),
        ("first-order absorption", lambda: fits.fit_absorption_first_order(t, volume)),
        ("power-law swelling", lambda: fits.fit_swelling_power_law(t, height)),
    ):
        fitted = _attempt(attempt, name, messages, quiet=True)
        if fitted is not None:
            extra.append(fitted)
    return absorption, swelling, extra


def _joint(
    t: F64,
    volume: F64,
    height: F64,
    geometry: WettingGeometry,
    absorption: Fit,
    swelling: Fit,
    messages: list[str],
) -> tuple[Fit, Fit]:
    """The joint volume-height fit (joint_fit.py) when its v_s agrees with the volume's own."""
    try:
        joint_absorption, joint_swelling = fit_joint(t, volume, height, geometry, absorption, swelling)
    except FitError as error:
        messages.append(f"joint volume-height fit: {error}; the separate fits stand.")
        return absorption, swelling
    v_free, e_free = absorption.value("v_s"), absorption.standard_errors[2]
    v_joint, e_joint = joint_absorption.value("v_s"), joint_absorption.standard_errors[2]
    allowed = JOINT_AGREEMENT_SIGMAS * math.hypot(e_free, e_joint)
    if not abs(v_free - v_joint) <= allowed:
        messages.append(
            f"the volume's v_s ({v_free:.3g} +- {e_free:.3g} m/s) and the height's h0 S k_s "
            f"({v_joint:.3g} m/s) disagree; the separate fits stand (is the swelling-driven uptake tied "
            "to the swelling here?)."
        )
        return absorption, swelling
    messages.append("volume and tablet height fitted jointly (v_s = h0 S k_s).")
    return joint_absorption, joint_swelling


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
