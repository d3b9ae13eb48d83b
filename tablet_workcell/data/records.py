"""What the cell hands the store: plain, validated records of one experiment and its context.

Validation happens here, before any database work, so a bad value is refused with a
sentence naming it and nothing is half-written.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from tablet_workcell.errors import WorkcellError

Status = Literal["completed", "failed", "aborted"]
STATUSES: tuple[Status, ...] = ("completed", "failed", "aborted")
EVENT_KINDS = ("fault", "operator", "estop", "info")
FRACTION_TOLERANCE = 1e-3


class InvalidRecordError(WorkcellError):
    """A record cannot be stored as given; the message names the field and the fix."""


@dataclass(frozen=True)
class ArtifactRef:
    kind: Literal["software", "model", "config"]
    name: str
    sha256: str
    version: str = ""


@dataclass(frozen=True)
class InstrumentRef:
    kind: str
    serial_number: str
    model: str = ""
    firmware: str = ""
    calibration: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ComponentRecord:
    material: str
    mass_fraction: float
    lot: str = ""
    role: str = ""


@dataclass(frozen=True)
class MeasurementRecord:
    name: str
    value: float
    unit: str
    instrument: InstrumentRef | None = None
    analysis: str = ""  # kind of the AnalysisRecord of this experiment it was derived by, if any


@dataclass(frozen=True)
class AnalysisRecord:
    kind: str
    result: dict[str, Any]
    inputs: dict[str, Any] = field(default_factory=dict)
    recording_path: str = ""
    model: ArtifactRef | None = None
    software: ArtifactRef | None = None
    config_hash: str = ""


@dataclass(frozen=True)
class EventRecord:
    kind: str
    message: str
    source: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    time: datetime | None = None


@dataclass(frozen=True)
class ExperimentRecord:
    """Everything about one experiment, stored in one transaction."""

    experiment_id: str
    campaign_id: str
    sequence: int
    status: Status
    components: tuple[ComponentRecord, ...]
    target_tablet_mass_kg: float
    compaction_pressure_pa: float
    dwell_time_s: float
    punch_diameter_m: float
    measurements: tuple[MeasurementRecord, ...] = ()
    analyses: tuple[AnalysisRecord, ...] = ()
    events: tuple[EventRecord, ...] = ()
    failure_reason: str = ""
    strategy: str = ""
    completed_at: datetime | None = None

    def __post_init__(self) -> None:
        where = f"experiment {self.experiment_id!r}"
        if not self.experiment_id or not self.campaign_id:
            raise InvalidRecordError(f"{where}: experiment_id and campaign_id must not be empty.")
        if self.status not in STATUSES:
            raise InvalidRecordError(f"{where}: status {self.status!r} is not one of {', '.join(STATUSES)}.")
        if self.status != "completed" and not self.failure_reason:
            raise InvalidRecordError(
                f"{where}: a {self.status} experiment needs a failure_reason saying why."
            )
        if not self.components:
            raise InvalidRecordError(f"{where}: the recipe has no components.")
        total = sum(c.mass_fraction for c in self.components)
        if not math.isclose(total, 1.0, abs_tol=FRACTION_TOLERANCE):
            raise InvalidRecordError(f"{where}: component mass fractions sum to {total:.4f}, not 1.")
        for name in ("target_tablet_mass_kg", "compaction_pressure_pa", "dwell_time_s", "punch_diameter_m"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise InvalidRecordError(
                    f"{where}: {name} = {value!r} must be a finite, non-negative number."
                )
        _check_measurements(where, self.measurements, {a.kind for a in self.analyses})
        for event in self.events:
            if event.kind not in EVENT_KINDS:
                raise InvalidRecordError(f"{where}: event kind {event.kind!r} is not one of {EVENT_KINDS}.")


def _check_measurements(where: str, measurements: tuple[MeasurementRecord, ...], analyses: set[str]) -> None:
    for measurement in measurements:
        if not math.isfinite(measurement.value):
            raise InvalidRecordError(
                f"{where}: measurement {measurement.name!r} is {measurement.value!r}; store failures as a "
                "failed experiment with a failure_reason, not as NaN values."
            )
        if not measurement.unit:
            raise InvalidRecordError(f"{where}: measurement {measurement.name!r} has no unit (use '1').")
        if measurement.analysis and measurement.analysis not in analyses:
            raise InvalidRecordError(
                f"{where}: measurement {measurement.name!r} names analysis {measurement.analysis!r}, "
                "which this record does not contain."
            )
