"""The measured records the analyses consume (SI units throughout): what a press streams.

They belong to the analysis, not to the twin: the press node turns the driver's streamed
record into these without touching the physics twin (import-linter contract
``hardware-path-without-simulators``), and the twin produces records of the same shape
(``tablet_workcell.twin.records`` re-exports them) so simulated and measured records go
through the same analyses.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]


class CompactionPhase(IntEnum):
    """Phase of each sample of a compaction record."""

    LOADING = 0
    DWELL = 1
    UNLOADING = 2


@dataclass(frozen=True)
class CompactionRecord:
    """In-die force-displacement record of one compaction, as the press streams it.

    ``displacement_m`` is the upper punch travel since it touched the powder bed
    (positive into the die), so the in-die powder height is
    ``fill_height_m - displacement_m``; with the powder mass, die diameter and the
    blend's true density this gives the in-die relative density used by Heckel.
    """

    time_s: FloatArray
    force_n: FloatArray
    displacement_m: FloatArray
    phase: NDArray[np.uint8]
    fill_height_m: float
    die_diameter_m: float
    powder_mass_kg: float
    true_density_kg_per_m3: float

    @property
    def punch_area_m2(self) -> float:
        return float(np.pi * self.die_diameter_m**2 / 4.0)


@dataclass(frozen=True)
class BreakingRecord:
    """Diametral compression record: platen force against platen travel until fracture."""

    time_s: FloatArray
    force_n: FloatArray
    displacement_m: FloatArray
    tablet_diameter_m: float
    tablet_thickness_m: float
