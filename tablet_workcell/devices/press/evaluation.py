"""What a press cycle means: the driver's records turned into the analyses' figures.

The press measures force and punch travel; the powder mass and the blend's true density
come from the dispensing station and the recipe, so a relative density (solid fraction,
Heckel, Kawakita, work) needs them from the caller. Zero means "not known": the figures
that need it are NaN and a note says why, the rest is still reported. An analysis that
finds the record unusable does not fail the cycle either: its figures are NaN and its
sentence is one of the notes (the cycle happened, the tablet exists).

Elastic recovery and the in-die minimum thickness come from the press's own summary
(``END CMP``: fill height less the largest 5-sample mean punch travel, and the touched-off
tablet thickness), which is the same definition :func:`~tablet_workcell.analysis.compaction.
elastic_recovery` uses, and needs no density.

This module is the press node's science; it imports the analyses and the record types
from :mod:`tablet_workcell.analysis` only, never the twin (the node may import it).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import TypeVar

import numpy as np

from tablet_workcell.analysis.breaking import tensile_strength
from tablet_workcell.analysis.compaction import work_of_compaction
from tablet_workcell.analysis.errors import AnalysisError
from tablet_workcell.analysis.heckel import heckel_analysis
from tablet_workcell.analysis.kawakita import kawakita_analysis
from tablet_workcell.analysis.records import BreakingRecord, CompactionRecord
from tablet_workcell.devices.errors import DeviceOutOfRangeError
from tablet_workcell.devices.press.messages import DEVICE
from tablet_workcell.devices.press.results import BreakingResult, CompactionResult

NAN = math.nan
_T = TypeVar("_T")
#: a requested punch diameter further than this (relative) from the press's own is other tooling
PUNCH_DIAMETER_TOLERANCE = 0.01


class FailureMode(IntEnum):
    """How the tablet failed in the breaking test (the values of BreakingTestResult.msg)."""

    UNKNOWN = 0
    DIAMETRAL = 1  # clean split along the loaded diameter: a valid tensile strength
    CAPPING = 2
    LAMINATION = 3
    CRUSHING = 4


@dataclass(frozen=True)
class CompactionFigures:
    """One compaction's figures in SI units; NaN where a figure could not be given (see notes)."""

    max_force_n: float
    max_pressure_pa: float
    ejection_force_n: float
    fill_height_m: float
    in_die_min_thickness_m: float
    tablet_thickness_m: float
    tablet_diameter_m: float
    elastic_recovery: float  # (out-of-die thickness - in-die minimum) / in-die minimum
    solid_fraction: float  # of the ejected tablet, from mass, true density and its volume
    work_of_compaction_j: float  # loading work: integral of F dx while loading
    heckel_yield_pressure_pa: float
    heckel_region_start_pa: float
    heckel_region_end_pa: float
    kawakita_a: float
    kawakita_b_per_pa: float
    capped: bool  # the press saw the tablet cap or laminate at ejection (flag CAP)
    notes: tuple[str, ...]  # why a figure is missing, capping; empty for a clean cycle


@dataclass(frozen=True)
class BreakingFigures:
    breaking_force_n: float
    tensile_strength_pa: float  # 2F / (pi D t); NaN unless the failure was a diametral split
    tablet_diameter_m: float
    tablet_thickness_m: float
    failure_mode: FailureMode
    notes: tuple[str, ...]


def check_punch_diameter(requested_m: float, press_m: float) -> float:
    """The punch diameter to use: the press's, after checking a requested one (0: any) matches it."""
    if requested_m == 0.0:
        return press_m
    if not math.isfinite(requested_m) or abs(requested_m - press_m) > PUNCH_DIAMETER_TOLERANCE * press_m:
        raise DeviceOutOfRangeError(
            DEVICE,
            f"the goal asks for a {requested_m * 1e3:.3f} mm punch but the press reports "
            f"{press_m * 1e3:.3f} mm tooling; fit the right punches or ask for {press_m * 1e3:.2f} mm "
            "(0 takes the press's)",
        )
    return press_m


def compaction_record(
    result: CompactionResult, punch_diameter_m: float, fill_mass_kg: float, true_density_kg_per_m3: float
) -> CompactionRecord:
    """The in-die part of a driver record (loading, dwell, unloading) as the analyses take it."""
    in_die = result.in_die()
    return CompactionRecord(
        time_s=np.array(in_die.time_s),
        force_n=np.array(in_die.force_n),
        displacement_m=np.array(in_die.displacement_m),
        phase=np.array(in_die.phase),
        fill_height_m=result.summary.fill_height_m,
        die_diameter_m=punch_diameter_m,
        powder_mass_kg=fill_mass_kg,
        true_density_kg_per_m3=true_density_kg_per_m3,
    )


