"""In-die Heckel analysis of a compaction record, with automatic choice of the linear region.

Heckel (1961, Trans. Metall. Soc. AIME 221:671): ln(1/(1-D)) = K*P + A, with D the relative
density (solid fraction) of the powder in the die under the punch pressure P; the yield
pressure is Py = 1/K (physics.md, "Powder compaction"). Here D is computed *in die*, from
the powder height under load, so the result is an in-die yield pressure (``method="in-die"``);
out-of-die values (from ejected tablets) are systematically higher, and reported Py depends
strongly on method, so compare values of one method only.

Choosing the linear region
--------------------------
Real Heckel plots bend at low pressure (particle rearrangement, strongest for microcrystalline
cellulose) and may bend at the highest pressures (D near 1, elastic deformation of the
compact). The region is chosen automatically:

1. Noise model. The white noise of displacement (sigma_h) and of pressure (sigma_P) is estimated
   from third differences of the loading samples in time order (a kHz-sampled punch profile is
   smooth; its third differences are noise). Propagated to the Heckel residual
   e = y - K*P, each sample gets sigma_i^2 = (dy/dh)^2 sigma_h^2 + K^2 sigma_P^2 with
   dy/dh = -D / (h (1 - D)); the displacement term grows as D approaches 1, so samples are
   weighted by 1/sigma_i^2 (weighted least squares).
2. Candidate windows. Start and end pressures are taken from a uniform grid over the loading
   range (``grid_points`` nodes); every window at least ``min_span_pa`` wide and holding at least
   ``min_points`` samples is a candidate.
3. Linearity test. A window is linear enough when (a) its weighted R^2 >= ``min_r_squared``
   (0.995), (b) its slope is positive, and (c) a quadratic term does not improve the fit
   significantly: the lack-of-fit F-statistic of the quadratic against the straight line is
   below its 95 % quantile F(1, n-3), or the quadratic departs from the line by less than
   ``curvature_tolerance`` in ln(1/(1-D)) anywhere in the window (a bend too small to matter,
   e.g. noise-free data). The F-test compares the line with the data's own scatter, so it
   adapts to the noise level and does not depend on the absolute scale of the noise estimate.
4. Choice. The widest window (in pressure) that passes is taken; among equally wide windows the
   one at the highest pressures, where rearrangement is over. Wide windows are tested first.

Rationale: a fixed R^2 threshold alone accepts a window that still contains the curved
rearrangement part whenever the window is wide (R^2 grows with the span), which biases Py low
for MCC; testing the window's own curvature against its noise does not. The widest accepted
window uses the most samples (smallest error on Py); the region therefore starts where the
rearrangement bend is no longer detectable at the record's noise level and ends before a
detectable high-pressure bend. The reported standard error is the statistical error of the fit
only; curvature too small to detect can still bias Py by a fraction of a percent.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from scipy.special import fdtri

from tablet_workcell.analysis.errors import AnalysisError
from tablet_workcell.analysis.records import CompactionPhase, CompactionRecord, FloatArray
from tablet_workcell.analysis.validation import (
    compaction_arrays,
    largest_backslide,
    noise_std,
    numerically_guarded,
    phase_indices,
)

MIN_R_SQUARED = 0.995
LINEARITY_CONFIDENCE = 0.95
_SIGMA_FLOOR = 1e-9  # in ln(1/(1-D)) units: keeps weights finite for noise-free records


@dataclass(frozen=True)
class HeckelResult:
    """In-die Heckel fit ln(1/(1-D)) = K*P + A over the chosen linear region (SI units)."""

    yield_pressure_pa: float  # Py = 1/K
    yield_pressure_stderr_pa: float  # standard error of Py from the fit (white-noise assumption)
    slope_per_pa: float  # K
    intercept: float  # A, dimensionless
    r_squared: float  # weighted R^2 of the fit in the region
    region_start_pa: float  # grid pressures bounding the chosen linear region
    region_end_pa: float
    n_points: int  # loading samples in the region
    fill_relative_density: float  # D at first contact: m / (rho_true * area * fill height)
    max_relative_density: float  # highest in-die D during loading
    method: str = "in-die"


@dataclass(frozen=True)
class HeckelCurve:
    """The loading samples of a record in Heckel coordinates, with per-sample noise."""

    pressure_pa: FloatArray
    heckel_y: FloatArray  # ln(1/(1-D))
    relative_density: FloatArray
    sigma_y: FloatArray  # standard deviation of the Heckel residual of each sample
    fill_relative_density: float


@dataclass(frozen=True)
class _WindowFit:
    slope: float
    intercept: float
    slope_stderr: float
    r_squared: float
    straight: bool  # no significant (or only a negligible) curvature


def heckel_curve(record: CompactionRecord, *, min_points: int = 10) -> HeckelCurve:
    """Loading samples of ``record`` as in-die relative density and Heckel ordinate, checked.

    D = m / (rho_true * A * h) with h = fill_height - displacement (LOADING samples only).
    Raises AnalysisError for too few loading samples, a non-monotonic loading ramp, or a
    relative density outside (0, 1) at any loading sample.
    """
    arrays = compaction_arrays(record)
    loading = phase_indices(arrays, CompactionPhase.LOADING)
    needed = max(min_points, 5)
    if loading.size < needed:
        raise AnalysisError(
            f"the record has only {loading.size} LOADING samples, at least {needed} are needed for a Heckel "
            "analysis; sample faster or load more slowly."
        )
    area = record.punch_area_m2
    pressure = arrays.force_n[loading] / area
    displacement = arrays.displacement_m[loading]
    height = record.fill_height_m - displacement
    if np.any(height <= 0.0):
        i = int(np.argmin(height))
        raise AnalysisError(
            f"the punch displacement ({displacement[i] * 1e3:.3f} mm at loading sample {i}) reaches the "
            f"fill height ({record.fill_height_m * 1e3:.3f} mm), so the in-die height and relative density "
            "would be <= 0: the fill height is wrong or the displacement is not zeroed at first contact."
        )
    density = record.powder_mass_kg / (record.true_density_kg_per_m3 * area * height)
    if np.any(density >= 1.0):
        i = int(np.argmax(density))
        raise AnalysisError(
            f"the in-die relative density reaches {density[i]:.4f} at {pressure[i] / 1e6:.1f} MPa (loading "
            f"sample {i}); a solid fraction >= 1 is impossible, so the true density "
            f"({record.true_density_kg_per_m3:.0f} kg/m3) is too low or the fill height "
            f"({record.fill_height_m * 1e3:.3f} mm) too small for this powder mass."
        )
    sigma_p = noise_std(pressure)
    sigma_h = noise_std(displacement)
    _check_ramp("loading pressure", pressure, sigma_p, 1e-6, "MPa")
    _check_ramp("punch displacement", displacement, sigma_h, 1e3, "mm")
    heckel_y = -np.log1p(-density)
    slope0 = abs(_preliminary_slope(pressure, heckel_y))
    dy_dh = density / (height * (1.0 - density))
    sigma_y = np.sqrt((dy_dh * sigma_h) ** 2 + (slope0 * sigma_p) ** 2) + _SIGMA_FLOOR
    fill_density = record.powder_mass_kg / (record.true_density_kg_per_m3 * area * record.fill_height_m)
    return HeckelCurve(pressure, heckel_y, density, sigma_y, float(fill_density))


@numerically_guarded
def heckel_analysis(
    record: CompactionRecord,
    *,
    min_points: int = 10,
    min_span_pa: float = 15e6,
    curvature_tolerance: float = 1e-3,
    min_r_squared: float = MIN_R_SQUARED,
    grid_points: int = 41,
) -> HeckelResult:
    """In-die Heckel yield pressure of a compaction record over an automatically chosen region.

    See the module docstring for the region choice. ``min_points``: fewest loading samples in
    the region; ``min_span_pa``: narrowest region; ``curvature_tolerance``: a bend smaller than
    this (in ln(1/(1-D))) counts as linear whatever the noise; ``min_r_squared``: R^2 floor of the
    region (lower it for a noisy press: ``yield_pressure_stderr_pa`` still states the precision);
    ``grid_points``: nodes of the grid of candidate start/end pressures. Raises AnalysisError when
    the record is unusable or no region is linear.
    """
    if min_points < 5 or grid_points < 2 or not min_span_pa > 0.0 or not 0.0 <= min_r_squared < 1.0:
        raise AnalysisError(
            f"invalid Heckel settings: min_points {min_points} (>= 5), grid_points {grid_points} (>= 2), "
            f"min_span_pa {min_span_pa} (> 0), min_r_squared {min_r_squared} (in [0, 1))."
        )
    curve = heckel_curve(record, min_points=min_points)
    order = np.argsort(curve.pressure_pa, kind="stable")
    pressure, heckel_y = curve.pressure_pa[order], curve.heckel_y[order]
    weight = 1.0 / curve.sigma_y[order] ** 2
    low, high = float(pressure[0]), float(pressure[-1])
    if high - low < min_span_pa:
        raise AnalysisError(
            f"the loading pressure spans only {(high - low) / 1e6:.1f} MPa ({low / 1e6:.1f} to "
            f"{high / 1e6:.1f} MPa), less than the narrowest Heckel region of {min_span_pa / 1e6:.1f} MPa; "
            "compact to a higher pressure."
        )
    grid = np.linspace(low, high, grid_points)
    first = np.searchsorted(pressure, grid, side="left")
    last = np.searchsorted(pressure, grid, side="right")
    last[-1] = pressure.size
    step = (high - low) / (grid_points - 1)
    min_steps = max(1, math.ceil(min_span_pa / step - 1e-9))
    best_r2 = -math.inf
    for steps in range(grid_points - 1, min_steps - 1, -1):
        for start in range(grid_points - 1 - steps, -1, -1):
            window = slice(int(first[start]), int(last[start + steps]))
            if window.stop - window.start < min_points:
                continue
            fit = _fit_window(pressure[window], heckel_y[window], weight[window], curvature_tolerance)
            linear = fit.straight and fit.slope > 0.0 and fit.r_squared >= min_r_squared
            best_r2 = max(best_r2, fit.r_squared)
            if linear:
                slope = fit.slope
                return HeckelResult(
                    yield_pressure_pa=1.0 / slope,
                    yield_pressure_stderr_pa=float(fit.slope_stderr / slope**2),
                    slope_per_pa=slope,
                    intercept=fit.intercept,
                    r_squared=fit.r_squared,
                    region_start_pa=float(grid[start]),
                    region_end_pa=float(grid[start + steps]),
                    n_points=window.stop - window.start,
                    fill_relative_density=curve.fill_relative_density,
                    max_relative_density=float(np.max(curve.relative_density)),
                )
    raise AnalysisError(
        f"no pressure region of at least {min_span_pa / 1e6:.1f} MPa with {min_points} samples is linear "
        f"in the Heckel plot (best R^2 {best_r2:.4f}; a positive slope and no significant curvature are "
        "required): the record is too noisy or too short, or the powder does not follow Heckel "
        "behaviour in this pressure range."
    )


def _check_ramp(name: str, values: FloatArray, sigma: float, scale: float, unit: str) -> None:
    """AnalysisError unless ``values`` rise over the loading phase without falling back."""
    span = float(np.max(values) - np.min(values))
    if span <= 6.0 * sigma or values[-1] <= values[0]:
        raise AnalysisError(
            f"the {name} does not rise during the LOADING phase ({values[0] * scale:.4g} to "
            f"{values[-1] * scale:.4g} {unit}, noise {sigma * scale:.2g} {unit}); the phases are mislabelled "
            "or the press did not load the powder."
        )
    fall, index = largest_backslide(values)
    if fall > 0.05 * span + 6.0 * sigma:
        raise AnalysisError(
            f"the {name} falls back by {fall * scale:.4g} {unit} at loading sample {index} "
            f"({100.0 * fall / span:.0f} % of its range): the LOADING samples are not one monotonic ramp "
            "(mislabelled phases, a punch that reversed, or corrupted data)."
        )


def _preliminary_slope(pressure: FloatArray, heckel_y: FloatArray) -> float:
    """Least-squares slope over the upper half of the pressure range (only to scale the noise model)."""
    upper = pressure >= 0.5 * (pressure.min() + pressure.max())
    if np.count_nonzero(upper) < 3:
        upper = np.ones_like(pressure, dtype=bool)
    x, y = pressure[upper], heckel_y[upper]
    dx = x - x.mean()
    denominator = float(np.dot(dx, dx))
    return float(np.dot(dx, y - y.mean()) / denominator) if denominator > 0.0 else 0.0


@functools.lru_cache(maxsize=4096)
def _f_critical(dof: int) -> float:
    """95 % quantile of F(1, dof): the lack-of-fit threshold of one extra (quadratic) term."""
    return float(fdtri(1, dof, LINEARITY_CONFIDENCE))


def _fit_window(
    pressure: FloatArray, heckel_y: FloatArray, weight: FloatArray, curvature_tolerance: float
) -> _WindowFit:
    """Weighted straight-line fit of one window and its linearity test (module docstring, step 3)."""
    n = pressure.size
    centre = float(0.5 * (pressure[0] + pressure[-1]))
    half = float(0.5 * (pressure[-1] - pressure[0]))
    if half <= 0.0:
        return _WindowFit(0.0, 0.0, math.inf, -math.inf, straight=False)
    x = (pressure - centre) / half
    root_w = np.sqrt(weight)
    design = np.column_stack([np.ones(n), x, x * x])
    rhs = root_w * heckel_y
    lin, _, rank_lin, _ = np.linalg.lstsq(design[:, :2] * root_w[:, None], rhs, rcond=None)
    quad, _, rank_quad, _ = np.linalg.lstsq(design * root_w[:, None], rhs, rcond=None)
    if rank_lin < 2:
        return _WindowFit(0.0, 0.0, math.inf, -math.inf, straight=False)
    fitted_lin = design[:, :2] @ lin
    chi2_lin = float(np.sum(weight * (heckel_y - fitted_lin) ** 2))
    mean_y = float(np.sum(weight * heckel_y) / np.sum(weight))
    total = float(np.sum(weight * (heckel_y - mean_y) ** 2))
    r_squared = 1.0 - chi2_lin / total if total > 0.0 else -math.inf
    slope = float(lin[1] / half)
    intercept = float(lin[0] - lin[1] * centre / half)
    normal = (design[:, :2] * weight[:, None]).T @ design[:, :2]
    covariance_scale = chi2_lin / (n - 2)
    slope_var = covariance_scale * float(np.linalg.pinv(normal)[1, 1])
    slope_stderr = math.sqrt(max(slope_var, 0.0)) / half
    if rank_quad < 3:
        straight = True
    else:
        fitted_quad = design @ quad
        chi2_quad = float(np.sum(weight * (fitted_quad - heckel_y) ** 2))
        bend = float(np.max(np.abs(fitted_quad - fitted_lin)))
        gain = max(chi2_lin - chi2_quad, 0.0)
        curved = gain > _f_critical(n - 3) * chi2_quad / (n - 3)
        straight = bend <= curvature_tolerance or not curved
    return _WindowFit(slope, intercept, slope_stderr, r_squared, straight)
