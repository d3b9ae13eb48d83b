"""The experiment store: one interface over SQLite (default) or PostgreSQL (shared by cells).

Design choices:

* Every experiment is written in ONE transaction (experiment, recipe, measurements,
  analyses, events): a crash at any point leaves the whole record or none of it. SQLite
  runs in WAL mode with full synchronisation, so readers never block the writer and a
  committed experiment survives a power cut.
* Shared rows (materials, lots, instruments, artifacts) are inserted with
  ON CONFLICT DO NOTHING and read back, so two cells writing the same lot at the same
  moment cannot conflict.
* The schema is migrated with Alembic on open; a database whose schema is newer than
  this code is refused (old code must not write into a schema it does not know).
* Database failures become typed errors that say what happened, that nothing of the
  record was written, and what to do: StoreFullError (disk or size limit),
  StoreUnavailableError (server gone), SchemaTooNewError, DuplicateExperimentError.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session

from tablet_workcell.data import schema
from tablet_workcell.data.records import ArtifactRef, EventRecord, ExperimentRecord, InstrumentRef
from tablet_workcell.errors import WorkcellError

LOG = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
DEFAULT_PATH = Path("runs") / "workcell.sqlite"
STORE_ENV = "TABLET_WORKCELL_STORE"
NEW_SHARED_IDS = "new_shared_ids"
T = TypeVar("T")


class StoreError(WorkcellError):
    """Base class of experiment-store errors."""


class StoreUnavailableError(StoreError):
    """The database cannot be reached or went away."""


class StoreFullError(StoreError):
    """The disk or the database's size limit is full."""


class SchemaTooNewError(StoreError):
    """The database was migrated by newer software than this."""


class DuplicateExperimentError(StoreError):
    """An experiment with this id (or campaign sequence number) is already stored."""


@dataclass(frozen=True)
class CampaignSummary:
    id: str
    name: str
    cell_id: str
    status: str
    started_at: datetime
    experiments: int
    failed: int


@dataclass(frozen=True)
class ExperimentSummary:
    id: str
    campaign_id: str
    sequence: int
    status: str
    failure_reason: str
    recipe: dict[str, float]
    process: dict[str, float]
    measurements: dict[str, tuple[float, str]]


def default_url() -> str:
    """``$TABLET_WORKCELL_STORE`` or an SQLite file ``runs/workcell.sqlite`` in the workspace."""
    return os.environ.get(STORE_ENV) or f"sqlite:///{DEFAULT_PATH}"


def _alembic_config(connection: Any) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


