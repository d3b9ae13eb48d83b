"""The dispenser's checks before dosing: the heads map and the recipe rules (no ROS)."""

from __future__ import annotations

import math

import pytest

from tablet_workcell.devices.dosing.node_parameters import DEFAULT_HEADS, DISPENSER_PARAMETERS
from tablet_workcell.devices.dosing.recipe import (
    DoseTarget,
    RecipeError,
    check_tolerance,
    parse_heads,
    plan_recipe,
)
from tablet_workcell.errors import ConfigError

HEADS = {"lactose": 1, "mcc": 2}


def test_heads_map_powder_to_address() -> None:
    assert parse_heads(["1:lactose", " 12 : mcc "]) == {"lactose": 1, "mcc": 12}
    assert len(parse_heads(DEFAULT_HEADS)) == 5


@pytest.mark.parametrize(
    ("entries", "expected"),
    [
        (["lactose"], "is not ADDRESS:POWDER"),
        (["1:lactose monohydrate"], "is not ADDRESS:POWDER"),
        (["0:lactose"], "address 0 must be 1 to 31"),
        (["32:lactose"], "address 32 must be 1 to 31"),
        (["1:lactose", "1:mcc"], "address 1 twice"),
        (["1:lactose", "2:lactose"], "put lactose on heads 1 and 2"),
        ([], "heads is empty"),
    ],
)
def test_bad_heads_name_the_problem(entries: list[str], expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        parse_heads(entries)


def test_a_recipe_resolves_each_component_to_its_head_in_order() -> None:
    plan = plan_recipe([("mcc", 30e-6), ("lactose", 10e-6)], HEADS, 1e-3)
    assert plan == [DoseTarget("mcc", 30e-6, 2), DoseTarget("lactose", 10e-6, 1)]


@pytest.mark.parametrize(
    ("targets", "expected"),
    [
        ([], "no components"),
        ([("talc", 1e-6)], "no dosing head holds 'talc'; this station doses lactose, mcc"),
        ([("mcc", 0.0)], "must be a positive number of kg"),
        ([("mcc", -1e-6)], "must be a positive number of kg"),
        ([("mcc", math.nan)], "must be a positive number of kg"),
        ([("mcc", 1e-6), ("mcc", 2e-6)], "appears twice"),
        ([("mcc", 0.6e-3), ("lactose", 0.5e-3)], "totals 1100.000 mg, more than the 1000.000 mg"),
    ],
)
def test_recipes_the_station_cannot_dose_are_refused(targets: list[tuple[str, float]], expected: str) -> None:
    with pytest.raises(RecipeError, match=expected):
        plan_recipe(targets, HEADS, 1e-3)


def test_tolerance_zero_means_the_default_and_negative_is_refused() -> None:
    check_tolerance(0.0)
    check_tolerance(1e-6)
    for bad in (-1e-6, math.inf, math.nan):
        with pytest.raises(RecipeError, match="tolerance"):
            check_tolerance(bad)


def test_the_catalog_parameters_include_the_shared_instrument_ones() -> None:
    names = [spec.name for spec in DISPENSER_PARAMETERS]
    assert len(names) == len(set(names))
    assert {"simulated", "balance_port", "dosing_port", "heads", "time_scale"} <= set(names)
