"""Compaction analysis of one in-die force-displacement record (the press node's entry point).

Bundles the in-die Heckel analysis (:mod:`.heckel`, Heckel 1961), the Kawakita analysis
(:mod:`.kawakita`, Kawakita & Lüdde 1971), the work of compaction and the elastic recovery,
and re-exports the breaking-test analysis (:mod:`.breaking`, Fell & Newton 1970), so that
callers import everything from here. Pure functions on :mod:`tablet_workcell.analysis.records`
records, SI units throughout.

Work of compaction: the trapezoidal integral of force over punch displacement. Each sample
interval is attributed to the phase of its later sample, so loading, dwell and unloading
parts add up to the integral over the whole record. The elastic (recovered) work is the work
the compact returns to the punch while unloading; the net work is what stays in the compact
(plastic deformation, fragmentation, friction). Their ratio is the plasticity of Stamm and
Mathis (1976): net / (net + elastic).

Elastic recovery: in die, from the smallest in-die height (under peak load) to the in-die height
where the unloading force falls through max(1 % of the peak force, 5 noise standard
deviations), i.e. where the punch leaves the compact; out of die, from the smallest in-die
height to the ejected tablet's thickness, (t_out - h_min) / h_min.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tablet_workcell.analysis.breaking import BreakingResult, tensile_strength
from tablet_workcell.analysis.errors import AnalysisError
from tablet_workcell.analysis.heckel import HeckelResult, heckel_analysis
from tablet_workcell.analysis.kawakita import KawakitaResult, kawakita_analysis
from tablet_workcell.analysis.records import CompactionPhase, CompactionRecord
from tablet_workcell.analysis.validation import (
    check_positive,
    compaction_arrays,
    noise_std,
    numerically_guarded,
)

__all__ = [
    "AnalysisError",
    "BreakingResult",
    "CompactionAnalysis",
    "CompactionWork",
    "ElasticRecovery",
    "HeckelResult",
    "KawakitaResult",
    "analyse_compaction",
    "elastic_recovery",
    "heckel_analysis",
    "kawakita_analysis",
    "tensile_strength",
    "work_of_compaction",
]


@dataclass(frozen=True)
class CompactionWork:
    """Work of one compaction cycle from the force-displacement curve (joules)."""

    loading_work_j: float  # integral of F dx over the LOADING phase
    dwell_work_j: float  # integral of F dx over the DWELL phase (0 when the punch holds still)
    elastic_work_j: float  # work returned to the punch during UNLOADING (positive)
    net_work_j: float  # loading + dwell - elastic: energy kept by the compact
    plasticity: float  # net / (loading + dwell), Stamm & Mathis 1976; 0..1 for a sound record


@dataclass(frozen=True)
class ElasticRecovery:
    """In-die and (when the tablet was measured) out-of-die elastic recovery."""

    min_in_die_height_m: float  # under peak load
    unloaded_in_die_height_m: float  # where the punch leaves the compact
    in_die_recovery: float  # (h_unloaded - h_min) / h_min, dimensionless
    tablet_thickness_m: float | None  # ejected tablet, when given
    out_of_die_recovery: float | None  # (t_out - h_min) / h_min when the thickness is given


@dataclass(frozen=True)
class CompactionAnalysis:
    """Everything the press reports about one compaction record."""

    max_force_n: float
    max_pressure_pa: float
    heckel: HeckelResult
    kawakita: KawakitaResult
    work: CompactionWork
    elastic_recovery: ElasticRecovery


@numerically_guarded
def work_of_compaction(record: CompactionRecord) -> CompactionWork:
    """Loading, dwell, elastic and net work of a compaction record (trapezoid rule; module docstring)."""
    arrays = compaction_arrays(record)
    loading_count = int(np.count_nonzero(arrays.phase == CompactionPhase.LOADING))
    if loading_count < 2:
        raise AnalysisError(
            f"the record has {loading_count} LOADING samples; at least 2 are needed to integrate the work."
        )
    force, travel, phase = arrays.force_n, arrays.displacement_m, arrays.phase
    increments = 0.5 * (force[1:] + force[:-1]) * np.diff(travel)
    later_phase = phase[1:]
    loading = float(np.sum(increments[later_phase == CompactionPhase.LOADING]))
    dwell = float(np.sum(increments[later_phase == CompactionPhase.DWELL]))
    elastic = -float(np.sum(increments[later_phase == CompactionPhase.UNLOADING]))
    total = loading + dwell
    if total <= 0.0:
        raise AnalysisError(
            f"the work done on the powder while loading is {total:.4g} J, not positive: force and "
            "displacement do not rise together (sign convention: displacement positive into the die, "
            "compressive force positive)."
        )
    net = total - elastic
    return CompactionWork(
        loading_work_j=loading,
        dwell_work_j=dwell,
        elastic_work_j=elastic,
        net_work_j=net,
        plasticity=net / total,
    )


@numerically_guarded
def elastic_recovery(record: CompactionRecord, tablet_thickness_m: float | None = None) -> ElasticRecovery:
    """In-die elastic recovery of a record, and out-of-die recovery when the tablet thickness is given.

    Raises AnalysisError when the record has no unloading samples or the force never returns to
    about zero while unloading (record cut before the punch left the compact).
    """
    arrays = compaction_arrays(record)
    force, travel, phase = arrays.force_n, arrays.displacement_m, arrays.phase
    thickness = (
        None if tablet_thickness_m is None else check_positive("tablet_thickness_m", tablet_thickness_m, "m")
    )
    smooth = np.convolve(travel, np.full(5, 0.2), mode="valid") if travel.size >= 5 else travel
    h_min = record.fill_height_m - float(np.max(smooth))
    if h_min <= 0.0:
        raise AnalysisError(
            f"the punch travel ({float(np.max(smooth)) * 1e3:.3f} mm) reaches the fill height "
            f"({record.fill_height_m * 1e3:.3f} mm): the fill height is wrong or the displacement not zeroed."
        )
    unloading = np.flatnonzero(phase == CompactionPhase.UNLOADING)
    if unloading.size == 0:
        raise AnalysisError("the record has no UNLOADING samples, so the in-die elastic recovery is unknown.")
    peak = float(np.max(force))
    threshold = max(0.01 * peak, 5.0 * noise_std(force))
    released = unloading[force[unloading] <= threshold]
    if released.size == 0 or peak <= 0.0:
        raise AnalysisError(
            f"the force never fell below {threshold:.3g} N during UNLOADING (last value "
            f"{force[unloading[-1]]:.3g} N): the record ends before the punch left the compact."
        )
    i = int(released[0])
    release_travel = float(travel[i])
    if i > 0 and force[i - 1] > threshold:
        fraction = (force[i - 1] - threshold) / (force[i - 1] - force[i])
        release_travel = float(travel[i - 1] + fraction * (travel[i] - travel[i - 1]))
    h_unloaded = record.fill_height_m - release_travel
    return ElasticRecovery(
        min_in_die_height_m=h_min,
        unloaded_in_die_height_m=h_unloaded,
        in_die_recovery=(h_unloaded - h_min) / h_min,
        tablet_thickness_m=thickness,
        out_of_die_recovery=None if thickness is None else (thickness - h_min) / h_min,
    )


@numerically_guarded
def analyse_compaction(
    record: CompactionRecord, tablet_thickness_m: float | None = None
) -> CompactionAnalysis:
    """Heckel, Kawakita, work and elastic recovery of one compaction record, with its peak load.

    Raises AnalysisError (from the first analysis that finds the record unusable).
    """
    arrays = compaction_arrays(record)
    max_force = float(np.max(arrays.force_n)) if arrays.force_n.size else 0.0
    if max_force <= 0.0:
        raise AnalysisError("the compaction force never rises above zero: the punch did not load the powder.")
    return CompactionAnalysis(
        max_force_n=max_force,
        max_pressure_pa=max_force / record.punch_area_m2,
        heckel=heckel_analysis(record),
        kawakita=kawakita_analysis(record),
        work=work_of_compaction(record),
        elastic_recovery=elastic_recovery(record, tablet_thickness_m),
    )
