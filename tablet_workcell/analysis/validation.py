"""Checks shared by the analyses: shapes, finiteness, physical scalars, noise estimates.

Every check raises :class:`AnalysisError` with a sentence naming the offending value, so
a press node can show ``str(error)`` to a technician as it is.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import ParamSpec, TypeVar

import numpy as np

from tablet_workcell.analysis.errors import AnalysisError
from tablet_workcell.analysis.records import CompactionPhase, CompactionRecord, FloatArray

_P = ParamSpec("_P")
_R = TypeVar("_R")
_MAD_TO_STD = 1.0 / 0.6744897501960817
_THIRD_DIFFERENCE_VARIANCE = 20.0  # var(x[i+3] - 3x[i+2] + 3x[i+1] - x[i]) = 20 sigma^2 for white noise


@dataclass(frozen=True)
class CompactionArrays:
    """The arrays of a checked compaction record, as float64 (phase as int)."""

    time_s: FloatArray
    force_n: FloatArray
    displacement_m: FloatArray
    phase: np.ndarray


def as_1d_float(name: str, values: object) -> FloatArray:
    """``values`` as a 1-D float64 array without NaN or infinity, else AnalysisError."""
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise AnalysisError(f"{name} is not numeric ({exc}); pass a 1-D array of numbers.") from exc
    if array.ndim != 1:
        raise AnalysisError(f"{name} must be a 1-D array, got shape {array.shape}.")
    bad = np.flatnonzero(~np.isfinite(array))
    if bad.size:
        raise AnalysisError(
            f"{name} holds {bad.size} non-finite value(s) (NaN or infinity), the first at sample {bad[0]}; "
            "the acquisition dropped or corrupted samples, so the record cannot be analysed."
        )
    return array


def check_positive(name: str, value: float, unit: str) -> float:
    """``value`` as a float if finite and > 0, else AnalysisError naming it."""
    number = float(value)
    if not np.isfinite(number) or number <= 0.0:
        raise AnalysisError(f"{name} must be a positive finite number, got {number!r} {unit}.")
    return number


def check_equal_lengths(arrays: dict[str, np.ndarray]) -> int:
    """The common length of ``arrays``, else AnalysisError listing every length."""
    lengths = {name: int(array.shape[0]) for name, array in arrays.items()}
    if len(set(lengths.values())) != 1:
        listed = ", ".join(f"{name} {length}" for name, length in lengths.items())
        raise AnalysisError(
            f"the record's arrays have mismatched lengths ({listed}); each sample needs one value in "
            "every array."
        )
    return next(iter(lengths.values()))


def check_time_increasing(time_s: FloatArray) -> None:
    """AnalysisError unless time strictly increases from sample to sample."""
    steps = np.diff(time_s)
    bad = np.flatnonzero(steps <= 0.0)
    if bad.size:
        raise AnalysisError(
            f"time does not increase at sample {bad[0] + 1} ({time_s[bad[0]]!r} s then "
            f"{time_s[bad[0] + 1]!r} s); samples must be in acquisition order with distinct time stamps."
        )


def compaction_arrays(record: CompactionRecord) -> CompactionArrays:
    """Check a compaction record's arrays and scalars; return the arrays as float64.

    Checks: 1-D numeric arrays of equal length without NaN/inf, strictly increasing time,
    phases from :class:`CompactionPhase`, positive fill height, die diameter, powder mass and
    true density, and a fill (bulk) relative density strictly between 0 and 1.
    """
    time_s = as_1d_float("time_s", record.time_s)
    force_n = as_1d_float("force_n", record.force_n)
    displacement_m = as_1d_float("displacement_m", record.displacement_m)
    phase_float = as_1d_float("phase", record.phase)
    count = check_equal_lengths(
        {"time_s": time_s, "force_n": force_n, "displacement_m": displacement_m, "phase": phase_float}
    )
    if count < 5:
        raise AnalysisError(f"the compaction record holds only {count} samples; at least 5 are needed.")
    allowed = np.array([int(p) for p in CompactionPhase], dtype=np.float64)
    bad = np.flatnonzero(~np.isin(phase_float, allowed))
    if bad.size:
        raise AnalysisError(
            f"phase has the unknown value {phase_float[bad[0]]!r} at sample {bad[0]}; "
            f"allowed are {', '.join(f'{p.value} ({p.name})' for p in CompactionPhase)}."
        )
    check_time_increasing(time_s)
    fill_height = check_positive("fill_height_m", record.fill_height_m, "m")
    check_positive("die_diameter_m", record.die_diameter_m, "m")
    mass = check_positive("powder_mass_kg", record.powder_mass_kg, "kg")
    true_density = check_positive("true_density_kg_per_m3", record.true_density_kg_per_m3, "kg/m3")
    fill_density = mass / (true_density * record.punch_area_m2 * fill_height)
    if not 0.0 < fill_density < 1.0:
        raise AnalysisError(
            f"the powder ({mass * 1e6:.1f} mg) would fill the die to a relative density of "
            f"{fill_density:.3g} at the fill height of {fill_height * 1e3:.3f} mm, which is impossible (it "
            f"must lie between 0 and 1): the true density ({true_density:.0f} kg/m3), the fill height or "
            "the powder mass is wrong."
        )
    return CompactionArrays(time_s, force_n, displacement_m, phase_float.astype(np.int64))


def phase_indices(arrays: CompactionArrays, phase: CompactionPhase) -> np.ndarray:
    """Indices of the samples in ``phase``, in time order."""
    return np.flatnonzero(arrays.phase == int(phase))


def noise_std(values: FloatArray) -> float:
    """Robust white-noise standard deviation of a smoothly varying, densely sampled signal.

    Uses the median absolute deviation of third differences: a signal that is smooth on the
    scale of a few samples (a punch profile sampled at kHz) cancels to third order, white
    noise does not (variance 20 sigma^2). Returns 0.0 for fewer than 8 samples.
    """
    if values.size < 8:
        return 0.0
    third = np.diff(values, n=3)
    return float(
        np.median(np.abs(third - np.median(third))) * _MAD_TO_STD / np.sqrt(_THIRD_DIFFERENCE_VARIANCE)
    )


def largest_backslide(values: FloatArray) -> tuple[float, int]:
    """Largest fall of ``values`` below their running maximum, and the sample where it happens."""
    backslide = np.maximum.accumulate(values) - values
    index = int(np.argmax(backslide))
    return float(backslide[index]), index


def numerically_guarded(func: Callable[_P, _R]) -> Callable[_P, _R]:
    """Turn floating-point failures (overflow, division by zero, invalid values) into AnalysisError.

    Finite but absurd inputs (a die diameter of 1e-300 m, forces of 1e300 N) must not escape
    as ZeroDivisionError or RuntimeWarning; they are a record problem, reported as such.
    """

    @functools.wraps(func)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            with np.errstate(over="raise", divide="raise", invalid="raise", under="ignore"):
                return func(*args, **kwargs)
        except (FloatingPointError, OverflowError, ZeroDivisionError) as exc:
            raise AnalysisError(
                f"the record's values are outside any physical range and the arithmetic failed ({exc}); "
                "check that every quantity is in SI units (s, N, m, kg, kg/m3)."
            ) from exc

    return wrapper
