"""Compaction and breaking analyses recover known constants from synthetic records.

The records are built here, independently of the twin: an in-die density law D(P) is
turned into a displacement-controlled punch stroke sampled at 2 kHz, with a dwell, an
elastic unloading and white noise on force and displacement (physics.md: Heckel,
Kawakita, Fell & Newton).
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tablet_workcell.analysis.compaction import (
    AnalysisError,
    BreakingResult,
    analyse_compaction,
    elastic_recovery,
    heckel_analysis,
    kawakita_analysis,
    tensile_strength,
    work_of_compaction,
)
from tablet_workcell.twin.records import BreakingRecord, CompactionPhase, CompactionRecord

TRUE_DENSITY = 1500.0
DensityLaw = Callable[[np.ndarray], np.ndarray]


def heckel_law(yield_pa: float, intercept: float, fill_density: float, rearrangement_pa: float) -> DensityLaw:
    """D(P) = 1 - exp(-(P/Py + A - (A - A0) exp(-P/Pr))), Heckel-linear above Pr, D(0) = D0."""
    a0 = -math.log(1.0 - fill_density)

    def law(pressure: np.ndarray) -> np.ndarray:
        y = pressure / yield_pa + intercept - (intercept - a0) * np.exp(-pressure / rearrangement_pa)
        return 1.0 - np.exp(-y)

    return law


def compaction_record(
    law: DensityLaw,
    *,
    max_pressure_pa: float,
    die_diameter_m: float = 8e-3,
    mass_kg: float = 100e-6,
    bulk_density: float = 320.0,
    rate_hz: float = 2000.0,
    loading_s: float = 0.2,
    dwell_s: float = 0.05,
    unloading_s: float = 0.1,
    recovery: float = 0.03,
    force_noise: float = 0.002,
    travel_noise_m: float = 0.5e-6,
    seed: int = 1,
) -> CompactionRecord:
    """A displacement-controlled stroke through the powder bed whose density follows ``law``."""
    area = math.pi * die_diameter_m**2 / 4.0
    fill_height = mass_kg / (bulk_density * area)
    pressure_grid = np.linspace(0.0, max_pressure_pa, 20001)
    travel_grid = fill_height - mass_kg / (TRUE_DENSITY * area * law(pressure_grid))
    assert abs(travel_grid[0]) < 1e-9 * fill_height, "the law must start at the bulk density"
    travel_max = float(travel_grid[-1])
    h_min = fill_height - travel_max
    recovered = recovery * h_min
    dt = 1.0 / rate_hz

    t_load = np.arange(0.0, loading_s, dt)
    x_load = travel_max * (1.0 - np.cos(np.pi * t_load / loading_s)) / 2.0
    f_load = np.interp(x_load, travel_grid, pressure_grid) * area
    t_dwell = np.arange(dt, dwell_s + dt / 2, dt)
    x_dwell = np.full_like(t_dwell, travel_max)
    f_dwell = max_pressure_pa * area * (1.0 - 0.02 * (1.0 - np.exp(-t_dwell / 0.01)))
    t_unload = np.arange(dt, unloading_s + dt / 2, dt)
    x_unload = travel_max - 2.0 * recovered * (1.0 - np.cos(np.pi * t_unload / unloading_s)) / 2.0
    f_unload = f_dwell[-1] * np.clip(1.0 - (travel_max - x_unload) / recovered, 0.0, None)

    rng = np.random.default_rng(seed)
    force = np.concatenate([f_load, f_dwell, f_unload])
    travel = np.concatenate([x_load, x_dwell, x_unload])
    force = force + rng.normal(0.0, force_noise * max_pressure_pa * area, force.size)
    travel = travel + rng.normal(0.0, travel_noise_m, travel.size)
    phase = np.concatenate(
        [
            np.full(t.size, p, dtype=np.uint8)
            for t, p in zip((t_load, t_dwell, t_unload), CompactionPhase, strict=True)
        ]
    )
    time = np.arange(force.size, dtype=np.float64) * dt
    return CompactionRecord(time, force, travel, phase, fill_height, die_diameter_m, mass_kg, TRUE_DENSITY)


MCC = {"yield_pa": 80e6, "intercept": 0.9, "fill_density": 320 / TRUE_DENSITY, "rearrangement_pa": 10e6}


def mcc_record(**kwargs: Any) -> CompactionRecord:
    return compaction_record(heckel_law(**MCC), max_pressure_pa=200e6, bulk_density=320.0, **kwargs)


CASES = {
    # name: (law, record settings)
    "mcc": (heckel_law(**MCC), {"max_pressure_pa": 200e6, "bulk_density": 320.0}),
    "lactose": (
        heckel_law(160e6, 0.6, 550 / TRUE_DENSITY, 3e6),
        {
            "max_pressure_pa": 250e6,
            "bulk_density": 550.0,
            "die_diameter_m": 5e-3,
            "mass_kg": 60e-6,
            "force_noise": 0.004,
            "travel_noise_m": 1e-6,
        },
    ),
    "blend": (
        heckel_law(110e6, 0.8, 450 / TRUE_DENSITY, 6e6),
        {
            "max_pressure_pa": 150e6,
            "bulk_density": 450.0,
            "die_diameter_m": 6e-3,
            "mass_kg": 80e-6,
            "rate_hz": 1000.0,
            "force_noise": 0.005,
        },
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_heckel_recovers_yield_pressure_and_skips_rearrangement(name: str) -> None:
    law, settings_ = CASES[name]
    truth = {"mcc": (80e6, 10e6), "lactose": (160e6, 3e6), "blend": (110e6, 6e6)}[name]
    result = heckel_analysis(compaction_record(law, **settings_))  # type: ignore[arg-type]
    yield_pa, rearrangement_pa = truth
    assert result.yield_pressure_pa == pytest.approx(yield_pa, rel=0.05)
    assert result.method == "in-die"
    # the curved start is left out: below 2.5 Pr the rearrangement term still exceeds 8 % of its start value
    assert result.region_start_pa >= 2.5 * rearrangement_pa
    assert result.region_end_pa >= 0.9 * settings_["max_pressure_pa"]
    assert result.region_end_pa - result.region_start_pa >= 0.5 * settings_["max_pressure_pa"]
    assert result.r_squared >= 0.995 and result.n_points >= 10
    assert 0.0 < result.yield_pressure_stderr_pa < 0.05 * yield_pa
    assert result.slope_per_pa == pytest.approx(1.0 / result.yield_pressure_pa)


def test_heckel_region_leaves_out_an_elastic_bend_at_high_pressure() -> None:
    base = heckel_law(100e6, 0.7, 400 / TRUE_DENSITY, 5e6)
    bend_start, p_max = 150e6, 200e6

    def law(pressure: np.ndarray) -> np.ndarray:
        y = (
            -np.log1p(-base(pressure))
            - 0.15 * (np.clip(pressure - bend_start, 0.0, None) / (p_max - bend_start)) ** 2
        )
        return 1.0 - np.exp(-y)

    result = heckel_analysis(compaction_record(law, max_pressure_pa=p_max, bulk_density=400.0))
    assert result.yield_pressure_pa == pytest.approx(100e6, rel=0.05)
    assert result.region_end_pa <= bend_start + 25e6  # where the bend reaches 0.04 in ln(1/(1-D))
    assert result.region_start_pa >= 15e6


def test_kawakita_recovers_a_and_b() -> None:
    a, inverse_b, fill_density = 0.6, 5e6, 0.2

    def law(pressure: np.ndarray) -> np.ndarray:
        strain = a * pressure / inverse_b / (1.0 + pressure / inverse_b)
        return fill_density / (1.0 - strain)

    record = compaction_record(
        law, max_pressure_pa=100e6, bulk_density=fill_density * TRUE_DENSITY, force_noise=0.001
    )
    result = kawakita_analysis(record)
    assert result.a == pytest.approx(a, rel=0.02)
    assert result.inverse_b_pa == pytest.approx(inverse_b, rel=0.04)
    assert result.b_per_pa == pytest.approx(1.0 / result.inverse_b_pa)
    assert result.r_squared > 0.999


def test_work_of_a_linear_ramp_matches_the_analytic_integral() -> None:
    stiffness, travel_max, recovered = 4e6, 2e-3, 0.1e-3  # N/m, m, m
    x_load = np.linspace(0.0, travel_max, 201)
    x_unload = np.linspace(travel_max, travel_max - 2 * recovered, 101)[1:]
    f_max = stiffness * travel_max
    f_unload = f_max * np.clip(1.0 - (travel_max - x_unload) / recovered, 0.0, None)
    travel = np.concatenate([x_load, [travel_max] * 10, x_unload])
    force = np.concatenate([stiffness * x_load, [f_max] * 10, f_unload])
    phase = np.concatenate([np.zeros(201), np.ones(10), np.full(100, 2)]).astype(np.uint8)
    record = CompactionRecord(
        np.arange(travel.size, dtype=np.float64) * 1e-3,
        force,
        travel,
        phase,
        6e-3,
        8e-3,
        100e-6,
        TRUE_DENSITY,
    )
    work = work_of_compaction(record)
    assert work.loading_work_j == pytest.approx(0.5 * stiffness * travel_max**2, rel=1e-9)
    assert work.dwell_work_j == pytest.approx(0.0, abs=1e-12)
    assert work.elastic_work_j == pytest.approx(0.5 * f_max * recovered, rel=1e-9)
    assert work.net_work_j == pytest.approx(work.loading_work_j - work.elastic_work_j)
    assert work.plasticity == pytest.approx(1.0 - recovered / travel_max)


def test_elastic_recovery_in_and_out_of_die() -> None:
    record = mcc_record(recovery=0.04)
    h_min = record.fill_height_m - float(np.max(record.displacement_m[record.phase == CompactionPhase.DWELL]))
    result = elastic_recovery(record, tablet_thickness_m=1.1 * h_min)
    assert result.min_in_die_height_m == pytest.approx(h_min, rel=2e-3)
    assert result.in_die_recovery == pytest.approx(0.04, rel=0.05)
    assert result.out_of_die_recovery == pytest.approx(0.1, rel=0.02)
    assert elastic_recovery(record).out_of_die_recovery is None


def test_analyse_compaction_bundles_everything() -> None:
    record = mcc_record()
    analysis = analyse_compaction(record, tablet_thickness_m=1.5e-3)
    assert analysis.max_pressure_pa == pytest.approx(200e6, rel=0.02)
    assert analysis.max_force_n == pytest.approx(analysis.max_pressure_pa * record.punch_area_m2)
    assert analysis.heckel == heckel_analysis(record)
    assert 0.0 < analysis.kawakita.a < 1.0
    assert 0.0 < analysis.work.elastic_work_j < analysis.work.loading_work_j
    assert analysis.elastic_recovery.out_of_die_recovery is not None
    with pytest.raises(dataclasses.FrozenInstanceError):
        analysis.heckel.yield_pressure_pa = 1.0  # type: ignore[misc]


def breaking_record(
    *, breaking_force_n: float = 80.0, stiffness: float = 2e5, noise: float = 0.002, fracture: bool = True
) -> BreakingRecord:
    dt = 1e-3
    travel_to_break = breaking_force_n / stiffness
    x_rise = np.linspace(0.0, travel_to_break, 400)
    x_after = travel_to_break + np.arange(1, 101) * (x_rise[1] - x_rise[0])
    f_after = np.full(100, 0.05 * breaking_force_n) if fracture else stiffness * x_after
    force = np.concatenate([stiffness * x_rise, f_after])
    force = force + np.random.default_rng(3).normal(0.0, noise * breaking_force_n, force.size)
    travel = np.concatenate([x_rise, x_after])
    return BreakingRecord(np.arange(force.size, dtype=np.float64) * dt, force, travel, 8e-3, 3e-3)


def test_tensile_strength_follows_fell_and_newton() -> None:
    result = tensile_strength(breaking_record())
    assert isinstance(result, BreakingResult)
    assert result.breaking_force_n == pytest.approx(80.0, rel=0.01)
    assert result.tensile_strength_pa == pytest.approx(2 * 80.0 / (math.pi * 8e-3 * 3e-3), rel=0.01)
    assert result.diametral_stiffness_n_per_m == pytest.approx(2e5, rel=0.02)
    assert result.fracture_displacement_m == pytest.approx(80.0 / 2e5, rel=0.02)


def _scrambled_loading(record: CompactionRecord) -> CompactionRecord:
    """A block of the loading ramp played backwards: the pressure falls back mid-ramp."""
    force = record.force_n.copy()
    block = slice(250, 380)
    force[block] = force[block][::-1]
    return dataclasses.replace(record, force_n=force)


def _without_fill_room(record: CompactionRecord) -> CompactionRecord:
    fill = 0.95 * float(np.max(record.displacement_m))
    true_density = record.powder_mass_kg / (0.5 * record.punch_area_m2 * fill)
    return dataclasses.replace(record, fill_height_m=fill, true_density_kg_per_m3=true_density)


def _with_nan(record: CompactionRecord) -> CompactionRecord:
    travel = record.displacement_m.copy()
    travel[17] = np.nan
    return dataclasses.replace(record, displacement_m=travel)


BAD_RECORDS: dict[str, tuple[Callable[[CompactionRecord], CompactionRecord], str]] = {
    "too few loading": (
        lambda r: dataclasses.replace(r, phase=np.full_like(r.phase, 1)),
        "0 LOADING samples",
    ),
    "scrambled": (_scrambled_loading, "not one monotonic ramp"),
    "true density too low": (
        lambda r: dataclasses.replace(r, true_density_kg_per_m3=1000.0),
        "true density (1000 kg/m3) is too low",
    ),
    "displacement beyond fill": (_without_fill_room, "relative density would be <= 0"),
    "lengths": (lambda r: dataclasses.replace(r, force_n=r.force_n[:-3]), "mismatched lengths"),
    "nan": (_with_nan, "displacement_m holds 1 non-finite value"),
    "overfilled die": (lambda r: dataclasses.replace(r, fill_height_m=1e-4), "impossible"),
    "diameter": (lambda r: dataclasses.replace(r, die_diameter_m=-8e-3), "die_diameter_m must be a positive"),
    "phase": (lambda r: dataclasses.replace(r, phase=r.phase + 3), "unknown value"),
}


@pytest.mark.parametrize("case", sorted(BAD_RECORDS))
def test_unusable_compaction_records_raise_analysis_error(case: str) -> None:
    spoil, message = BAD_RECORDS[case]
    with pytest.raises(AnalysisError, match=re.escape(message)):
        analyse_compaction(spoil(mcc_record()))


def test_curved_heckel_plot_has_no_linear_region() -> None:
    def law(pressure: np.ndarray) -> np.ndarray:  # ln(1/(1-D)) grows as P^2: curved everywhere
        return 1.0 - np.exp(-(0.5 + 2.5 * (pressure / 200e6) ** 2))

    record = compaction_record(law, max_pressure_pa=200e6, bulk_density=TRUE_DENSITY * (1 - math.exp(-0.5)))
    with pytest.raises(AnalysisError, match=r"no pressure region of at least 60\.0 MPa"):
        heckel_analysis(record, min_span_pa=60e6)


def test_unfinished_unloading_is_reported() -> None:
    record = mcc_record()
    keep = record.force_n > 0.2 * float(np.max(record.force_n))
    keep[: int(np.argmax(keep))] = True  # keep the whole loading ramp
    cut = dataclasses.replace(
        record,
        time_s=record.time_s[keep],
        force_n=record.force_n[keep],
        displacement_m=record.displacement_m[keep],
        phase=record.phase[keep],
    )
    with pytest.raises(AnalysisError, match="before the punch left the compact"):
        elastic_recovery(cut)


@pytest.mark.parametrize(
    ("spoil", "message"),
    [
        (lambda r: breaking_record(fracture=False), "did not fracture"),
        (lambda r: dataclasses.replace(r, tablet_thickness_m=0.0), "tablet_thickness_m must be a positive"),
        (lambda r: dataclasses.replace(r, force_n=r.force_n[:10]), "mismatched lengths"),
        (lambda r: dataclasses.replace(r, time_s=r.time_s[::-1].copy()), "time does not increase"),
    ],
)
def test_unusable_breaking_records_raise_analysis_error(
    spoil: Callable[[BreakingRecord], BreakingRecord], message: str
) -> None:
    with pytest.raises(AnalysisError, match=message):
        tensile_strength(spoil(breaking_record()))


finite = st.floats(-1e4, 1e4, allow_nan=False, allow_subnormal=False)
scalar = st.floats(-0.1, 0.1, allow_nan=False, allow_subnormal=False) | st.sampled_from([1e-2, 5e-3, 1e-4])


@settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(0, 60),
    data=st.data(),
    fill=scalar,
    diameter=scalar,
    mass=scalar,
    density=st.floats(-10.0, 5000.0, allow_nan=False, allow_subnormal=False),
)
def test_random_records_give_a_result_or_analysis_error(
    n: int, data: st.DataObject, fill: float, diameter: float, mass: float, density: float
) -> None:
    def array(elements: st.SearchStrategy[float]) -> np.ndarray:
        return data.draw(hnp.arrays(np.float64, n, elements=elements))

    time = np.cumsum(np.abs(array(finite))) + np.arange(n) * 1e-3
    force, travel = array(finite), array(finite) * 1e-6
    phase = data.draw(hnp.arrays(np.uint8, n, elements=st.integers(0, 2)))
    record = CompactionRecord(time, force, travel, phase, fill, diameter, mass, density)
    thickness = data.draw(st.none() | scalar)
    analyses: list[Callable[[], object]] = [
        lambda: analyse_compaction(record, tablet_thickness_m=thickness),
        lambda: heckel_analysis(record),
        lambda: kawakita_analysis(record),
        lambda: work_of_compaction(record),
        lambda: elastic_recovery(record, thickness),
        lambda: tensile_strength(BreakingRecord(time, force, travel, diameter, fill)),
    ]
    for analysis in analyses:
        try:
            analysis()
        except AnalysisError as error:
            assert str(error)


@settings(max_examples=25, deadline=None, database=None)
@given(
    force_noise=st.floats(0.0, 0.1),
    travel_noise_m=st.floats(0.0, 20e-6),
    samples=st.integers(5, 700),
    seed=st.integers(0, 1000),
)
def test_noisy_or_cut_records_give_a_sound_fit_or_analysis_error(
    force_noise: float, travel_noise_m: float, samples: int, seed: int
) -> None:
    full = mcc_record(force_noise=force_noise, travel_noise_m=travel_noise_m, seed=seed)
    record = dataclasses.replace(
        full,
        time_s=full.time_s[:samples],
        force_n=full.force_n[:samples],
        displacement_m=full.displacement_m[:samples],
        phase=full.phase[:samples],
    )
    try:
        result = heckel_analysis(record)
    except AnalysisError as error:
        assert str(error)
    else:
        assert 0.0 < result.yield_pressure_pa < math.inf and result.r_squared >= 0.995
        assert result.region_end_pa - result.region_start_pa >= 15e6 and result.n_points >= 10