class ExperimentStore:
    """Open with :meth:`open`; safe to share between threads (one session per call)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.url = engine.url.render_as_string(hide_password=True)
        self._shared_ids: dict[tuple[Any, ...], int] = {}

    # ------------------------------------------------------------------ opening
    @classmethod
    def open(cls, url: str | None = None, *, migrate: bool = True) -> ExperimentStore:
        url = url or default_url()
        if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, pool_pre_ping=True)
        if engine.dialect.name == "sqlite":
            event.listen(engine, "connect", _sqlite_pragmas)
        store = cls(engine)
        store._check_and_migrate(migrate)
        return store

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> ExperimentStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def schema_revision(self) -> str | None:
        with self._connection_errors("read the schema revision"), self.engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()

    def _check_and_migrate(self, migrate: bool) -> None:
        head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
        known = {rev.revision for rev in ScriptDirectory(str(MIGRATIONS)).walk_revisions()}
        current = self.schema_revision()
        if current is not None and current not in known:
            raise SchemaTooNewError(
                f"the experiment store at {self.url} has schema revision {current!r}, which this software "
                f"(newest revision {head!r}) does not know: it was written by a newer tablet_workcell. "
                "Upgrade tablet_workcell before using this store; nothing was changed."
            )
        if current == head:
            return
        if not migrate:
            raise StoreError(
                f"the experiment store at {self.url} has schema revision {current!r}, older than this "
                f"software's {head!r}; open it once for writing (any campaign does, or "
                "ExperimentStore.open(url)) to migrate it, then retry."
            )
        LOG.info("migrating experiment store %s from %s to %s", self.url, current, head)
        with self._connection_errors("migrate the schema"), self.engine.begin() as connection:
            command.upgrade(_alembic_config(connection), "head")

    # ------------------------------------------------------------------ errors
    @staticmethod
    def _reason(error: SQLAlchemyError) -> str:
        """The driver's message on one line (psycopg spreads hints over several)."""
        return " ".join(str(getattr(error, "orig", None) or error).split())

    @contextmanager
    def _connection_errors(self, doing: str, nothing_written: str = "") -> Iterator[None]:
        suffix = f" Nothing of {nothing_written} was written." if nothing_written else ""
        try:
            yield
        except IntegrityError as error:
            reason = self._reason(error)
            raise DuplicateExperimentError(
                f"could not {doing}: {reason}.{suffix} Use a new experiment id / sequence number."
            ) from error
        except OperationalError as error:
            reason = self._reason(error)
            if any(word in reason.lower() for word in ("full", "no space", "disk quota")):
                raise StoreFullError(
                    f"could not {doing}: the experiment store at {self.url} is full ({reason}).{suffix} "
                    "Free disk space or raise the size limit, then resume the campaign."
                ) from error
            raise StoreUnavailableError(
                f"could not {doing}: the experiment store at {self.url} is unavailable ({reason}).{suffix} "
                "Pause the campaign until the database is back."
            ) from error
        except SQLAlchemyError as error:
            raise StoreError(f"could not {doing}: {self._reason(error)}.{suffix}") from error

    def _write(self, doing: str, nothing_written: str, work: Callable[[Session], T]) -> T:
        with self._connection_errors(doing, nothing_written), Session(self.engine) as session:
            with session.begin():
                result = work(session)
            # Only ids of committed rows may be remembered (a rolled-back row never existed).
            self._shared_ids.update(session.info.get(NEW_SHARED_IDS, {}))
            return result

    # ------------------------------------------------------------------ shared rows
    def _shared_id(self, session: Session, table: Any, key: dict[str, Any], values: dict[str, Any]) -> int:
        """Id of a row shared between experiments and cells, inserting it if it is new.

        INSERT ... ON CONFLICT DO NOTHING, then read back: two cells adding the same lot at
        once both end up with the one row. Ids are remembered once committed, since shared
        rows are never deleted, which saves two queries per component and measurement.
        """
        cache_key = (table.__tablename__, *sorted(key.items()))
        cached = self._shared_ids.get(cache_key)
        if cached is not None:
            return cached
        insert = postgresql.insert if self.engine.dialect.name == "postgresql" else sqlite.insert
        session.execute(insert(table).values(**key, **values).on_conflict_do_nothing())
        found = session.scalars(select(table.id).filter_by(**key)).one()
        session.info.setdefault(NEW_SHARED_IDS, {})[cache_key] = found
        return int(found)

    def _insert_ignore(self, session: Session, table: Any, values: dict[str, Any]) -> None:
        insert = postgresql.insert if self.engine.dialect.name == "postgresql" else sqlite.insert
        session.execute(insert(table).values(**values).on_conflict_do_nothing())

    def _artifact_id(self, session: Session, ref: ArtifactRef) -> int:
        key = {"kind": ref.kind, "name": ref.name, "sha256": ref.sha256}
        return self._shared_id(session, schema.Artifact, key, {"version": ref.version})

    def _instrument_id(self, session: Session, ref: InstrumentRef) -> int:
        key = {"kind": ref.kind, "serial_number": ref.serial_number}
        values = {"model": ref.model, "firmware": ref.firmware, "calibration": ref.calibration}
        return self._shared_id(session, schema.Instrument, key, values)

    def _lot_id(self, session: Session, material: str, role: str, lot: str) -> int | None:
        if ("materials", material) not in self._shared_ids:  # materials are keyed by name: no id
            self._insert_ignore(session, schema.Material, {"name": material, "role": role})
            session.info.setdefault(NEW_SHARED_IDS, {})[("materials", material)] = 0
        if not lot:
            return None
        key = {"material_name": material, "lot_code": lot}
        return self._shared_id(session, schema.MaterialLot, key, {"supplier": "", "properties": {}})

    def register_artifact(self, ref: ArtifactRef) -> int:
        return self._write(
            "register an artifact", f"artifact {ref.name}", lambda s: self._artifact_id(s, ref)
        )

    def register_instrument(self, ref: InstrumentRef) -> int:
        return self._write(
            "register an instrument", f"instrument {ref.serial_number}", lambda s: self._instrument_id(s, ref)
        )

    # ------------------------------------------------------------------ campaigns
    def ensure_campaign(
        self,
        campaign_id: str,
        name: str = "",
        cell_id: str = "cell",
        config_hash: str = "",
        description: dict[str, Any] | None = None,
        software: ArtifactRef | None = None,
    ) -> None:
        """Create the campaign if it does not exist (idempotent: a restarted cell calls it again)."""

        def work(session: Session) -> None:
            software_id = self._artifact_id(session, software) if software else None
            self._insert_ignore(
                session,
                schema.Campaign,
                {
                    "id": campaign_id,
                    "name": name,
                    "cell_id": cell_id,
                    "status": "running",
                    "started_at": datetime.now(UTC),
                    "config_hash": config_hash,
                    "software_artifact_id": software_id,
                    "description": description or {},
                },
            )

        self._write("create the campaign", f"campaign {campaign_id}", work)

    def set_campaign_status(self, campaign_id: str, status: str) -> None:
        def work(session: Session) -> None:
            campaign = session.get(schema.Campaign, campaign_id)
            if campaign is None:
                raise StoreError(f"campaign {campaign_id!r} is not in the store; create it first.")
            campaign.status = status
            if status in ("finished", "aborted"):
                campaign.ended_at = datetime.now(UTC)

        self._write("update the campaign", f"the status of {campaign_id}", work)

    # ------------------------------------------------------------------ experiments
    def record_experiment(self, record: ExperimentRecord) -> None:
        """Store an experiment with everything in it, all or nothing."""
        self._write(
            "store the experiment",
            f"experiment {record.experiment_id}",
            lambda session: self._add_experiment(session, record),
        )

    def _add_experiment(self, session: Session, record: ExperimentRecord) -> None:
        if session.get(schema.Campaign, record.campaign_id) is None:
            raise StoreError(
                f"campaign {record.campaign_id!r} is not in the store; call ensure_campaign first. "
                f"Nothing of experiment {record.experiment_id} was written."
            )
        experiment = schema.Experiment(
            id=record.experiment_id,
            campaign_id=record.campaign_id,
            sequence=record.sequence,
            status=record.status,
            failure_reason=record.failure_reason,
            strategy=record.strategy,
            completed_at=record.completed_at or datetime.now(UTC),
            target_tablet_mass_kg=record.target_tablet_mass_kg,
            compaction_pressure_pa=record.compaction_pressure_pa,
            dwell_time_s=record.dwell_time_s,
            punch_diameter_m=record.punch_diameter_m,
        )
        session.add(experiment)
        session.flush()  # duplicate ids fail here, before anything else is added
        for position, component in enumerate(record.components):
            lot_id = self._lot_id(session, component.material, component.role, component.lot)
            session.add(
                schema.RecipeComponent(
                    experiment_id=record.experiment_id,
                    position=position,
                    material_name=component.material,
                    lot_id=lot_id,
                    mass_fraction=component.mass_fraction,
                )
            )
        analysis_ids: dict[str, int] = {}
        for analysis in record.analyses:
            recording_id = None
            if analysis.recording_path:
                recording_id = session.scalars(
                    select(schema.Recording.id).filter_by(path=analysis.recording_path)
                ).first()
            row = schema.AnalysisResult(
                experiment_id=record.experiment_id,
                kind=analysis.kind,
                result=analysis.result,
                inputs=analysis.inputs,
                recording_id=recording_id,
                config_hash=analysis.config_hash,
                model_artifact_id=self._artifact_id(session, analysis.model) if analysis.model else None,
                software_artifact_id=self._artifact_id(session, analysis.software)
                if analysis.software
                else None,
            )
            session.add(row)
            session.flush()
            analysis_ids[analysis.kind] = row.id
        for measurement in record.measurements:
            instrument_id = (
                self._instrument_id(session, measurement.instrument) if measurement.instrument else None
            )
            session.add(
                schema.Measurement(
                    experiment_id=record.experiment_id,
                    name=measurement.name,
                    value=measurement.value,
                    unit=measurement.unit,
                    instrument_id=instrument_id,
                    analysis_result_id=analysis_ids.get(measurement.analysis),
                )
            )
        for item in record.events:
            session.add(self._event_row(item, record.campaign_id, record.experiment_id))

    @staticmethod
    def _event_row(item: EventRecord, campaign_id: str | None, experiment_id: str | None) -> schema.Event:
        return schema.Event(
            campaign_id=campaign_id,
            experiment_id=experiment_id,
            time=item.time or datetime.now(UTC),
            kind=item.kind,
            source=item.source,
            message=item.message,
            data=item.data,
        )

    def add_event(
        self, item: EventRecord, campaign_id: str | None = None, experiment_id: str | None = None
    ) -> None:
        self._write(
            "store the event",
            f"event {item.message!r}",
            lambda session: session.add(self._event_row(item, campaign_id, experiment_id)),
        )

    def register_recording(
        self,
        campaign_id: str,
        path: Path,
        sha256: str,
        message_count: int,
        size_bytes: int,
        started_at: datetime,
        ended_at: datetime,
        experiment_id: str | None = None,
    ) -> int:
        def work(session: Session) -> int:
            row = schema.Recording(
                campaign_id=campaign_id,
                experiment_id=experiment_id,
                path=str(path),
                sha256=sha256,
                started_at=started_at,
                ended_at=ended_at,
                message_count=message_count,
                size_bytes=size_bytes,
            )
            session.add(row)
            session.flush()
            return row.id

        return self._write("register the recording", f"recording {path}", work)

    # ------------------------------------------------------------------ reading
    def campaigns(self) -> list[CampaignSummary]:
        with self._connection_errors("list campaigns"), Session(self.engine) as session:
            counts = _count_by_campaign(session)
            failed = _count_by_campaign(session, schema.Experiment.status != "completed")
            rows = session.scalars(select(schema.Campaign).order_by(schema.Campaign.started_at)).all()
            return [
                CampaignSummary(
                    c.id, c.name, c.cell_id, c.status, c.started_at, counts.get(c.id, 0), failed.get(c.id, 0)
                )
                for c in rows
            ]

    def experiments(
        self, campaign_id: str | None = None, status: str | None = None
    ) -> list[ExperimentSummary]:
        with self._connection_errors("list experiments"), Session(self.engine) as session:
            query = select(schema.Experiment).order_by(
                schema.Experiment.campaign_id, schema.Experiment.sequence
            )
            if campaign_id:
                query = query.where(schema.Experiment.campaign_id == campaign_id)
            if status:
                query = query.where(schema.Experiment.status == status)
            return [self._summary(e) for e in session.scalars(query).all()]

    @staticmethod
    def _summary(experiment: schema.Experiment) -> ExperimentSummary:
        return ExperimentSummary(
            id=experiment.id,
            campaign_id=experiment.campaign_id,
            sequence=experiment.sequence,
            status=experiment.status,
            failure_reason=experiment.failure_reason,
            recipe={c.material_name: c.mass_fraction for c in experiment.components},
            process={
                "target_tablet_mass_kg": experiment.target_tablet_mass_kg,
                "compaction_pressure_pa": experiment.compaction_pressure_pa,
                "dwell_time_s": experiment.dwell_time_s,
                "punch_diameter_m": experiment.punch_diameter_m,
            },
            measurements={m.name: (m.value, m.unit) for m in experiment.measurements},
        )


def _count_by_campaign(session: Session, *where: Any) -> dict[str, int]:
    query = select(schema.Experiment.campaign_id, func.count()).where(*where)
    return {
        campaign: count for campaign, count in session.execute(query.group_by(schema.Experiment.campaign_id))
    }


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()
