"""A campaign read from the experiment store into plain frozen dataclasses.

The export (:mod:`tablet_workcell.data.export`), the RO-Crate metadata
(:mod:`tablet_workcell.data.rocrate`), the report (:mod:`tablet_workcell.data.report`) and
``workcell data`` all work on one :class:`CampaignData` snapshot, read once and detached from
the database; this module owns that snapshot, the loaders that fill it and the errors they raise.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from tablet_workcell.data.schema import (
    AnalysisResult,
    Artifact,
    Campaign,
    Event,
    Experiment,
    Instrument,
    MaterialLot,
    Measurement,
    RecipeComponent,
    Recording,
)
from tablet_workcell.data.store import ExperimentStore, StoreError
from tablet_workcell.errors import WorkcellError

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

PROCESS_COLUMNS = ("target_tablet_mass_kg", "compaction_pressure_pa", "dwell_time_s", "punch_diameter_m")
D = TypeVar("D", bound="DataclassInstance")


class ExportError(WorkcellError):
    """A campaign cannot be exported or reported as asked; the message says why and what to do."""


class UnknownCampaignError(ExportError):
    """The campaign id is not in the store; the message lists the campaigns that are."""


@dataclass(frozen=True)
class ComponentData:
    material: str
    mass_fraction: float
    lot: str  # "" when no lot was recorded


@dataclass(frozen=True)
class ExperimentData:
    id: str
    sequence: int
    status: str
    failure_reason: str
    strategy: str
    created_at: datetime
    completed_at: datetime | None
    target_tablet_mass_kg: float
    compaction_pressure_pa: float
    dwell_time_s: float
    punch_diameter_m: float
    components: tuple[ComponentData, ...]

    @property
    def process(self) -> dict[str, float]:
        return {name: float(getattr(self, name)) for name in PROCESS_COLUMNS}

    @property
    def main_component(self) -> str:
        return max(self.components, key=lambda c: c.mass_fraction).material if self.components else ""


@dataclass(frozen=True)
class MeasurementData:
    experiment_id: str
    name: str
    value: float
    unit: str
    instrument_id: int | None
    analysis_result_id: int | None


@dataclass(frozen=True)
class AnalysisData:
    id: int
    experiment_id: str
    kind: str
    result: dict[str, Any]
    inputs: dict[str, Any]
    recording_id: int | None
    model_artifact_id: int | None
    software_artifact_id: int | None
    config_hash: str
    supersedes_id: int | None
    created_at: datetime


@dataclass(frozen=True)
class InstrumentData:
    id: int
    kind: str
    model: str
    serial_number: str
    firmware: str
    calibrated_at: datetime | None


@dataclass(frozen=True)
class ArtifactData:
    id: int
    kind: str  # software | model | config
    name: str
    version: str
    sha256: str


@dataclass(frozen=True)
class RecordingData:
    id: int
    experiment_id: str | None
    path: str
    sha256: str
    size_bytes: int
    started_at: datetime
    ended_at: datetime | None


@dataclass(frozen=True)
class EventData:
    id: int
    time: datetime
    kind: str
    source: str
    message: str
    experiment_id: str | None
    data: dict[str, Any]


@dataclass(frozen=True)
class CampaignData:
    """One campaign (or one experiment of it) as read from the store, detached from the database."""

    id: str
    name: str
    cell_id: str
    status: str
    started_at: datetime
    ended_at: datetime | None
    config_hash: str
    description: dict[str, Any]
    software_artifact_id: int | None
    experiments: tuple[ExperimentData, ...]
    measurements: tuple[MeasurementData, ...]
    analyses: tuple[AnalysisData, ...]
    events: tuple[EventData, ...]
    recordings: dict[int, RecordingData]
    instruments: dict[int, InstrumentData]
    artifacts: dict[int, ArtifactData]

    def materials(self) -> list[str]:
        """Materials in order of first use."""
        return list(dict.fromkeys(c.material for e in self.experiments for c in e.components))

    def variables(self) -> list[tuple[str, str]]:
        """The (measurement name, unit) pairs, sorted."""
        return sorted({(m.name, m.unit) for m in self.measurements})

    def current_analyses(self) -> list[AnalysisData]:
        """Analyses not superseded by a later one."""
        superseded = {a.supersedes_id for a in self.analyses}
        return [a for a in self.analyses if a.id not in superseded]


def load_campaign(store: ExperimentStore, campaign_id: str) -> CampaignData:
    """Read a whole campaign; :class:`UnknownCampaignError` names the campaigns there are."""
    with _read_errors(store, f"read campaign {campaign_id!r}"), Session(store.engine) as session:
        campaign = session.get(Campaign, campaign_id)
        if campaign is None:
            raise _unknown_campaign(store, session, campaign_id)
        return _snapshot(session, campaign, None)


def require_campaign(store: ExperimentStore, campaign_id: str) -> None:
    """Raise :class:`UnknownCampaignError` (naming the campaigns there are) unless the campaign exists."""
    with _read_errors(store, f"look up campaign {campaign_id!r}"), Session(store.engine) as session:
        if session.get(Campaign, campaign_id) is None:
            raise _unknown_campaign(store, session, campaign_id)


def _unknown_campaign(store: ExperimentStore, session: Session, campaign_id: str) -> UnknownCampaignError:
    known = session.scalars(select(Campaign.id).order_by(Campaign.started_at)).all()
    listing = ", ".join(known) if known else "none, the store is empty"
    return UnknownCampaignError(
        f"campaign {campaign_id!r} is not in the store at {store.url}; campaigns there: {listing}."
    )


def load_experiment(store: ExperimentStore, experiment_id: str) -> CampaignData:
    """Read one experiment with its campaign's header; ``experiments`` holds just that one."""
    with _read_errors(store, f"read experiment {experiment_id!r}"), Session(store.engine) as session:
        experiment = session.get(Experiment, experiment_id)
        if experiment is None:
            raise ExportError(
                f"experiment {experiment_id!r} is not in the store at {store.url}; "
                "`workcell data list --campaign CAMPAIGN_ID` lists the experiments of a campaign."
            )
        return _snapshot(session, experiment.campaign, experiment_id)


