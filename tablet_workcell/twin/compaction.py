"""Compaction of a blend in a microscale press: the in-die record and the tablet it makes.

Model (all SI):

* Die fill at the blend's bulk density: fill height h0 = m / (rho_bulk * A), fill
  relative density D0 = rho_bulk / rho_true.
* Loading, punch at constant speed, in-die relative density from Heckel (1961) with a
  rearrangement term that fades over a pressure scale Pr:
      ln(1/(1-D)) = P/Py + A - (A - A0) * exp(-P/Pr),   A0 = ln(1/(1-D0)).
  Above a few Pr the plot is the Heckel line with slope 1/Py (so an in-die Heckel
  analysis recovers Py); below it curves, strongly for MCC, hardly for fragmenting
  lactose and DCPA (physics notes, PMC3167253).
* Dwell under force control with logarithmic creep of plastic materials.
* Unloading: in-die elastic recovery of half the total axial recovery, force falling
  as a 3/2 power of the remaining recovery; the rest recovers after ejection.
  Total axial recovery = sqrt(P_max * 100 MPa) / E_r: proportional to P_max / E_r at
  100 MPa and growing sub-linearly above, so that tabletability plateaus rather than
  falls at high pressure (E_r calibrated per material).
* Ejection force = friction coefficient x residual radial pressure x wall area;
  magnesium stearate lowers the friction coefficient.
* Tensile strength, Ryshkewitch-Duckworth: sigma = sigma0 exp(-k eps) of the out-of-die
  porosity eps, with a small tablet-to-tablet scatter; breaking force from
  sigma = 2F/(pi D t) (Fell and Newton 1970).
* Capping/lamination: elastic APIs with less than 25 % MCC above 80 MPa, or any blend
  recovering more than 9 % axially (Drug Dev Ind Pharm 27:935, 2001) -> the tablet
  fails on ejection and no breaking test is possible.

Sensors: force noise (N) and displacement noise (m), sampled at a fixed rate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tablet_workcell.errors import WorkcellError
from tablet_workcell.twin.blend import BlendProperties
from tablet_workcell.twin.records import BreakingRecord, CompactionPhase, CompactionRecord, FloatArray

IN_DIE_RECOVERY_SHARE = 0.5
RECOVERY_REFERENCE_PA = 100e6
CAPPING_RECOVERY = 0.09
CAPPING_MIN_MCC = 0.25
CAPPING_MIN_PRESSURE_PA = 80e6


class CompactionError(WorkcellError):
    """A compaction request outside what the press or the model can do."""


@dataclass(frozen=True)
class PressSettings:
    punch_speed_m_per_s: float = 2e-3
    sample_rate_hz: float = 1000.0
    force_noise_n: float = 3.0
    displacement_noise_m: float = 0.3e-6
    max_force_n: float = 20e3
    creep_coefficient: float = 0.004  # fractional creep per ln(1 + t/tau) of a fully plastic blend
    creep_time_s: float = 0.05
    residual_radial_ratio: float = 0.1  # residual radial / maximum axial pressure
    strength_scatter: float = 0.03  # coefficient of variation of tablet strength
    platen_speed_m_per_s: float = 0.2e-3  # breaking test


@dataclass(frozen=True)
class Tablet:
    """The ejected tablet (truth the analyses are judged against)."""

    mass_kg: float
    diameter_m: float
    thickness_m: float
    in_die_min_thickness_m: float
    solid_fraction: float
    porosity: float
    elastic_recovery: float  # (thickness - in-die minimum) / in-die minimum
    tensile_strength_pa: float
    breaking_force_n: float
    ejection_force_n: float
    max_pressure_pa: float
    capped: bool


@dataclass(frozen=True)
class CompactionOutcome:
    record: CompactionRecord
    tablet: Tablet
    breaking: BreakingRecord | None  # None when the tablet capped on ejection


def heckel_exponent(pressure_pa: FloatArray, blend: BlendProperties, fill_density: float) -> FloatArray:
    """ln(1/(1-D)) at each pressure (see module docstring)."""
    a0 = -math.log(1.0 - fill_density)
    a = max(blend.heckel_intercept, a0)
    return np.asarray(
        pressure_pa / blend.yield_pressure_pa
        + a
        - (a - a0) * np.exp(-pressure_pa / blend.rearrangement_pressure_pa),
        dtype=np.float64,
    )


def compact(
    blend: BlendProperties,
    mass_kg: float,
    die_diameter_m: float,
    target_pressure_pa: float,
    dwell_time_s: float,
    rng: np.random.Generator,
    settings: PressSettings = PressSettings(),
) -> CompactionOutcome:
    """Simulate one compaction and return the streamed record and the resulting tablet."""
    area = math.pi * die_diameter_m**2 / 4.0
    _check_request(mass_kg, die_diameter_m, target_pressure_pa, dwell_time_s, area, settings)
    fill_density = blend.bulk_density_kg_per_m3 / blend.true_density_kg_per_m3
    fill_height = mass_kg / (blend.bulk_density_kg_per_m3 * area)
    solid_volume = mass_kg / blend.true_density_kg_per_m3
    dt = 1.0 / settings.sample_rate_hz

    # Loading: invert P -> height on a fine pressure grid, then sample at constant punch speed.
    grid = np.linspace(0.0, target_pressure_pa, 4000)
    density = 1.0 - np.exp(-heckel_exponent(grid, blend, fill_density))
    height = solid_volume / (area * density)
    travel = fill_height - height
    load_times = np.arange(0.0, travel[-1] / settings.punch_speed_m_per_s, dt)
    load_travel = load_times * settings.punch_speed_m_per_s
    load_pressure = np.interp(load_travel, travel, grid)
    load_times = np.append(load_times, travel[-1] / settings.punch_speed_m_per_s)
    load_travel = np.append(load_travel, travel[-1])
    load_pressure = np.append(load_pressure, target_pressure_pa)

    # Dwell at constant force with logarithmic creep of the plastic fraction.
    h_max_load = height[-1]
    dwell_t = np.arange(dt, dwell_time_s + dt / 2, dt) if dwell_time_s > 0 else np.empty(0)
    creep = settings.creep_coefficient * blend.plastic_volume_fraction
    dwell_travel = travel[-1] + h_max_load * creep * np.log1p(dwell_t / settings.creep_time_s)
    h_min = fill_height - (dwell_travel[-1] if dwell_t.size else travel[-1])

    # Unloading: in-die share of the elastic recovery, F ~ (remaining recovery)^1.5.
    recovery_total = math.sqrt(target_pressure_pa * RECOVERY_REFERENCE_PA) / blend.recovery_modulus_pa
    h_unloaded = h_min * (1.0 + IN_DIE_RECOVERY_SHARE * recovery_total)
    unload_duration = (h_unloaded - h_min) / settings.punch_speed_m_per_s
    unload_t = np.arange(dt, unload_duration + dt / 2, dt)
    unload_height = h_min + np.minimum(unload_t * settings.punch_speed_m_per_s, h_unloaded - h_min)
    remaining = np.clip((h_unloaded - unload_height) / (h_unloaded - h_min), 0.0, 1.0)
    unload_pressure = target_pressure_pa * remaining**1.5

    start_dwell = load_times[-1]
    time = np.concatenate([load_times, start_dwell + dwell_t, start_dwell + dwell_time_s + unload_t])
    pressure = np.concatenate([load_pressure, np.full(dwell_t.size, target_pressure_pa), unload_pressure])
    displacement = np.concatenate([load_travel, dwell_travel, fill_height - unload_height])
    phase = np.concatenate(
        [
            np.full(load_times.size, CompactionPhase.LOADING, dtype=np.uint8),
            np.full(dwell_t.size, CompactionPhase.DWELL, dtype=np.uint8),
            np.full(unload_t.size, CompactionPhase.UNLOADING, dtype=np.uint8),
        ]
    )
    force = pressure * area + rng.normal(0.0, settings.force_noise_n, time.size)
    displacement = displacement + rng.normal(0.0, settings.displacement_noise_m, time.size)
    record = CompactionRecord(
        time_s=time,
        force_n=force,
        displacement_m=displacement,
        phase=phase,
        fill_height_m=fill_height,
        die_diameter_m=die_diameter_m,
        powder_mass_kg=mass_kg,
        true_density_kg_per_m3=blend.true_density_kg_per_m3,
    )
    tablet = _tablet(blend, mass_kg, die_diameter_m, target_pressure_pa, h_min, recovery_total, rng, settings)
    breaking = None if tablet.capped else breaking_test(tablet, blend, rng, settings)
    return CompactionOutcome(record, tablet, breaking)


def _check_request(
    mass_kg: float,
    diameter_m: float,
    pressure_pa: float,
    dwell_s: float,
    area: float,
    settings: PressSettings,
) -> None:
    if not (mass_kg > 0 and diameter_m > 0):
        raise CompactionError(
            f"powder mass {mass_kg!r} kg and die diameter {diameter_m!r} m must be positive."
        )
    if not pressure_pa > 0:
        raise CompactionError(
            f"target pressure {pressure_pa!r} Pa must be positive (e.g. 1.5e8 for 150 MPa)."
        )
    if pressure_pa * area > settings.max_force_n:
        limit = settings.max_force_n / area
        raise CompactionError(
            f"target pressure {pressure_pa / 1e6:.0f} MPa needs {pressure_pa * area / 1e3:.1f} kN on a "
            f"{diameter_m * 1e3:.1f} mm punch, above the press's {settings.max_force_n / 1e3:.0f} kN; "
            f"use at most {limit / 1e6:.0f} MPa or a smaller punch."
        )
    if not 0 <= dwell_s <= 60:
        raise CompactionError(f"dwell time {dwell_s!r} s is outside 0..60 s.")


def _tablet(
    blend: BlendProperties,
    mass_kg: float,
    diameter_m: float,
    pressure_pa: float,
    h_min: float,
    recovery_total: float,
    rng: np.random.Generator,
    settings: PressSettings,
) -> Tablet:
    area = math.pi * diameter_m**2 / 4.0
    thickness = h_min * (1.0 + recovery_total)
    solid_fraction = mass_kg / (blend.true_density_kg_per_m3 * area * thickness)
    porosity = 1.0 - solid_fraction
    scatter = math.exp(rng.normal(0.0, settings.strength_scatter))
    strength = blend.sigma0_pa * math.exp(-blend.porosity_sensitivity * porosity) * scatter
    capped = (recovery_total > CAPPING_RECOVERY) or (
        blend.elastic_mass_fraction >= 0.5
        and blend.mcc_mass_fraction < CAPPING_MIN_MCC
        and pressure_pa > CAPPING_MIN_PRESSURE_PA
    )
    friction = 0.25 * math.exp(-blend.lubricant_fraction / 0.003) + 0.04
    ejection = friction * settings.residual_radial_ratio * pressure_pa * math.pi * diameter_m * h_min
    return Tablet(
        mass_kg=mass_kg,
        diameter_m=diameter_m,
        thickness_m=thickness,
        in_die_min_thickness_m=h_min,
        solid_fraction=solid_fraction,
        porosity=porosity,
        elastic_recovery=recovery_total,
        tensile_strength_pa=strength,
        breaking_force_n=strength * math.pi * diameter_m * thickness / 2.0,
        ejection_force_n=ejection,
        max_pressure_pa=pressure_pa,
        capped=capped,
    )


def breaking_test(
    tablet: Tablet,
    blend: BlendProperties,
    rng: np.random.Generator,
    settings: PressSettings = PressSettings(),
) -> BreakingRecord:
    """Diametral compression: linear loading at the tablet's stiffness to fracture, then a drop."""
    stiffness = 0.5 * blend.youngs_modulus_pa * tablet.solid_fraction**3 * tablet.thickness_m  # N/m
    dt = 1.0 / settings.sample_rate_hz
    travel_to_break = tablet.breaking_force_n / stiffness
    t_break = travel_to_break / settings.platen_speed_m_per_s
    times = np.union1d(np.arange(0.0, t_break + 0.05, dt), [t_break])  # the peak itself is sampled
    travel = times * settings.platen_speed_m_per_s
    force = np.where(times <= t_break, stiffness * travel, 0.05 * tablet.breaking_force_n)
    force = force + rng.normal(0.0, settings.force_noise_n * 0.1, times.size)
    return BreakingRecord(
        time_s=times,
        force_n=force,
        displacement_m=travel,
        tablet_diameter_m=tablet.diameter_m,
        tablet_thickness_m=tablet.thickness_m,
    )
