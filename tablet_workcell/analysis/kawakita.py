"""Kawakita analysis of the loading phase of a compaction record.

Kawakita and Lüdde (1971, Powder Technol. 4:61): P/C = P/a + 1/(a*b), with
C = (V0 - V)/V0 = (h0 - h)/h0 the engineering strain of the powder bed (h0 the fill height,
h the in-die height under the pressure P), a the maximum volume reduction and 1/b the
pressure at which half of it is reached (physics.md, "Powder compaction"; AAPS Open 2022).

Low-pressure threshold: P/C is ill-defined as C -> 0 (first contact), and its error grows as
sigma_C / C^2. Only loading samples with C >= ``min_strain_fraction`` (default 0.1) times the
largest strain reached, and with positive pressure, enter the straight-line fit of P/C
against P; at that threshold the relative error of C is about ten times that at the top of
the ramp, and the excluded samples carry little information on a and b anyway.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tablet_workcell.analysis.errors import AnalysisError
from tablet_workcell.analysis.records import CompactionPhase, CompactionRecord
from tablet_workcell.analysis.validation import compaction_arrays, numerically_guarded, phase_indices


@dataclass(frozen=True)
class KawakitaResult:
    """Kawakita fit P/C = P/a + 1/(a*b) of the loading phase (SI units)."""

    a: float  # maximum engineering strain (volume reduction), dimensionless
    b_per_pa: float  # b [1/Pa]
    inverse_b_pa: float  # 1/b [Pa]: pressure at which C = a/2
    r_squared: float  # of the straight line P/C against P
    n_points: int
    min_strain: float  # smallest engineering strain C admitted to the fit


@numerically_guarded
def kawakita_analysis(
    record: CompactionRecord, *, min_strain_fraction: float = 0.1, min_points: int = 5
) -> KawakitaResult:
    """Kawakita constants a and b from the LOADING samples of ``record`` (see module docstring).

    Raises AnalysisError when too few samples pass the strain threshold or when the fit gives a
    non-physical (non-positive) a or b, i.e. the record does not follow Kawakita's law.
    """
    if not 0.0 < min_strain_fraction < 1.0 or min_points < 3:
        raise AnalysisError(
            f"invalid Kawakita settings: min_strain_fraction {min_strain_fraction} must lie in (0, 1) and "
            f"min_points {min_points} be >= 3."
        )
    arrays = compaction_arrays(record)
    loading = phase_indices(arrays, CompactionPhase.LOADING)
    pressure = arrays.force_n[loading] / record.punch_area_m2
    strain = arrays.displacement_m[loading] / record.fill_height_m
    if loading.size == 0 or float(np.max(strain)) <= 0.0:
        raise AnalysisError(
            "the punch never moved into the powder during the LOADING phase (no positive displacement), "
            "so the Kawakita strain C = (h0 - h)/h0 is zero throughout."
        )
    min_strain = min_strain_fraction * float(np.max(strain))
    used = (strain >= min_strain) & (pressure > 0.0)
    n = int(np.count_nonzero(used))
    if n < min_points:
        raise AnalysisError(
            f"only {n} LOADING samples have a strain of at least {min_strain:.3g} and a positive pressure, "
            f"at least {min_points} are needed for a Kawakita fit; sample faster or load more slowly."
        )
    x = pressure[used]
    y = x / strain[used]
    dx = x - x.mean()
    sxx = float(np.dot(dx, dx))
    if sxx <= 0.0:
        raise AnalysisError("the loading pressure does not vary over the samples used for the Kawakita fit.")
    slope = float(np.dot(dx, y - y.mean()) / sxx)
    intercept = float(y.mean() - slope * x.mean())
    residual = y - (slope * x + intercept)
    total = float(np.sum((y - y.mean()) ** 2))
    r_squared = 1.0 - float(np.dot(residual, residual)) / total if total > 0.0 else -math.inf
    if slope <= 0.0 or intercept <= 0.0:
        raise AnalysisError(
            f"the Kawakita fit is non-physical (slope 1/a = {slope:.4g}, intercept 1/(ab) = "
            f"{intercept:.4g} Pa; both must be positive): the loading curve does not follow Kawakita's law."
        )
    a = 1.0 / slope
    b = slope / intercept
    return KawakitaResult(
        a=a, b_per_pa=b, inverse_b_pa=1.0 / b, r_squared=r_squared, n_points=n, min_strain=min_strain
    )
