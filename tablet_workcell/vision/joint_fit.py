"""Joint fit of droplet volume and tablet height sharing the swelling-driven uptake velocity.

Why: when the capillary stage lasts a second or two (fast-swelling tablets, coarse frame
rates), the volume record alone cannot tell a larger C from a larger v_s: their errors
run to 10-30 % and are strongly correlated. The tablet height carries the missing
information. The swelling-driven uptake moves with the swelling front (Markl and
Zeitler, Pharm Res 34:890, 2017; the twin's model), so the uptake velocity is the initial
swelling velocity of the wetted tablet:

    v_s = h0 S k_s

and both series are fitted at once with parameters V0, C (volume) and h0, S, k_s
(height), each series' residuals weighted by its own noise level (estimated from the
separate fits), so neither dominates by its units or its frame count. The wetted-fraction
swelling model of :func:`~tablet_workcell.vision.fits.fit_swelling_first_order` is used,
with L(t) from the same C and v_s.

series.py uses it when the tablet swells measurably and checks it against the separate
volume fit (the two v_s must agree within their errors); it never replaces a fit that
the data contradict.
"""

from __future__ import annotations

import math

import numpy as np

from tablet_workcell.vision.fits import (
    Fit,
    FitError,
    absorption_window,
    solve_least_squares,
)
from tablet_workcell.vision.imbibition import F64, WettingGeometry, droplet_volume_m3, front_depth_m


def _residual_sigma(fit: Fit, observed: F64, model: F64) -> float:
    sigma = float(np.sqrt(np.mean((model - observed) ** 2)))
    if not sigma > 0:
        raise FitError(f"the {fit.model} fit of {fit.series} has no residual to weight the joint fit by.")
    return sigma


def fit_joint(
    time_s: F64,
    volume_m3: F64,
    height_m: F64,
    geometry: WettingGeometry,
    volume_fit: Fit,
    swelling_fit: Fit,
) -> tuple[Fit, Fit]:
    """Washburn (V0, C, v_s = h0 S k_s) and first-order swelling (h0, S, k_s) fitted together.

    ``volume_fit`` and ``swelling_fit`` are the separate fits: they give the starting point
    and the noise level of each series. Raises FitError when the joint fit fails.
    """
    keep = np.isfinite(time_s) & np.isfinite(volume_m3)
    v0_guess = volume_fit.value("V0")
    tv, vv = absorption_window(time_s[keep], volume_m3[keep], v0_guess)
    finite = np.isfinite(time_s) & np.isfinite(height_m)
    th, hh = time_s[finite], height_m[finite]
    c0, h00 = volume_fit.value("C"), swelling_fit.value("h0")
    s0, k0 = swelling_fit.value("S"), swelling_fit.value("k_s")
    v_start = volume_fit.value("v_s") if "v_s" in volume_fit.parameter_names else h00 * s0 * k0
    depth0 = front_depth_m(th, c0, v_start)
    sigma_v = _residual_sigma(volume_fit, vv, droplet_volume_m3(tv, v0_guess, c0, v_start, geometry))
    height0 = h00 * (1 + s0 * (1 - np.exp(-k0 * th)) * np.minimum(1.0, depth0 / h00))
    sigma_h = _residual_sigma(swelling_fit, hh, height0)
    scales = np.array([v0_guess, c0, h00, max(s0, 1e-3), k0])

    def unpack(x: F64) -> tuple[float, float, float, float, float, float]:
        v0, c, h0, strain, rate = (x * scales).tolist()
        return v0, c, h0, strain, rate, h0 * strain * rate

    def residuals(x: F64) -> F64:
        v0, c, h0, strain, rate, v_s = unpack(x)
        volume = droplet_volume_m3(tv, v0, c, v_s, geometry)
        wetted = np.minimum(1.0, front_depth_m(th, c, v_s) / h0)
        height = h0 * (1.0 + strain * (1.0 - np.exp(-rate * th)) * wetted)
        return np.concatenate([(volume - vv) / sigma_v, (height - hh) / sigma_h])

    starts = [(1.0, 1.0, 1.0, 1.0, 1.0), (1.0, 0.8, 1.0, 1.0, 1.1), (1.0, 1.2, 1.0, 1.0, 0.9)]
    lower = [0.5, 1e-3, 0.8, 1e-3, 1e-3]
    upper = [2.0, 1e3, 1.2, 1e3, 1e3]
    x, errors, covariance, _rss = solve_least_squares("joint volume-height", residuals, starts, lower, upper)
    v0, c, h0, strain, rate, v_s = unpack(x)
    sigmas = errors * scales
    gradient = np.array([0.0, 0.0, strain * rate, h0 * rate, h0 * strain]) * scales  # d v_s / d x
    v_s_variance = float(gradient @ covariance @ gradient)
    v_s_error = math.sqrt(v_s_variance) if v_s_variance >= 0 else math.inf
    volume_model = droplet_volume_m3(tv, v0, c, v_s, geometry)
    wetted = np.minimum(1.0, front_depth_m(th, c, v_s) / h0)
    height_model = h0 * (1.0 + strain * (1.0 - np.exp(-rate * th)) * wetted)
    return (
        Fit(
            "washburn",
            "droplet_volume",
            ("V0", "C", "v_s"),
            ("m^3", "m^2/s", "m/s"),
            (v0, c, v_s),
            (float(sigmas[0]), float(sigmas[1]), v_s_error),
            _r_squared(volume_model, vv),
            float(tv[0]),
            float(tv[-1]),
        ),
        Fit(
            "first_order",
            "tablet_height",
            ("h0", "S", "k_s"),
            ("m", "1", "1/s"),
            (h0, strain, rate),
            (float(sigmas[2]), float(sigmas[3]), float(sigmas[4])),
            _r_squared(height_model, hh),
            float(th[0]),
            float(th[-1]),
        ),
    )


def _r_squared(model: F64, observed: F64) -> float:
    tss = float(np.sum((observed - observed.mean()) ** 2))
    return 1.0 - float(np.sum((model - observed) ** 2)) / tss if tss > 0 else math.nan
