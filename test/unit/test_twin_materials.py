"""Materials and blends: lookup, validation and published anchor values."""

from __future__ import annotations

import math

import pytest

from tablet_workcell.twin.blend import BlendProperties, Formulation, FormulationError
from tablet_workcell.twin.materials import UnknownMaterialError, get_material


def test_aliases_and_a_helpful_unknown_material_error() -> None:
    assert get_material("MCC").name == "microcrystalline_cellulose"
    with pytest.raises(UnknownMaterialError, match=r"unknown material 'lactos'\. Did you mean 'lactose'"):
        get_material("lactos")


@pytest.mark.parametrize(
    ("fractions", "message"),
    [
        ({}, "the formulation is empty"),
        ({"mcc": 0.7, "lactose": 0.2}, "mass fractions sum to 0.9000, not 1"),
        ({"mcc": 1.2, "lactose": -0.2}, "outside 0..1"),
        ({"mcc": float("nan"), "lactose": 1.0}, "give a number between 0 and 1"),
        ({"mcc": 0.5, "microcrystalline_cellulose": 0.5}, "list each material once"),
        ({"mcc": 0.5, "unobtainium": 0.5}, "unknown material 'unobtainium'"),
    ],
)
def test_invalid_formulations_are_rejected_with_the_reason(fractions: dict[str, float], message: str) -> None:
    with pytest.raises((FormulationError, UnknownMaterialError), match=message):
        Formulation.of(fractions)


def test_fractions_within_tolerance_are_normalised() -> None:
    formulation = Formulation.of({"mcc": 0.6004, "lactose": 0.4})
    assert math.isclose(sum(f for _, f in formulation.components), 1.0)


def test_mcc_yield_pressure_matches_published_80_to_85_mpa() -> None:
    pure = Formulation.of({"mcc": 1.0}).properties
    lubricated = Formulation.of({"mcc": 0.99, "mgst": 0.01}).properties
    assert pure.yield_pressure_pa == pytest.approx(80e6, rel=0.01)
    assert 82e6 <= lubricated.yield_pressure_pa <= 88e6


def test_mcc_strength_at_solid_fraction_085_matches_published_value() -> None:
    pure = Formulation.of({"mcc": 1.0}).properties
    lubricated = Formulation.of({"mcc": 0.99, "mgst": 0.01}).properties

    def at_085(blend: BlendProperties) -> float:
        return blend.sigma0_pa * math.exp(-blend.porosity_sensitivity * 0.15)

    assert at_085(pure) == pytest.approx(8.69e6, rel=0.02)
    assert at_085(lubricated) == pytest.approx(8.12e6, rel=0.03)


def test_binary_strength_deviates_negatively_from_the_average() -> None:
    mcc = Formulation.of({"mcc": 1.0}).properties.sigma0_pa
    dcpa = Formulation.of({"dcpa": 1.0}).properties.sigma0_pa
    mix = Formulation.of({"mcc": 0.5, "dcpa": 0.5}).properties.sigma0_pa
    assert mix < (mcc + dcpa) / 2


def test_lubricant_makes_the_blend_less_wettable_and_disintegrant_more() -> None:
    base = Formulation.of({"mcc": 0.6, "lactose": 0.4}).properties
    lubricated = Formulation.of({"mcc": 0.59, "lactose": 0.39, "mgst": 0.02}).properties
    with_ccs = Formulation.of({"mcc": 0.58, "lactose": 0.38, "ccs": 0.04}).properties
    assert lubricated.contact_angle_rad > base.contact_angle_rad
    assert with_ccs.pore_radius_scale_m > base.pore_radius_scale_m
    assert with_ccs.swelling_capacity > base.swelling_capacity
