"""Dosing physics and the whole-experiment ground truth."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tablet_workcell.twin.blend import FormulationError
from tablet_workcell.twin.dosing import (
    Balance,
    BalanceSettings,
    DosingError,
    Feeder,
    FeederSettings,
    gravimetric_dose,
)
from tablet_workcell.twin.experiment import ExperimentSpec, simulate_experiment

IR_BLEND = {"mcc": 0.6, "lactose": 0.35, "ccs": 0.04, "mgst": 0.01}


def dose(target_kg: float, seed: int, feeder: FeederSettings = FeederSettings()) -> float:  # noqa: B008
    rng = np.random.default_rng(seed)
    outcome = gravimetric_dose(
        target_kg, Feeder(feeder, rng, 0.01), Balance(BalanceSettings(), rng, 0.01), 0.01
    )
    return outcome.dosed_kg - target_kg


@pytest.mark.parametrize("target_kg", [1e-6, 10e-6, 100e-6])
def test_reference_dosing_is_accurate_to_a_fraction_of_a_milligram(target_kg: float) -> None:
    errors = np.array([dose(target_kg, seed) for seed in range(10)])
    assert abs(errors.mean()) < max(0.03 * target_kg, 0.1e-6)
    assert np.abs(errors).max() < max(0.1 * target_kg, 0.5e-6)


def test_empty_hopper_and_impossible_targets_are_reported() -> None:
    rng = np.random.default_rng(0)
    feeder = Feeder(FeederSettings(hopper_mass_kg=5e-6), rng, 0.01)
    gravimetric_dose(3e-6, feeder, Balance(BalanceSettings(), rng, 0.01), 0.01)
    with pytest.raises(DosingError, match=r"hopper holds 2\.\d\d mg, not enough for a 3\.00 mg dose; refill"):
        gravimetric_dose(3e-6, feeder, Balance(BalanceSettings(), rng, 0.01), 0.01)
    with pytest.raises(DosingError, match="must be positive"):
        dose(-1e-6, 0)


def test_balance_settles_and_quantises_to_its_readability() -> None:
    balance = Balance(BalanceSettings(), np.random.default_rng(0), 0.01)
    readings = [balance.step(50e-6) for _ in range(300)]
    assert readings[0] < 50e-6 * 0.1  # first-order settling
    assert readings[-1] == pytest.approx(50e-6, abs=0.05e-6)
    assert all(math.isclose(r / 1e-8, round(r / 1e-8), abs_tol=1e-6) for r in readings)
    assert balance.stable


def test_experiment_is_deterministic_for_a_seed() -> None:
    spec = ExperimentSpec(IR_BLEND)
    a, b, c = simulate_experiment(spec, 7), simulate_experiment(spec, 7), simulate_experiment(spec, 8)
    assert a.observables == b.observables
    assert a.observables != c.observables


def test_experiment_compacts_the_blend_actually_dosed() -> None:
    truth = simulate_experiment(ExperimentSpec(IR_BLEND), 3)
    dosed = sum(d.dosed_kg for d in truth.doses.values())
    assert truth.compaction.record.powder_mass_kg == pytest.approx(dosed)
    for material, fraction in truth.dosed_formulation.components:
        assert fraction == pytest.approx(truth.doses[material.name].dosed_kg / dosed)
    assert all(math.isfinite(v) for v in truth.observables.values())
    assert truth.droplet is not None and truth.droplet.disintegration_time_s > 0


def test_capped_tablet_has_no_disintegration_test() -> None:
    truth = simulate_experiment(ExperimentSpec({"apap": 0.95, "mcc": 0.05}), 0)
    assert truth.observables["capped"] == 1.0
    assert truth.droplet is None and math.isnan(truth.observables["disintegration_time_s"])


def test_invalid_recipe_is_rejected() -> None:
    with pytest.raises(FormulationError, match=r"sum to 0\.9000"):
        simulate_experiment(ExperimentSpec({"mcc": 0.5, "lactose": 0.4}), 0)
