"""The compaction analysis run on twin data recovers the twin's own parameters.

Acceptance: Heckel yield pressure within 10 %, tensile strength within 5 %, on MCC,
lactose and a 3-component blend, across pressures and seeds.
"""

from __future__ import annotations

import numpy as np
import pytest

from tablet_workcell.analysis.breaking import tensile_strength
from tablet_workcell.analysis.compaction import analyse_compaction
from tablet_workcell.twin.blend import Formulation
from tablet_workcell.twin.compaction import compact

CASES = {
    "mcc": {"mcc": 1.0},
    "lactose": {"lactose": 1.0},
    "three_component": {"mcc": 0.5, "lactose": 0.45, "mgst": 0.05},
}


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize(("pressure_pa", "seed"), [(150e6, 0), (250e6, 1)])
def test_analysis_recovers_twin_yield_pressure_and_strength(name: str, pressure_pa: float, seed: int) -> None:
    blend = Formulation.of(CASES[name]).properties
    outcome = compact(blend, 100e-6, 8e-3, pressure_pa, 0.5, np.random.default_rng(seed))
    analysis = analyse_compaction(outcome.record, tablet_thickness_m=outcome.tablet.thickness_m)
    assert analysis.heckel.yield_pressure_pa == pytest.approx(blend.yield_pressure_pa, rel=0.10)
    assert analysis.heckel.method == "in-die"
    assert outcome.breaking is not None
    breaking = tensile_strength(outcome.breaking)
    assert breaking.tensile_strength_pa == pytest.approx(outcome.tablet.tensile_strength_pa, rel=0.05)
    assert analysis.elastic_recovery.out_of_die_recovery == pytest.approx(
        outcome.tablet.elastic_recovery, rel=0.05
    )


def test_low_pressure_curvature_of_mcc_is_left_out_of_the_heckel_region() -> None:
    blend = Formulation.of({"mcc": 1.0}).properties
    outcome = compact(blend, 100e-6, 8e-3, 200e6, 0.5, np.random.default_rng(3))
    heckel = analyse_compaction(outcome.record).heckel
    assert heckel.region_start_pa >= 2 * blend.rearrangement_pressure_pa
