"""Formulations (named mass fractions) and the properties of their blends.

Mixing rules, each stated because mixtures are NOT linear (Busignies et al., Eur J Pharm
Biopharm 64:51, 2006: strength and E of MCC/lactose/DCPA binaries deviate negatively
from mass-fraction averages; geometric-mean rules predict solid fraction within ~5 % but
strength only within 20-50 %):

* true and bulk density: volume additivity, 1/rho = sum(w_i / rho_i);
* Heckel K = 1/Py, intercept and rearrangement scale: volume-fraction averages of the
  non-lubricant components (Heckel mixture rule, linear in K);
* Ryshkewitch sigma0: geometric mean over volume fractions times a pairwise negative
  interaction (1 - 0.5 * sum_{i<j} phi_i phi_j); porosity sensitivity k: volume average;
* lubricant (magnesium stearate): not averaged but applied as films on the plastically
  deforming fraction: strength x exp(-0.068 * (w_lub / 1 %) * phi_plastic), matching
  MCC's 8.69 -> 8.12 MPa on lubrication (PMC3167253), and Py x (1 + 6 w_lub phi_plastic)
  (80 -> 85 MPa); fragmenting materials (lactose, DCPA) are insensitive;
* wetting: Cassie average of cos(theta) over surface fractions, with the lubricant's
  surface share amplified tenfold (it spreads as a film), so lubricant slows uptake;
* swelling: capacity-weighted average rate; capacities add by volume fraction.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property

from tablet_workcell.errors import WorkcellError
from tablet_workcell.twin.materials import Deformation, Material, Role, get_material

FRACTION_TOLERANCE = 1e-3
LUBRICANT_STRENGTH_LOSS_PER_PERCENT = 0.068
LUBRICANT_YIELD_GAIN = 6.0
LUBRICANT_SURFACE_SPREAD = 10.0
BINARY_STRENGTH_DEVIATION = 0.5


class FormulationError(WorkcellError):
    """A formulation is not a valid set of mass fractions."""


@dataclass(frozen=True)
class Formulation:
    """Materials and their mass fractions, summing to one. Build with :meth:`of`."""

    components: tuple[tuple[Material, float], ...]

    @classmethod
    def of(cls, fractions: Mapping[str, float], tolerance: float = FRACTION_TOLERANCE) -> Formulation:
        """Validate named mass fractions (names or aliases) into a formulation."""
        if not fractions:
            raise FormulationError(
                "the formulation is empty; give at least one material and its mass fraction."
            )
        merged: dict[str, tuple[Material, float]] = {}
        for name, fraction in fractions.items():
            if not isinstance(fraction, int | float) or not math.isfinite(fraction):
                raise FormulationError(
                    f"mass fraction of '{name}' is {fraction!r}; give a number between 0 and 1."
                )
            if not 0.0 <= fraction <= 1.0:
                raise FormulationError(
                    f"mass fraction of '{name}' is {fraction:g}, outside 0..1; fractions are parts of one."
                )
            material = get_material(name)
            if material.name in merged:
                raise FormulationError(
                    f"'{name}' and another entry both mean {material.name}; list each material once."
                )
            merged[material.name] = (material, float(fraction))
        total = sum(fraction for _, fraction in merged.values())
        if abs(total - 1.0) > tolerance:
            raise FormulationError(
                f"mass fractions sum to {total:.4f}, not 1 (tolerance {tolerance:g}); "
                "adjust them so they add up to one."
            )
        components = tuple((m, f / total) for m, f in merged.values() if f > 0.0)
        return cls(components)

    def fraction(self, role: Role) -> float:
        return sum(f for m, f in self.components if m.role is role)

    def mass_fraction_of(self, name: str) -> float:
        material = get_material(name)
        return sum(f for m, f in self.components if m.name == material.name)

    @cached_property
    def properties(self) -> BlendProperties:
        return blend_properties(self)


@dataclass(frozen=True)
class BlendProperties:
    """Effective properties of a blend (SI), as the compaction and water models use them."""

    true_density_kg_per_m3: float
    bulk_density_kg_per_m3: float
    yield_pressure_pa: float
    heckel_intercept: float
    rearrangement_pressure_pa: float
    recovery_modulus_pa: float
    sigma0_pa: float
    porosity_sensitivity: float
    youngs_modulus_pa: float
    contact_angle_rad: float
    pore_radius_scale_m: float
    swelling_capacity: float
    swelling_rate_per_s: float
    lubricant_fraction: float
    plastic_volume_fraction: float
    elastic_mass_fraction: float
    mcc_mass_fraction: float


def _volume_fractions(components: tuple[tuple[Material, float], ...]) -> list[tuple[Material, float]]:
    volumes = [(m, f / m.true_density_kg_per_m3) for m, f in components]
    total = sum(v for _, v in volumes)
    return [(m, v / total) for m, v in volumes]


def blend_properties(formulation: Formulation) -> BlendProperties:
    components = formulation.components
    true_density = 1.0 / sum(f / m.true_density_kg_per_m3 for m, f in components)
    bulk_density = 1.0 / sum(f / m.bulk_density_kg_per_m3 for m, f in components)
    lubricant = formulation.fraction(Role.LUBRICANT)

    structural = [(m, f) for m, f in components if m.role is not Role.LUBRICANT] or list(components)
    phis = _volume_fractions(tuple(structural))
    plastic = sum(phi for m, phi in phis if m.deformation is Deformation.PLASTIC)

    def average(attribute: str) -> float:
        return sum(phi * getattr(m, attribute) for m, phi in phis)

    yield_pressure = 1.0 / sum(phi / m.yield_pressure_pa for m, phi in phis)
    yield_pressure *= 1.0 + LUBRICANT_YIELD_GAIN * lubricant * plastic
    pairwise = sum(phis[i][1] * phis[j][1] for i in range(len(phis)) for j in range(i + 1, len(phis)))
    sigma0 = math.exp(sum(phi * math.log(m.sigma0_pa) for m, phi in phis))
    sigma0 *= 1.0 - BINARY_STRENGTH_DEVIATION * pairwise
    sigma0 *= math.exp(-LUBRICANT_STRENGTH_LOSS_PER_PERCENT * (lubricant / 0.01) * plastic)

    all_phis = _volume_fractions(components)
    surface = [
        (m, phi * (LUBRICANT_SURFACE_SPREAD if m.role is Role.LUBRICANT else 1.0)) for m, phi in all_phis
    ]
    surface_total = sum(s for _, s in surface)
    cos_theta = sum(s * math.cos(m.contact_angle_rad) for m, s in surface) / surface_total
    wicking = 1.0 + sum(f * m.wicking_boost for m, f in components)
    capacity = sum(phi * m.swelling_capacity for m, phi in all_phis)
    rate = (
        sum(phi * m.swelling_capacity * m.swelling_rate_per_s for m, phi in all_phis) / capacity
        if capacity > 0
        else 0.0
    )

    return BlendProperties(
        true_density_kg_per_m3=true_density,
        bulk_density_kg_per_m3=bulk_density,
        yield_pressure_pa=yield_pressure,
        heckel_intercept=average("heckel_intercept"),
        rearrangement_pressure_pa=average("rearrangement_pressure_pa"),
        recovery_modulus_pa=1.0 / sum(phi / m.recovery_modulus_pa for m, phi in phis),
        sigma0_pa=sigma0,
        porosity_sensitivity=average("porosity_sensitivity"),
        youngs_modulus_pa=math.exp(sum(phi * math.log(m.youngs_modulus_pa) for m, phi in phis)),
        contact_angle_rad=math.acos(max(-1.0, min(1.0, cos_theta))),
        pore_radius_scale_m=average("pore_radius_scale_m") * wicking,
        swelling_capacity=capacity,
        swelling_rate_per_s=rate,
        lubricant_fraction=lubricant,
        plastic_volume_fraction=plastic,
        elastic_mass_fraction=sum(f for m, f in components if m.deformation is Deformation.ELASTIC),
        mcc_mass_fraction=formulation.mass_fraction_of("microcrystalline_cellulose"),
    )
