"""What the press driver returns: streamed records as read-only numpy arrays, with summaries.

SI units throughout. Phases use :class:`~tablet_workcell.devices.press.codec.Phase`
codes, whose 0-2 (loading, dwell, unloading) are those of the twin's CompactionPhase and
of the ROS ForceDisplacementRecord, so ``result.in_die()`` converts to either without a
lookup table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from tablet_workcell.devices.press.codec import (
    BreakingSummary,
    CompactionSummary,
    EjectionSummary,
    Phase,
    Sample,
)

FloatArray = NDArray[np.float64]


def _frozen(values: Sequence[float] | np.ndarray, dtype: type = np.float64) -> np.ndarray:
    array: np.ndarray = np.asarray(values, dtype=dtype)
    array.flags.writeable = False
    return array


@dataclass(frozen=True)
class StreamedRecord:
    """Samples of one cycle, as parallel arrays of equal length."""

    time_s: FloatArray  # since the stroke started (first punch / platen contact)
    force_n: FloatArray
    displacement_m: FloatArray  # punch or platen travel since contact, positive into the material
    phase: NDArray[np.uint8]  # Phase codes

    @classmethod
    def from_samples(cls, samples: Sequence[Sample]) -> StreamedRecord:
        return cls(
            _frozen([s.time_s for s in samples]),
            _frozen([s.force_n for s in samples]),
            _frozen([s.displacement_m for s in samples]),
            _frozen([int(s.phase) for s in samples], np.uint8),
        )

    def __len__(self) -> int:
        return int(self.time_s.size)

    def select(self, *phases: Phase) -> StreamedRecord:
        """Only the samples in ``phases``, in order."""
        mask = np.isin(self.phase, [int(p) for p in phases])
        return StreamedRecord(
            _frozen(self.time_s[mask]),
            _frozen(self.force_n[mask]),
            _frozen(self.displacement_m[mask]),
            _frozen(self.phase[mask], np.uint8),
        )


@dataclass(frozen=True)
class CompactionResult:
    """One compaction cycle: loading, dwell, unloading and ejection, with the press's summary."""

    record: StreamedRecord
    summary: CompactionSummary
    target_pressure_pa: float
    dwell_s: float
    sample_rate_hz: int
    missing_samples: int  # samples the press counted but the driver did not receive intact

    def in_die(self) -> StreamedRecord:
        """The in-die part (loading, dwell, unloading): what a Heckel analysis takes."""
        return self.record.select(Phase.LOADING, Phase.DWELL, Phase.UNLOADING)

    def ejection(self) -> StreamedRecord:
        return self.record.select(Phase.EJECTION)


@dataclass(frozen=True)
class EjectionResult:
    record: StreamedRecord
    summary: EjectionSummary
    missing_samples: int


@dataclass(frozen=True)
class BreakingResult:
    """A diametral compression test: platen force against platen travel until fracture."""

    record: StreamedRecord
    summary: BreakingSummary
    platen_speed_m_per_s: float
    missing_samples: int
