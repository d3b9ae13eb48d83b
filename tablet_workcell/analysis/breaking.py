"""Diametral compression (breaking) test: breaking force, tensile strength, diametral stiffness.

Fell and Newton (1970, J. Pharm. Sci. 59:688): a flat round tablet loaded across its
diameter fails in tension along the loaded diameter at sigma = 2F / (pi * D * t), with F
the breaking force, D the diameter and t the thickness (physics.md, "Powder compaction").
The formula holds for brittle failure along the diameter; a tablet that yields plastically,
caps or crushes at the platens gives no valid tensile strength.

Fracture detection: the breaking force is the peak of the force before its first sudden
drop. A drop counts as fracture when the force falls at least ``min_drop_fraction`` (20 %)
below its running maximum, after the maximum had reached 10 % of the record's peak, by more
than 8 noise standard deviations, and faster than a tenth of the time the force took to rise
(at least 3 sample intervals): a slow fall is unloading or plastic yielding, not fracture.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tablet_workcell.analysis.errors import AnalysisError
from tablet_workcell.analysis.records import BreakingRecord
from tablet_workcell.analysis.validation import (
    as_1d_float,
    check_equal_lengths,
    check_positive,
    check_time_increasing,
    noise_std,
    numerically_guarded,
)

_STIFFNESS_BAND = (0.2, 0.8)  # fraction of the breaking force: above the toe, below pre-fracture damage


@dataclass(frozen=True)
class BreakingResult:
    """Outcome of one diametral compression test (SI units)."""

    breaking_force_n: float
    tensile_strength_pa: float  # 2F / (pi D t), Fell & Newton 1970
    diametral_stiffness_n_per_m: float  # slope of force against platen travel, 20-80 % of breaking force
    fracture_time_s: float  # time of the force peak
    fracture_displacement_m: float  # platen travel at the force peak
    tablet_diameter_m: float
    tablet_thickness_m: float


@numerically_guarded
def tensile_strength(breaking: BreakingRecord, *, min_drop_fraction: float = 0.2) -> BreakingResult:
    """Breaking force and diametral tensile strength of a breaking record (see module docstring).

    Raises AnalysisError for malformed records, non-positive dimensions, a force that never
    drops (no fracture), or a loading ramp too coarsely sampled for the stiffness fit.
    """
    if not 0.0 < min_drop_fraction < 1.0:
        raise AnalysisError(f"min_drop_fraction must lie in (0, 1), got {min_drop_fraction}.")
    time_s = as_1d_float("time_s", breaking.time_s)
    force = as_1d_float("force_n", breaking.force_n)
    travel = as_1d_float("displacement_m", breaking.displacement_m)
    n = check_equal_lengths({"time_s": time_s, "force_n": force, "displacement_m": travel})
    if n < 5:
        raise AnalysisError(f"the breaking record has only {n} samples; at least 5 are needed.")
    check_time_increasing(time_s)
    diameter = check_positive("tablet_diameter_m", breaking.tablet_diameter_m, "m")
    thickness = check_positive("tablet_thickness_m", breaking.tablet_thickness_m, "m")
    peak_all = float(np.max(force))
    if peak_all <= 0.0:
        raise AnalysisError("the breaking force never rises above zero: the platen did not touch the tablet.")
    sigma = noise_std(force)
    running_max = np.maximum.accumulate(force)
    drop = running_max - force
    candidates = np.flatnonzero(
        (running_max >= 0.1 * peak_all) & (drop >= min_drop_fraction * running_max) & (drop > 8.0 * sigma)
    )
    if candidates.size == 0:
        raise AnalysisError(
            f"the force never drops after its peak of {peak_all:.2f} N (no fall of "
            f"{100 * min_drop_fraction:.0f} % below its maximum): the tablet did not fracture within the "
            "record, so no breaking force or tensile strength can be given; extend the test until it breaks."
        )
    drop_index = int(candidates[0])
    peak = int(np.argmax(force[: drop_index + 1]))
    rise_time = float(time_s[peak] - time_s[0])
    fall_time = float(time_s[drop_index] - time_s[peak])
    allowed = max(0.1 * rise_time, 3.0 * float(np.median(np.diff(time_s))))
    if fall_time > allowed:
        raise AnalysisError(
            f"the force fell slowly after its peak of {force[peak]:.2f} N ({fall_time * 1e3:.1f} ms for a "
            f"{100 * min_drop_fraction:.0f} % fall, rise {rise_time * 1e3:.1f} ms): this is unloading or "
            "plastic yielding, not brittle fracture, and Fell & Newton's formula does not apply."
        )
    breaking_force = float(force[peak])
    stiffness = _diametral_stiffness(force[: peak + 1], travel[: peak + 1], breaking_force)
    return BreakingResult(
        breaking_force_n=breaking_force,
        tensile_strength_pa=2.0 * breaking_force / (math.pi * diameter * thickness),
        diametral_stiffness_n_per_m=stiffness,
        fracture_time_s=float(time_s[peak]),
        fracture_displacement_m=float(travel[peak]),
        tablet_diameter_m=diameter,
        tablet_thickness_m=thickness,
    )


def _diametral_stiffness(force: np.ndarray, travel: np.ndarray, breaking_force: float) -> float:
    """Least-squares slope dF/dx of the rising samples between 20 % and 80 % of the breaking force."""
    low, high = _STIFFNESS_BAND
    band = (force >= low * breaking_force) & (force <= high * breaking_force)
    x, y = travel[band], force[band]
    dx = x - x.mean() if x.size else x
    sxx = float(np.dot(dx, dx))
    if x.size < 3 or sxx <= 0.0:
        raise AnalysisError(
            f"only {x.size} samples lie between {100 * low:.0f} % and {100 * high:.0f} % of the breaking "
            "force with distinct platen positions; the loading ramp is sampled too coarsely for the "
            "diametral stiffness."
        )
    return float(np.dot(dx, y - y.mean()) / sxx)
