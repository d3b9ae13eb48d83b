"""Experiment records made by the digital twin, for store tests, benchmarks and demos.

Each record looks like what the cell stores for a real experiment: the recipe with lots,
the process, the twin's observables as measurements with units and instruments, the
compaction analysis with its provenance, and failures (capped tablets) as failed
experiments with a reason.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import numpy as np

from tablet_workcell import __version__
from tablet_workcell.data.records import (
    AnalysisRecord,
    ArtifactRef,
    ComponentRecord,
    EventRecord,
    ExperimentRecord,
    InstrumentRef,
    MeasurementRecord,
)
from tablet_workcell.twin.experiment import ExperimentSpec, simulate_experiment

PRESS = InstrumentRef("press", "SIM-PRESS-001", model="simulated microscale press")
BALANCE = InstrumentRef("balance", "SIM-BAL-001", model="simulated MT-SICS balance")
CAMERA = InstrumentRef("camera", "SIM-CAM-001", model="simulated goniometer camera")
UNITS = {
    "dosed_mass_kg": ("kg", BALANCE),
    "dose_relative_error": ("1", BALANCE),
    "tablet_thickness_m": ("m", PRESS),
    "solid_fraction": ("1", PRESS),
    "porosity": ("1", PRESS),
    "tensile_strength_pa": ("Pa", PRESS),
    "breaking_force_n": ("N", PRESS),
    "ejection_force_n": ("N", PRESS),
    "elastic_recovery": ("1", PRESS),
    "absorption_time_s": ("s", CAMERA),
    "disintegration_time_s": ("s", CAMERA),
}
TWIN_MODEL = ArtifactRef("model", "tablet_workcell.twin", hashlib.sha256(b"twin-0.1").hexdigest(), "0.1")
SOFTWARE = ArtifactRef(
    "software", "tablet_workcell", hashlib.sha256(__version__.encode()).hexdigest(), __version__
)


def twin_record(
    campaign_id: str,
    sequence: int,
    fractions: Mapping[str, float],
    pressure_pa: float,
    seed: int,
    experiment_id: str | None = None,
    lots: Mapping[str, str] | None = None,
) -> ExperimentRecord:
    """Simulate one experiment in the twin and express it as a storable record."""
    truth = simulate_experiment(ExperimentSpec(fractions, compaction_pressure_pa=pressure_pa), seed)
    capped = bool(truth.observables["capped"])
    measurements = tuple(
        MeasurementRecord(
            name,
            value,
            UNITS[name][0],
            UNITS[name][1],
            analysis="compaction"
            if name in ("tablet_thickness_m", "solid_fraction", "porosity", "elastic_recovery")
            else "",
        )
        for name, value in truth.observables.items()
        if name in UNITS
        and np.isfinite(value)
        and not (capped and name in ("tensile_strength_pa", "breaking_force_n"))
    )
    record = truth.compaction.record
    analysis = AnalysisRecord(
        kind="compaction",
        result={
            "max_force_n": float(record.force_n.max()),
            "solid_fraction": truth.observables["solid_fraction"],
        },
        inputs={
            "die_diameter_m": record.die_diameter_m,
            "powder_mass_kg": record.powder_mass_kg,
            "true_density_kg_per_m3": record.true_density_kg_per_m3,
            "samples": int(record.time_s.size),
        },
        model=TWIN_MODEL,
        software=SOFTWARE,
    )
    return ExperimentRecord(
        experiment_id=experiment_id or f"{campaign_id}-{sequence:04d}",
        campaign_id=campaign_id,
        sequence=sequence,
        status="failed" if capped else "completed",
        failure_reason="tablet capped on ejection" if capped else "",
        components=tuple(
            ComponentRecord(material.name, fraction, (lots or {}).get(material.name, ""), material.role.value)
            for material, fraction in truth.formulation.components
        ),
        target_tablet_mass_kg=truth.spec.target_tablet_mass_kg,
        compaction_pressure_pa=pressure_pa,
        dwell_time_s=truth.spec.dwell_time_s,
        punch_diameter_m=truth.spec.punch_diameter_m,
        measurements=measurements,
        analyses=(analysis,),
        events=(EventRecord("fault", "tablet capped on ejection", "press"),) if capped else (),
        strategy="twin",
    )
