"""Ground truth of a whole experiment: (formulation, process, seed) -> every observable.

The one black box the simulators, the analyses' validation and the optimiser benchmarks
share. Each stage draws from its own random stream spawned from the seed, so changing
e.g. the droplet volume does not change the dosing noise of the same seed. The blend
that is compacted is the one actually dosed (dosing errors shift the composition).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from tablet_workcell.twin.blend import BlendProperties, Formulation
from tablet_workcell.twin.compaction import CompactionOutcome, PressSettings, compact
from tablet_workcell.twin.disintegration import DropletSeries, sessile_drop
from tablet_workcell.twin.dosing import (
    Balance,
    BalanceSettings,
    DoseOutcome,
    Feeder,
    FeederSettings,
    gravimetric_dose,
)

DOSING_STEP_S = 0.01


@dataclass(frozen=True)
class ExperimentSpec:
    """What to make and test (SI units)."""

    fractions: Mapping[str, float]
    target_tablet_mass_kg: float = 100e-6
    compaction_pressure_pa: float = 150e6
    dwell_time_s: float = 0.5
    punch_diameter_m: float = 8e-3
    droplet_volume_m3: float = 5e-9
    test_duration_s: float = 60.0
    frame_interval_s: float = 1.0 / 30.0


@dataclass(frozen=True)
class ExperimentTruth:
    spec: ExperimentSpec
    formulation: Formulation  # as specified
    dosed_formulation: Formulation  # as dosed
    blend: BlendProperties  # of the dosed blend
    doses: dict[str, DoseOutcome]
    compaction: CompactionOutcome
    droplet: DropletSeries | None  # None when the tablet capped on ejection
    observables: dict[str, float] = field(default_factory=dict)


def simulate_experiment(
    spec: ExperimentSpec,
    seed: int,
    feeder: FeederSettings = FeederSettings(),  # noqa: B008 - frozen settings
    balance: BalanceSettings = BalanceSettings(),  # noqa: B008
    press: PressSettings = PressSettings(),  # noqa: B008
) -> ExperimentTruth:
    """Run the whole experiment in the twin. Raises FormulationError for invalid recipes."""
    formulation = Formulation.of(spec.fractions)
    dosing_seed, press_seed = np.random.SeedSequence(seed).spawn(2)
    dosing_rng = np.random.default_rng(dosing_seed)
    doses: dict[str, DoseOutcome] = {}
    for material, fraction in formulation.components:
        feeder_process = Feeder(feeder, dosing_rng, DOSING_STEP_S)
        balance_process = Balance(balance, dosing_rng, DOSING_STEP_S)
        doses[material.name] = gravimetric_dose(
            fraction * spec.target_tablet_mass_kg, feeder_process, balance_process, DOSING_STEP_S
        )
    dosed_mass = sum(d.dosed_kg for d in doses.values())
    dosed = Formulation.of({name: d.dosed_kg / dosed_mass for name, d in doses.items()})
    blend = dosed.properties

    outcome = compact(
        blend,
        dosed_mass,
        spec.punch_diameter_m,
        spec.compaction_pressure_pa,
        spec.dwell_time_s,
        np.random.default_rng(press_seed),
        press,
    )
    tablet = outcome.tablet
    droplet = None
    if not tablet.capped:
        soluble = sum(f for m, f in dosed.components if m.soluble)
        droplet = sessile_drop(
            blend,
            tablet.diameter_m,
            tablet.thickness_m,
            tablet.porosity,
            tablet.tensile_strength_pa,
            spec.droplet_volume_m3,
            spec.test_duration_s,
            spec.frame_interval_s,
            soluble_fraction=soluble,
        )
    observables = {
        "dosed_mass_kg": dosed_mass,
        "dose_relative_error": (dosed_mass - spec.target_tablet_mass_kg) / spec.target_tablet_mass_kg,
        "tablet_thickness_m": tablet.thickness_m,
        "solid_fraction": tablet.solid_fraction,
        "porosity": tablet.porosity,
        "tensile_strength_pa": tablet.tensile_strength_pa if not tablet.capped else 0.0,
        "breaking_force_n": tablet.breaking_force_n if not tablet.capped else 0.0,
        "ejection_force_n": tablet.ejection_force_n,
        "elastic_recovery": tablet.elastic_recovery,
        "capped": float(tablet.capped),
        "absorption_time_s": droplet.absorption_time_s if droplet else math.nan,
        "disintegration_time_s": droplet.disintegration_time_s if droplet else math.nan,
    }
    observables = {name: float(value) for name, value in observables.items()}
    return ExperimentTruth(spec, formulation, dosed, blend, doses, outcome, droplet, observables)
