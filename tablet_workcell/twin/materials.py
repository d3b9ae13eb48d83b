"""Library of common tabletting materials with literature-based properties.

Each value is a default to calibrate, not a constant (reported values depend strongly on
grade, particle size and method). Sources, as quoted in docs/physics notes:

* MCC (Avicel PH-102 type): Heckel yield pressure 80 MPa unlubricated, 85 MPa lubricated;
  at solid fraction 0.85 Young's modulus 3.78 / 3.54 GPa and tensile strength
  8.69 / 8.12 MPa (AAPS PharmSciTech 12:834, 2011, table III; PMC3167253). Bulk density
  0.28-0.34 g/cm3 for 100 um grades (supplier data). Heckel plots curve at low
  pressure. Swells on water ingress: up to 33 % within 15 s at 10-15 % porosity, 17 % at
  5 % porosity (J Pharm Sci 2015, PMID 26073446). Absorption-driven in sessile-drop
  tests (Int J Pharm 2021, 120382).
* Lactose (fragmenting): bulk 0.458 / tapped 0.864 g/mL (Pharmaceutics 13:814); water
  contact angle 61.7 deg by Washburn (Int J Pharm 92:81, 1993); near-linear Heckel plot.
* DCPA (anhydrous dicalcium phosphate): brittle, fragmenting; bulk 0.46 / tapped
  0.54 g/mL (supplier); strength insensitive to magnesium stearate; near-linear Heckel.
* Paracetamol: Py 34.2-45.5 MPa depending on particle size; fragmenting and highly
  elastic; laminates or caps with less than 25 % MCC (Drug Dev Ind Pharm 27:935, 2001).
* Croscarmellose sodium: superdisintegrant acting mainly by wicking, 2-5 %.
* Sodium starch glycolate: superdisintegrant acting by swelling, 2-8 %, optimum ~4 %,
  nearly insensitive to compaction pressure and lubricant.
* Magnesium stearate: hydrophobic lubricant; lowers bonding of plastically deforming
  materials as its fraction grows (over-lubrication).

Parameters without a direct published figure (effective pore radius scale, swelling
rate, Ryshkewitch porosity sensitivity of minor components) are set so that blends land
in published ranges (immediate-release disintegration 2.5-10 min, tensile strengths
1-10 MPa) and are marked "calibrated" below.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from enum import Enum

from tablet_workcell.errors import WorkcellError


class UnknownMaterialError(WorkcellError):
    """A formulation names a material that is not in the library."""


class Role(Enum):
    FILLER = "filler"
    API = "api"
    DISINTEGRANT = "disintegrant"
    LUBRICANT = "lubricant"


class Deformation(Enum):
    PLASTIC = "plastic"  # bonds weakened by lubricant films
    FRAGMENTING = "fragmenting"  # new clean surfaces: insensitive to lubricant
    ELASTIC = "elastic"


@dataclass(frozen=True)
class Material:
    """Properties of one pure powder (SI units)."""

    name: str
    role: Role
    deformation: Deformation
    true_density_kg_per_m3: float
    bulk_density_kg_per_m3: float
    # Compaction (in-die Heckel with a rearrangement term, see twin.compaction)
    yield_pressure_pa: float  # Heckel Py = 1/K
    heckel_intercept: float  # A of the linear Heckel region
    rearrangement_pressure_pa: float  # pressure scale over which the low-pressure curvature fades
    recovery_modulus_pa: float  # axial elastic recovery = P_max / this (calibrated)
    # Strength (Ryshkewitch-Duckworth sigma = sigma0 * exp(-k * porosity))
    sigma0_pa: float
    porosity_sensitivity: float  # k
    youngs_modulus_pa: float
    # Water
    contact_angle_rad: float  # advancing water contact angle on the compact
    pore_radius_scale_m: float  # effective Washburn radius at 15 % porosity (calibrated)
    swelling_capacity: float  # maximum fractional height increase of a pure compact
    swelling_rate_per_s: float  # first-order swelling rate constant (calibrated)
    wicking_boost: float = 0.0  # relative gain in water uptake per unit mass fraction (calibrated)
    soluble: bool = False


_deg = math.radians


MATERIALS: dict[str, Material] = {
    material.name: material
    for material in (
        Material(
            "microcrystalline_cellulose",
            Role.FILLER,
            Deformation.PLASTIC,
            true_density_kg_per_m3=1560.0,
            bulk_density_kg_per_m3=310.0,
            yield_pressure_pa=80e6,
            heckel_intercept=0.80,
            rearrangement_pressure_pa=12e6,
            recovery_modulus_pa=2.0e9,
            # 8.69 MPa at porosity 0.15 with k = 9.5: sigma0 = 8.69 / exp(-1.425)
            sigma0_pa=36.1e6,
            porosity_sensitivity=9.5,
            youngs_modulus_pa=3.78e9,
            contact_angle_rad=_deg(40.0),
            pore_radius_scale_m=18e-9,
            swelling_capacity=0.33,
            swelling_rate_per_s=0.12,
        ),
        Material(
            "lactose_monohydrate",
            Role.FILLER,
            Deformation.FRAGMENTING,
            true_density_kg_per_m3=1540.0,
            bulk_density_kg_per_m3=458.0,
            yield_pressure_pa=160e6,
            heckel_intercept=0.95,
            rearrangement_pressure_pa=3e6,
            recovery_modulus_pa=7.0e9,
            sigma0_pa=14.0e6,
            porosity_sensitivity=10.0,
            youngs_modulus_pa=3.2e9,
            contact_angle_rad=_deg(61.7),
            pore_radius_scale_m=9e-9,
            swelling_capacity=0.0,
            swelling_rate_per_s=0.0,
            soluble=True,
        ),
        Material(
            "dicalcium_phosphate_anhydrous",
            Role.FILLER,
            Deformation.FRAGMENTING,
            true_density_kg_per_m3=2890.0,
            bulk_density_kg_per_m3=460.0,
            yield_pressure_pa=300e6,
            heckel_intercept=0.75,
            rearrangement_pressure_pa=3e6,
            recovery_modulus_pa=12.0e9,
            sigma0_pa=9.0e6,
            porosity_sensitivity=7.0,
            youngs_modulus_pa=12.0e9,
            contact_angle_rad=_deg(35.0),
            pore_radius_scale_m=6e-9,
            swelling_capacity=0.0,
            swelling_rate_per_s=0.0,
        ),
        Material(
            "paracetamol",
            Role.API,
            Deformation.ELASTIC,
            true_density_kg_per_m3=1293.0,
            bulk_density_kg_per_m3=350.0,
            yield_pressure_pa=40e6,
            heckel_intercept=0.70,
            rearrangement_pressure_pa=5e6,
            recovery_modulus_pa=1.2e9,
            sigma0_pa=4.0e6,
            porosity_sensitivity=8.0,
            youngs_modulus_pa=8.0e9,
            contact_angle_rad=_deg(60.0),
            pore_radius_scale_m=10e-9,
            swelling_capacity=0.0,
            swelling_rate_per_s=0.0,
            soluble=True,
        ),
        Material(
            "croscarmellose_sodium",
            Role.DISINTEGRANT,
            Deformation.PLASTIC,
            true_density_kg_per_m3=1543.0,
            bulk_density_kg_per_m3=520.0,
            yield_pressure_pa=70e6,
            heckel_intercept=0.70,
            rearrangement_pressure_pa=8e6,
            recovery_modulus_pa=2.5e9,
            sigma0_pa=20.0e6,
            porosity_sensitivity=9.0,
            youngs_modulus_pa=3.0e9,
            contact_angle_rad=_deg(20.0),
            pore_radius_scale_m=40e-9,
            swelling_capacity=4.0,
            swelling_rate_per_s=0.5,
            wicking_boost=15.0,
        ),
        Material(
            "sodium_starch_glycolate",
            Role.DISINTEGRANT,
            Deformation.PLASTIC,
            true_density_kg_per_m3=1500.0,
            bulk_density_kg_per_m3=750.0,
            yield_pressure_pa=90e6,
            heckel_intercept=0.75,
            rearrangement_pressure_pa=6e6,
            recovery_modulus_pa=2.5e9,
            sigma0_pa=12.0e6,
            porosity_sensitivity=9.0,
            youngs_modulus_pa=3.0e9,
            contact_angle_rad=_deg(30.0),
            pore_radius_scale_m=20e-9,
            swelling_capacity=8.0,
            swelling_rate_per_s=0.35,
            wicking_boost=5.0,
        ),
        Material(
            "magnesium_stearate",
            Role.LUBRICANT,
            Deformation.PLASTIC,
            true_density_kg_per_m3=1092.0,
            bulk_density_kg_per_m3=160.0,
            yield_pressure_pa=30e6,
            heckel_intercept=0.60,
            rearrangement_pressure_pa=5e6,
            recovery_modulus_pa=2.0e9,
            sigma0_pa=1.0e6,
            porosity_sensitivity=8.0,
            youngs_modulus_pa=1.0e9,
            contact_angle_rad=_deg(120.0),
            pore_radius_scale_m=5e-9,
            swelling_capacity=0.0,
            swelling_rate_per_s=0.0,
        ),
    )
}

# Short names people type.
ALIASES = {
    "mcc": "microcrystalline_cellulose",
    "lactose": "lactose_monohydrate",
    "dcpa": "dicalcium_phosphate_anhydrous",
    "dcp": "dicalcium_phosphate_anhydrous",
    "apap": "paracetamol",
    "acetaminophen": "paracetamol",
    "ccs": "croscarmellose_sodium",
    "ssg": "sodium_starch_glycolate",
    "mgst": "magnesium_stearate",
}


def get_material(name: str) -> Material:
    """Look a material up by name or alias, or say which names exist."""
    key = ALIASES.get(name.strip().lower(), name.strip().lower())
    if key in MATERIALS:
        return MATERIALS[key]
    close = difflib.get_close_matches(key, [*MATERIALS, *ALIASES], n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    raise UnknownMaterialError(
        f"unknown material '{name}'.{hint} Known materials: {', '.join(sorted(MATERIALS))} "
        f"(aliases: {', '.join(sorted(ALIASES))})."
    )