def breaking_record(result: BreakingResult, diameter_m: float, thickness_m: float) -> BreakingRecord:
    return BreakingRecord(
        time_s=np.array(result.record.time_s),
        force_n=np.array(result.record.force_n),
        displacement_m=np.array(result.record.displacement_m),
        tablet_diameter_m=diameter_m,
        tablet_thickness_m=thickness_m,
    )


def evaluate_compaction(
    result: CompactionResult, punch_diameter_m: float, fill_mass_kg: float, true_density_kg_per_m3: float
) -> CompactionFigures:
    """Every figure of one compaction cycle (module docstring: what needs mass and density)."""
    summary = result.summary
    area = math.pi * punch_diameter_m**2 / 4.0
    h_min, thickness = summary.min_gap_m, summary.tablet_thickness_m
    notes: list[str] = []
    if summary.capped:
        notes.append("the tablet capped or laminated as it was ejected (press flag CAP); do not test it")
    if result.missing_samples:
        notes.append(f"{result.missing_samples} streamed samples were lost on the line")
    heckel = kawakita = work = None
    solid_fraction = NAN
    if fill_mass_kg > 0.0 and true_density_kg_per_m3 > 0.0:
        if thickness > 0.0:
            solid_fraction = fill_mass_kg / (true_density_kg_per_m3 * area * thickness)
        record = compaction_record(result, punch_diameter_m, fill_mass_kg, true_density_kg_per_m3)
        heckel = _attempt("Heckel", lambda: heckel_analysis(record), notes)
        kawakita = _attempt("Kawakita", lambda: kawakita_analysis(record), notes)
        work = _attempt("work of compaction", lambda: _loading_work(record), notes)
    else:
        notes.append(
            "no fill mass and true density given, so no solid fraction, Heckel, Kawakita or work "
            f"(fill mass {fill_mass_kg:g} kg, true density {true_density_kg_per_m3:g} kg/m3)"
        )
    return CompactionFigures(
        max_force_n=summary.max_force_n,
        max_pressure_pa=summary.max_force_n / area,
        ejection_force_n=summary.ejection_force_n,
        fill_height_m=summary.fill_height_m,
        in_die_min_thickness_m=h_min,
        tablet_thickness_m=thickness,
        tablet_diameter_m=punch_diameter_m,
        elastic_recovery=(thickness - h_min) / h_min if h_min > 0.0 else NAN,
        solid_fraction=solid_fraction,
        work_of_compaction_j=NAN if work is None else work,
        heckel_yield_pressure_pa=NAN if heckel is None else heckel.yield_pressure_pa,
        heckel_region_start_pa=NAN if heckel is None else heckel.region_start_pa,
        heckel_region_end_pa=NAN if heckel is None else heckel.region_end_pa,
        kawakita_a=NAN if kawakita is None else kawakita.a,
        kawakita_b_per_pa=NAN if kawakita is None else kawakita.b_per_pa,
        capped=summary.capped,
        notes=tuple(notes),
    )


def evaluate_breaking(
    result: BreakingResult, diameter_m: float, thickness_m: float, capped: bool
) -> BreakingFigures:
    """Breaking force, tensile strength (Fell & Newton) and failure mode of one breaking test.

    ``capped``: the press flagged this tablet CAP at ejection; its test is no tensile test.
    """
    summary = result.summary
    notes: list[str] = []
    strength, mode, force = NAN, FailureMode.UNKNOWN, summary.breaking_force_n
    if capped:
        mode = FailureMode.CAPPING
        notes.append("the tablet had capped at ejection, so its breaking test gives no tensile strength")
    elif not summary.fractured:
        notes.append(
            f"no fracture before the platen's travel limit (peak {force:.2f} N, press flag NOF): "
            "the tablet deformed or was already in pieces"
        )
    elif thickness_m <= 0.0 or diameter_m <= 0.0:
        notes.append("the tablet's diameter and thickness are unknown, so no tensile strength")
    else:
        record = breaking_record(result, diameter_m, thickness_m)
        analysed = _attempt("tensile strength", lambda: tensile_strength(record), notes)
        if analysed is not None:
            strength, force = analysed.tensile_strength_pa, analysed.breaking_force_n
            mode = FailureMode.DIAMETRAL
    if result.missing_samples:
        notes.append(f"{result.missing_samples} streamed samples were lost on the line")
    return BreakingFigures(force, strength, diameter_m, thickness_m, mode, tuple(notes))


def _loading_work(record: CompactionRecord) -> float:
    return work_of_compaction(record).loading_work_j


def _attempt(what: str, analysis: Callable[[], _T], notes: list[str]) -> _T | None:
    try:
        return analysis()
    except AnalysisError as error:
        notes.append(f"no {what}: {error}")
        return None
