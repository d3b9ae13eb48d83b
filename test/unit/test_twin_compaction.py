"""Compaction twin: published behaviour and self-consistency."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tablet_workcell.twin.blend import Formulation
from tablet_workcell.twin.compaction import CompactionError, CompactionOutcome, PressSettings, compact
from tablet_workcell.twin.records import CompactionPhase

IR_BLEND = {"mcc": 0.6, "lactose": 0.35, "ccs": 0.04, "mgst": 0.01}


def make(
    fractions: dict[str, float], pressure: float = 150e6, seed: int = 0, scatter: float = 0.0
) -> CompactionOutcome:
    """Compact 100 mg in an 8 mm die; tablet-to-tablet strength scatter off unless asked for."""
    blend = Formulation.of(fractions).properties
    settings = PressSettings(strength_scatter=scatter)
    return compact(blend, 100e-6, 8e-3, pressure, 0.5, np.random.default_rng(seed), settings)


def test_higher_pressure_gives_lower_porosity_and_higher_strength() -> None:
    tablets = [make(IR_BLEND, p).tablet for p in (50e6, 100e6, 150e6, 200e6, 250e6)]
    porosities = [t.porosity for t in tablets]
    strengths = [t.tensile_strength_pa for t in tablets]
    assert porosities == sorted(porosities, reverse=True)
    assert strengths == sorted(strengths)


def test_more_lubricant_gives_weaker_tablets() -> None:
    strengths = [
        make({"mcc": 1.0 - w, "mgst": w}).tablet.tensile_strength_pa for w in (0.0, 0.005, 0.01, 0.02, 0.03)
    ]
    assert strengths == sorted(strengths, reverse=True)
    assert strengths[-1] < 0.85 * strengths[0]  # over-lubrication is significant for plastic MCC


def test_fragmenting_dcpa_is_insensitive_to_lubricant() -> None:
    plain = make({"dcpa": 1.0}).tablet.tensile_strength_pa
    lubricated = make({"dcpa": 0.99, "mgst": 0.01}).tablet.tensile_strength_pa
    assert lubricated == pytest.approx(plain, rel=0.03)


def test_breaking_force_is_consistent_with_diametral_formula() -> None:
    tablet = make(IR_BLEND).tablet
    sigma = 2 * tablet.breaking_force_n / (math.pi * tablet.diameter_m * tablet.thickness_m)
    assert sigma == pytest.approx(tablet.tensile_strength_pa, rel=1e-9)


def test_record_is_consistent_with_the_tablet() -> None:
    outcome = make(IR_BLEND)
    record, tablet = outcome.record, outcome.tablet
    loading = record.phase == CompactionPhase.LOADING
    assert record.force_n[loading].max() / record.punch_area_m2 == pytest.approx(150e6, rel=0.01)
    min_height = record.fill_height_m - record.displacement_m.max()
    assert min_height == pytest.approx(tablet.in_die_min_thickness_m, abs=3e-6)
    assert set(np.unique(record.phase)) == {0, 1, 2}
    assert np.all(np.diff(record.time_s) > 0)
    assert tablet.thickness_m > tablet.in_die_min_thickness_m  # elastic recovery


def test_same_seed_same_record_and_other_seed_other_noise() -> None:
    a, b, c = (make(IR_BLEND, seed=s, scatter=0.03) for s in (1, 1, 2))
    assert np.array_equal(a.record.force_n, b.record.force_n)
    assert a.tablet == b.tablet
    assert not np.array_equal(a.record.force_n, c.record.force_n)
    assert a.tablet.tensile_strength_pa != c.tablet.tensile_strength_pa


def test_elastic_api_caps_without_enough_mcc() -> None:
    assert make({"apap": 1.0}).tablet.capped
    assert make({"apap": 0.9, "mcc": 0.1}).tablet.capped
    capped = make({"apap": 1.0})
    assert capped.breaking is None
    assert not make({"apap": 0.5, "mcc": 0.45, "ccs": 0.04, "mgst": 0.01}).tablet.capped


def test_press_force_limit_is_explained() -> None:
    blend = Formulation.of(IR_BLEND).properties
    with pytest.raises(CompactionError, match=r"above the press's 20 kN; use at most 398 MPa"):
        compact(blend, 100e-6, 8e-3, 500e6, 0.5, np.random.default_rng(0))
