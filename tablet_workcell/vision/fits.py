"""Absorption and swelling fits of a measured sessile-drop series, with one-sigma errors.

Absorption (droplet volume V(t) in the pinned-to-receding stage, after spreading):

- ``washburn``: V = V0 - absorbed(L(t)) with dL/dt = C/(2L) + v_s and the cylindrical
  wetted-region geometry of :mod:`tablet_workcell.vision.imbibition` (porosity, measured
  base radius and tablet thickness given); parameters V0 [m^3], C [m^2/s], v_s [m/s].
- ``washburn_sqrt``: the classic rigid-tablet form (v_s = 0, L = sqrt(C t)), for reference.
- ``first_order``: V = V0 exp(-k_a t); parameters V0 [m^3], k_a [1/s].

Swelling (tablet height h(t)):

- ``first_order``: h = h0 (1 + S (1 - exp(-k_s t)) f(t)), f = min(1, L(t)/h0) when the
  front depth L(t) from the absorption fit is given (only the wetted part of the tablet
  swells), else f = 1; parameters h0 [m], S [-], k_s [1/s].
- ``power_law``: h = h0 + K t^n; parameters h0 [m], K [m/s^n], n [-].

Uncertainties: the covariance is (J^T J)^-1 s^2 at the optimum (J the Jacobian of the
residuals, s^2 the residual variance), the standard errors its diagonal's square roots;
non-identifiable parameters get an infinite error rather than a made-up one. Every fit
raises :class:`FitError` with a sentence (too few points, too little change,
non-convergence) instead of returning a number it cannot stand behind.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence

import numpy as np
from scipy.optimize import least_squares

from tablet_workcell.vision.imbibition import F64, WettingGeometry, droplet_volume_m3, front_depth_m
from tablet_workcell.vision.types import Fit, VisionError

logger = logging.getLogger(__name__)

MIN_POINTS = 8
SPREADING_END_S = 0.05  # the twin's and the literature's millisecond spreading stage
VOLUME_FLOOR_FRACTION = 0.08  # below this the cap is a few pixels tall: quantisation dominates
MIN_ABSORBED_FRACTION = 0.05
# A rise below this share of the tablet's height is not swelling: the weakest swellers of
# the twin's library rise by about 3 %, while the tablet-height measurement can step by
# 0.1 px (0.1 % of a 2 mm tablet at 20 um pixels) when the droplet leaves its top; fitting
# such a step gave a k_s of 2/s and a predicted disintegration time 35 % short.
MIN_SWELLING_STRAIN = 0.002


class FitError(VisionError):
    """A fit that cannot give a trustworthy number; the message says why and what would help."""


def _clean(time_s: Sequence[float] | F64, values: Sequence[float] | F64, what: str) -> tuple[F64, F64]:
    t = np.asarray(time_s, dtype=np.float64)
    y = np.asarray(values, dtype=np.float64)
    if t.shape != y.shape or t.ndim != 1:
        raise FitError(f"time ({t.shape}) and {what} ({y.shape}) must be 1-D arrays of one length.")
    keep = np.isfinite(t) & np.isfinite(y)
    return t[keep], y[keep]


def _solve(
    name: str,
    residuals: Callable[[F64], F64],
    starts: Sequence[Sequence[float]],
    lower: Sequence[float],
    upper: Sequence[float],
) -> tuple[F64, F64, float]:
    """Best of several starts; returns (parameters, standard errors, residual sum of squares)."""
    x, errors, _covariance, rss = solve_least_squares(name, residuals, starts, lower, upper)
    return x, errors, rss


def solve_least_squares(
    name: str,
    residuals: Callable[[F64], F64],
    starts: Sequence[Sequence[float]],
    lower: Sequence[float],
    upper: Sequence[float],
) -> tuple[F64, F64, F64, float]:
    """Best of several starts: (parameters, standard errors, covariance, residual sum of squares).

    The covariance has NaN rows/columns for parameters held by their bounds or not identifiable.
    """
    best = None
    for start in starts:
        x0 = np.clip(
            np.asarray(start, dtype=np.float64), np.asarray(lower) + 1e-12, np.asarray(upper) - 1e-12
        )
        try:
            result = least_squares(residuals, x0, bounds=(lower, upper), x_scale="jac", max_nfev=400)
        except (ValueError, FloatingPointError) as error:
            logger.debug("%s start %s failed: %s", name, start, error)
            continue
        if (
            result.status > 0
            and np.all(np.isfinite(result.fun))
            and (best is None or result.cost < best.cost)
        ):
            best = result
    if best is None:
        raise FitError(
            f"the {name} fit did not converge from any of {len(starts)} starting points; the series may not "
            "follow this model (check the fitted interval and the measurement)."
        )
    dof = max(best.fun.size - best.x.size, 1)
    rss = float(best.fun @ best.fun)
    free = (np.asarray(upper) - np.asarray(lower)) > 1e-9  # a parameter held by its bounds has no error
    jac = np.asarray(best.jac)[:, free]
    jtj = jac.T @ jac
    errors = np.where(free, math.inf, 0.0)
    covariance = np.full((free.size, free.size), np.nan)
    if np.all(np.isfinite(jtj)) and np.linalg.cond(jtj) < 1e14:
        inner = np.linalg.inv(jtj) * rss / dof
        covariance[np.ix_(free, free)] = inner
        errors[free] = np.sqrt(np.maximum(np.diag(inner), 0.0))
    return np.asarray(best.x, dtype=np.float64), errors, covariance, rss


def _r_squared(rss: float, y: F64) -> float:
    tss = float(np.sum((y - y.mean()) ** 2))
    return 1.0 - rss / tss if tss > 0 else math.nan


def absorption_window(time_s: F64, volume_m3: F64, v0_m3: float) -> tuple[F64, F64]:
    """Samples after spreading and before the volume first falls below the quantisation floor."""
    t, v = _clean(time_s, volume_m3, "droplet volume")
    after = t >= SPREADING_END_S
    t, v = t[after], v[after]
    low = np.flatnonzero(v < VOLUME_FLOOR_FRACTION * v0_m3)
    if low.size:
        t, v = t[: low[0]], v[: low[0]]
    if t.size < MIN_POINTS:
        raise FitError(
            f"only {t.size} valid droplet-volume samples between spreading ({SPREADING_END_S} s) and the "
            f"droplet's disappearance; an absorption fit needs at least {MIN_POINTS}: film faster or longer."
        )
    absorbed = (v0_m3 - float(np.median(v[-min(5, v.size) :]))) / v0_m3
    if absorbed < MIN_ABSORBED_FRACTION:
        raise FitError(
            f"only {100 * absorbed:.1f} % of the droplet was absorbed in the record (needs "
            f"{100 * MIN_ABSORBED_FRACTION:.0f} %); the rate is not measurable: record longer."
        )
    return t, v


def _initial_volume(t: F64, v: F64) -> float:
    return float(np.median(v[: min(5, v.size)]))


def fit_washburn(
    time_s: Sequence[float] | F64,
    volume_m3: Sequence[float] | F64,
    geometry: WettingGeometry,
    *,
    swelling: bool = True,
    fixed_v_s: tuple[float, float] | None = None,
) -> Fit:
    """Fit V0, C (and v_s unless ``swelling`` is False) to the measured droplet volume.

    ``fixed_v_s`` = (value, standard error) holds v_s at a value identified elsewhere (the
    swelling of the tablet height, see series.py) when the volume record alone cannot
    separate it from C; the fit then reports that value and error for v_s.
    """
    t0, v0 = _clean(time_s, volume_m3, "droplet volume")
    if t0.size < MIN_POINTS:
        raise FitError(f"{t0.size} valid droplet-volume samples; a Washburn fit needs at least {MIN_POINTS}.")
    guess_v0 = _initial_volume(t0[t0 >= SPREADING_END_S], v0[t0 >= SPREADING_END_S])
    t, v = absorption_window(t0, v0, guess_v0)
    c_guess = _washburn_guess(t, v, guess_v0, geometry)
    c_scale, v_scale = max(c_guess, 1e-12), 1e-4

    held = None if fixed_v_s is None else fixed_v_s[0]

    def residuals(x: F64) -> F64:
        v_s = held if held is not None else (x[2] * v_scale if swelling else 0.0)
        model = droplet_volume_m3(t, x[0] * guess_v0, x[1] * c_scale, v_s, geometry)
        return (model - v) / guess_v0

    if held is not None:
        starts = [(1.0, 1.0, 0.0), (1.0, 0.3, 0.0)]
        lower, upper = [0.5, 0.0, 0.0], [2.0, np.inf, 1e-12]
    elif swelling:
        starts = [(1.0, 1.0, s) for s in (0.0, 0.1, 1.0, 5.0)] + [(1.0, 0.2, 1.0)]
        lower, upper = [0.5, 0.0, 0.0], [2.0, np.inf, np.inf]
    else:
        starts = [(1.0, 1.0, 0.0), (1.0, 0.3, 0.0)]
        lower, upper = [0.5, 0.0, 0.0], [2.0, np.inf, 1e-12]
    x, errors, rss = _solve("washburn", residuals, starts, lower, upper)
    scales = np.array([guess_v0, c_scale, v_scale])
    values, sigmas = x * scales, errors * scales
    if fixed_v_s is not None:
        values[2], sigmas[2] = fixed_v_s
    if values[1] <= 0.0 and values[2] <= 0.0:
        raise FitError(
            "the Washburn fit found neither capillary nor swelling uptake; is the droplet absorbed?"
        )
    names, units = ("V0", "C", "v_s"), ("m^3", "m^2/s", "m/s")
    keep = 3 if swelling or fixed_v_s is not None else 2
    return Fit(
        model="washburn" if swelling else "washburn_sqrt",
        series="droplet_volume",
        parameter_names=names[:keep],
        parameter_units=units[:keep],
        values=tuple(float(a) for a in values[:keep]),
        standard_errors=tuple(float(a) for a in sigmas[:keep]),
        r_squared=_r_squared(rss * guess_v0**2, v),
        start_s=float(t[0]),
        end_s=float(t[-1]),
    )


def _washburn_guess(t: F64, v: F64, v0: float, geometry: WettingGeometry) -> float:
    """C from the early uptake, taking the wetted cylinder as a^2 (L << a): L = absorbed / (eps pi a^2)."""
    early = t <= t[0] + 0.3 * (t[-1] - t[0])
    depth = np.maximum(v0 - v[early], 0.0) / (geometry.porosity * math.pi * geometry.base_radius_m**2)
    slope = float(np.sum(depth**2 * t[early]) / max(float(np.sum(t[early] ** 2)), 1e-30))
    return max(slope, 1e-10)


def fit_absorption_first_order(time_s: Sequence[float] | F64, volume_m3: Sequence[float] | F64) -> Fit:
    """Fit V = V0 exp(-k_a t) over the same window as the Washburn fit."""
    t0, v0 = _clean(time_s, volume_m3, "droplet volume")
    if t0.size < MIN_POINTS:
        raise FitError(
            f"{t0.size} valid droplet-volume samples; a first-order fit needs at least {MIN_POINTS}."
        )
    guess_v0 = _initial_volume(t0[t0 >= SPREADING_END_S], v0[t0 >= SPREADING_END_S])
    t, v = absorption_window(t0, v0, guess_v0)
    k_guess = max(math.log(guess_v0 / max(float(v[-1]), 1e-3 * guess_v0)) / max(float(t[-1]), 1e-9), 1e-6)

    def residuals(x: F64) -> F64:
        return (x[0] * np.exp(-x[1] * k_guess * t) - v / guess_v0).astype(np.float64)

    x, errors, rss = _solve(
        "first-order absorption", residuals, [(1.0, 1.0), (1.0, 0.3), (1.0, 3.0)], [0.3, 0], [3, 1e4]
    )
    scales = np.array([guess_v0, k_guess])
    return Fit(
        "first_order",
        "droplet_volume",
        ("V0", "k_a"),
        ("m^3", "1/s"),
        tuple(float(a) for a in x * scales),
        tuple(float(a) for a in errors * scales),
        _r_squared(rss * guess_v0**2, v),
        float(t[0]),
        float(t[-1]),
    )


def _height_data(
    time_s: Sequence[float] | F64, height_m: Sequence[float] | F64, what: str
) -> tuple[F64, F64]:
    t, h = _clean(time_s, height_m, "tablet height")
    if t.size < MIN_POINTS:
        raise FitError(
            f"{t.size} valid tablet-height samples; a {what} swelling fit needs at least {MIN_POINTS}."
        )
    early = float(np.median(h[: max(3, t.size // 20)]))
    late = float(np.median(h[-max(3, t.size // 10) :]))
    noise = float(np.median(np.abs(np.diff(h)))) / 0.954 + 1e-12  # ~sigma*sqrt(2)*0.674 for Gaussian noise
    if late - early < 4.0 * noise / math.sqrt(max(t.size // 20, 3)) or late - early <= 0.0:
        raise FitError(
            f"the tablet height rose by {1e6 * (late - early):.1f} um, within its noise "
            f"({1e6 * noise:.1f} um per frame): no swelling to fit (absorption-only tablet or too short "
            "a record)."
        )
    if late - early < MIN_SWELLING_STRAIN * early:
        raise FitError(
            f"the tablet height rose by {1e6 * (late - early):.1f} um, {100 * (late - early) / early:.2f} % "
            f"of its height, less than the {100 * MIN_SWELLING_STRAIN:.1f} % a swelling tablet shows: no "
            "swelling to fit (a step this small is the measurement's, e.g. the droplet leaving the top)."
        )
    return t, h


def fit_swelling_first_order(
    time_s: Sequence[float] | F64,
    height_m: Sequence[float] | F64,
    *,
    c_m2_per_s: float | None = None,
    v_s_m_per_s: float | None = None,
) -> Fit:
    """Fit h0, S, k_s; with C and v_s (from the Washburn fit) only the wetted fraction swells."""
    t, h = _height_data(time_s, height_m, "first-order")
    h_start = float(np.median(h[: max(3, t.size // 20)]))
    depth = None if c_m2_per_s is None else front_depth_m(t, c_m2_per_s, v_s_m_per_s or 0.0)
    span = max(float(t[-1] - t[0]), 1e-6)

    def residuals(x: F64) -> F64:
        h0 = x[0] * h_start
        wetted = 1.0 if depth is None else np.minimum(1.0, depth / h0)
        model = h0 * (1.0 + x[1] * (1.0 - np.exp(-x[2] / span * t)) * wetted)
        return np.asarray((model - h) / h_start, dtype=np.float64)

    s_guess = max(float(h[-1] / h_start - 1.0), 1e-3)
    starts = [(1.0, s_guess, k) for k in (0.3, 3.0, 30.0, 300.0)]
    x, errors, rss = _solve("first-order swelling", residuals, starts, [0.8, 0.0, 1e-6], [1.2, 20.0, 1e5])
    scales = np.array([h_start, 1.0, 1.0 / span])
    if x[2] >= 0.99e5 or x[2] <= 1.01e-6:
        raise FitError(
            f"the first-order swelling rate ran to its bound ({x[2] / span:.3g} 1/s): the record does not "
            "resolve the swelling kinetics (too short, or swelling finished within a frame)."
        )
    return Fit(
        "first_order",
        "tablet_height",
        ("h0", "S", "k_s"),
        ("m", "1", "1/s"),
        tuple(float(a) for a in x * scales),
        tuple(float(a) for a in errors * scales),
        _r_squared(rss * h_start**2, h),
        float(t[0]),
        float(t[-1]),
    )


def fit_swelling_power_law(time_s: Sequence[float] | F64, height_m: Sequence[float] | F64) -> Fit:
    """Fit h = h0 + K t^n (an empirical form common in swelling studies)."""
    t, h = _height_data(time_s, height_m, "power-law")
    h_start = float(np.median(h[: max(3, t.size // 20)]))
    span = max(float(t[-1]), 1e-6)
    rise = max(float(h[-1] - h_start), 1e-9)

    def residuals(x: F64) -> F64:
        return np.asarray((x[0] * h_start + x[1] * rise * (np.maximum(t, 0.0) / span) ** x[2] - h) / h_start)

    starts = [(1.0, 1.0, n) for n in (0.3, 0.7, 1.5)]
    x, errors, rss = _solve("power-law swelling", residuals, starts, [0.8, 0.0, 0.01], [1.2, 100.0, 5.0])
    k = x[1] * rise / span ** x[2]
    dk_dx1 = rise / span ** x[2]
    dk_dn = -k * math.log(span)
    k_error = math.hypot(errors[1] * dk_dx1, errors[2] * dk_dn)
    return Fit(
        "power_law",
        "tablet_height",
        ("h0", "K", "n"),
        ("m", "m/s^n", "1"),
        (float(x[0] * h_start), float(k), float(x[2])),
        (float(errors[0] * h_start), float(k_error), float(errors[2])),
        _r_squared(rss * h_start**2, h),
        float(t[0]),
        float(t[-1]),
    )