@contextmanager
def _read_errors(store: ExperimentStore, doing: str) -> Iterator[None]:
    try:
        yield
    except SQLAlchemyError as error:
        raise StoreError(f"could not {doing} from the store at {store.url}: {error}") from error


def _copy(cls: type[D], row: object, **given: Any) -> D:
    """A snapshot dataclass from an ORM row: the fields of the same name, plus ``given``."""
    return cls(**{f.name: getattr(row, f.name) for f in fields(cls) if f.name not in given}, **given)


def _snapshot(session: Session, campaign: Campaign, only: str | None) -> CampaignData:
    scope = select(Experiment.id).where(Experiment.campaign_id == campaign.id)
    if only:
        scope = scope.where(Experiment.id == only)
    components: dict[str, list[ComponentData]] = {}
    rows = session.execute(
        select(RecipeComponent, MaterialLot.lot_code)
        .outerjoin(MaterialLot, RecipeComponent.lot_id == MaterialLot.id)
        .where(RecipeComponent.experiment_id.in_(scope))
        .order_by(RecipeComponent.experiment_id, RecipeComponent.position)
    )
    for row, lot in rows:
        components.setdefault(row.experiment_id, []).append(
            ComponentData(row.material_name, row.mass_fraction, lot or "")
        )
    experiments = tuple(
        _copy(ExperimentData, e, components=tuple(components.get(e.id, ())))
        for e in session.scalars(
            select(Experiment).where(Experiment.id.in_(scope)).order_by(Experiment.sequence)
        )
    )
    measurements = tuple(
        _copy(MeasurementData, m)
        for m in session.scalars(
            select(Measurement)
            .join(Experiment)
            .where(Experiment.id.in_(scope))
            .order_by(Experiment.sequence, Measurement.id)
        )
    )
    analyses = tuple(
        _copy(AnalysisData, a)
        for a in session.scalars(
            select(AnalysisResult).where(AnalysisResult.experiment_id.in_(scope)).order_by(AnalysisResult.id)
        )
    )
    recording_scope: ColumnElement[bool] = Recording.campaign_id == campaign.id
    if only:
        used = {a.recording_id for a in analyses}
        recording_scope = and_(
            recording_scope, or_(Recording.experiment_id == only, Recording.id.in_(used - {None}))
        )
    recordings = {
        r.id: _copy(RecordingData, r) for r in session.scalars(select(Recording).where(recording_scope))
    }
    event_scope: ColumnElement[bool] = Event.experiment_id.in_(scope)
    if not only:
        event_scope = or_(Event.campaign_id == campaign.id, event_scope)
    events = tuple(
        _copy(EventData, v) for v in session.scalars(select(Event).where(event_scope).order_by(Event.time))
    )
    instrument_ids = {m.instrument_id for m in measurements} - {None}
    instruments = {
        i.id: _copy(InstrumentData, i)
        for i in session.scalars(select(Instrument).where(Instrument.id.in_(instrument_ids)))
    }
    artifact_ids = {campaign.software_artifact_id} | {a.model_artifact_id for a in analyses}
    artifact_ids |= {a.software_artifact_id for a in analyses}
    artifacts = {
        a.id: _copy(ArtifactData, a)
        for a in session.scalars(select(Artifact).where(Artifact.id.in_(artifact_ids - {None})))
    }
    return _copy(
        CampaignData,
        campaign,
        experiments=experiments,
        measurements=measurements,
        analyses=analyses,
        events=events,
        recordings=recordings,
        instruments=instruments,
        artifacts=artifacts,
    )
