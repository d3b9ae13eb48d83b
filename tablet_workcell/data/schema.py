"""Relational schema of the experiment store (SQLAlchemy 2.0 declarative, typed).

One schema for SQLite (embedded default) and PostgreSQL (several cells sharing a store).
Migrations live in ``tablet_workcell/data/migrations`` (Alembic); the store refuses to
open a database whose schema is newer than this code. Units are SI and in the column
names. Every result row links to what it was made from (provenance): the recipe and its
material lots, the instruments, the raw recording, the model and software artifacts and
the configuration hash.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC timestamps on every backend (SQLite itself stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError(f"timestamp {value} has no time zone; store aware UTC datetimes")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime(), dict: JSON}


class Campaign(Base):
    __tablename__ = "campaigns"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    cell_id: Mapped[str] = mapped_column(String(64), default="cell")
    status: Mapped[str] = mapped_column(
        String(20), default="running"
    )  # running | paused | finished | aborted
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(default=None)
    config_hash: Mapped[str] = mapped_column(String(64), default="")
    software_artifact_id: Mapped[int | None] = mapped_column(ForeignKey("artifacts.id"), default=None)
    description: Mapped[dict] = mapped_column(default=dict)  # objectives, search space, operator notes

    experiments: Mapped[list[Experiment]] = relationship(
        back_populates="campaign", order_by="Experiment.sequence"
    )


class Material(Base):
    __tablename__ = "materials"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    role: Mapped[str] = mapped_column(String(20), default="")


class MaterialLot(Base):
    __tablename__ = "material_lots"
    __table_args__ = (UniqueConstraint("material_name", "lot_code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    material_name: Mapped[str] = mapped_column(ForeignKey("materials.name"))
    lot_code: Mapped[str] = mapped_column(String(100))
    supplier: Mapped[str] = mapped_column(String(200), default="")
    properties: Mapped[dict] = mapped_column(default=dict)


class Instrument(Base):
    __tablename__ = "instruments"
    __table_args__ = (UniqueConstraint("kind", "serial_number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))  # balance | feeder | press | pump | arm | camera
    model: Mapped[str] = mapped_column(String(200), default="")
    serial_number: Mapped[str] = mapped_column(String(100))
    firmware: Mapped[str] = mapped_column(String(100), default="")
    calibration: Mapped[dict] = mapped_column(default=dict)
    calibrated_at: Mapped[datetime | None] = mapped_column(default=None)


class Artifact(Base):
    """A versioned thing results depend on: software release, model file, configuration."""

    __tablename__ = "artifacts"
    __table_args__ = (UniqueConstraint("kind", "name", "sha256"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))  # software | model | config
    name: Mapped[str] = mapped_column(String(200))
    version: Mapped[str] = mapped_column(String(100), default="")
    sha256: Mapped[str] = mapped_column(String(64))


class Experiment(Base):
    __tablename__ = "experiments"
    __table_args__ = (UniqueConstraint("campaign_id", "sequence"), Index("ix_experiments_status", "status"))

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaigns.id"))
    sequence: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20))  # completed | failed | aborted
    failure_reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(default=None)
    target_tablet_mass_kg: Mapped[float] = mapped_column(Float)
    compaction_pressure_pa: Mapped[float] = mapped_column(Float)
    dwell_time_s: Mapped[float] = mapped_column(Float)
    punch_diameter_m: Mapped[float] = mapped_column(Float)
    strategy: Mapped[str] = mapped_column(String(40), default="")  # optimiser strategy that proposed it

    campaign: Mapped[Campaign] = relationship(back_populates="experiments")
    components: Mapped[list[RecipeComponent]] = relationship(order_by="RecipeComponent.position")
    measurements: Mapped[list[Measurement]] = relationship()


class RecipeComponent(Base):
    __tablename__ = "recipe_components"

    experiment_id: Mapped[str] = mapped_column(ForeignKey("experiments.id"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    material_name: Mapped[str] = mapped_column(ForeignKey("materials.name"))
    lot_id: Mapped[int | None] = mapped_column(ForeignKey("material_lots.id"), default=None)
    mass_fraction: Mapped[float] = mapped_column(Float)


class Measurement(Base):
    __tablename__ = "measurements"
    __table_args__ = (Index("ix_measurements_experiment_name", "experiment_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    experiment_id: Mapped[str] = mapped_column(ForeignKey("experiments.id"))
    name: Mapped[str] = mapped_column(String(100))
    value: Mapped[float] = mapped_column(Float)
    unit: Mapped[str] = mapped_column(String(20))
    instrument_id: Mapped[int | None] = mapped_column(ForeignKey("instruments.id"), default=None)
    analysis_result_id: Mapped[int | None] = mapped_column(ForeignKey("analysis_results.id"), default=None)


class Recording(Base):
    __tablename__ = "recordings"

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaigns.id"))
    # No foreign key: a per-experiment recording is finished (and registered) before the
    # experiment's record is written, which then refers to it by path.
    experiment_id: Mapped[str | None] = mapped_column(String(64), default=None, index=True)
    path: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64), default="")
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(default=None)
    message_count: Mapped[int] = mapped_column(Integer, default=0)
    size_bytes: Mapped[int] = mapped_column(Integer, default=0)


class AnalysisResult(Base):
    """A derived result and everything needed to derive it again."""

    __tablename__ = "analysis_results"

    id: Mapped[int] = mapped_column(primary_key=True)
    experiment_id: Mapped[str] = mapped_column(ForeignKey("experiments.id"))
    kind: Mapped[str] = mapped_column(String(40))  # compaction | breaking | disintegration
    result: Mapped[dict] = mapped_column(default=dict)
    inputs: Mapped[dict] = mapped_column(default=dict)  # instrument settings, topics, time range
    recording_id: Mapped[int | None] = mapped_column(ForeignKey("recordings.id"), default=None)
    model_artifact_id: Mapped[int | None] = mapped_column(ForeignKey("artifacts.id"), default=None)
    software_artifact_id: Mapped[int | None] = mapped_column(ForeignKey("artifacts.id"), default=None)
    config_hash: Mapped[str] = mapped_column(String(64), default="")
    supersedes_id: Mapped[int | None] = mapped_column(ForeignKey("analysis_results.id"), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Event(Base):
    __tablename__ = "events"
    __table_args__ = (Index("ix_events_campaign_time", "campaign_id", "time"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[str | None] = mapped_column(ForeignKey("campaigns.id"), default=None)
    experiment_id: Mapped[str | None] = mapped_column(ForeignKey("experiments.id"), default=None)
    time: Mapped[datetime] = mapped_column(default=utcnow)
    kind: Mapped[str] = mapped_column(String(20))  # fault | operator | estop | info
    source: Mapped[str] = mapped_column(String(100), default="")
    message: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict] = mapped_column(default=dict)
