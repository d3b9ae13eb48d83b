"""Export a campaign as tidy tables (CSV, Parquet) described by an RO-Crate 1.1 file.

An export is one directory::

    experiments.csv|parquet    one row per experiment: process parameters (SI unit in each
                               column name), ``fraction_<material>`` and ``lot_<material>``
    measurements.csv|parquet   one row per measured value (long form): unit, instrument, analysis
    events.csv|parquet         faults, operator actions and e-stops of the campaign
    ro-crate-metadata.json     JSON-LD (RO-Crate 1.1): the files, the measured variables with
                               units, and provenance (software and model artifacts, instruments,
                               recordings, one CreateAction per experiment and per analysis)

The campaign is read once into a :class:`CampaignData` snapshot of plain frozen dataclasses,
which the report (:mod:`tablet_workcell.data.report`) and ``workcell data`` reuse.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pyarrow as pa
import pyarrow.parquet as pq
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

LOG = logging.getLogger(__name__)
FORMATS = ("csv", "parquet")
CRATE_FILE = "ro-crate-metadata.json"
CRATE_SPEC = "https://w3id.org/ro/crate/1.1"
# RO-Crate 1.1 has no checksum term; Workflow Run Crate's sha256 is the one in common use.
CRATE_CONTEXT: list[Any] = [
    f"{CRATE_SPEC}/context",
    {"sha256": "https://w3id.org/ro/terms/workflow-run#sha256"},
]
MEDIA_TYPES = {"csv": "text/csv", "parquet": "application/vnd.apache.parquet"}
# UN/CEFACT common codes, the form schema.org's unitCode asks for.
UNIT_CODES = {
    "Pa": "PAL", "kPa": "KPA", "MPa": "MPA", "N": "NEW", "s": "SEC", "min": "MIN", "kg": "KGM",
    "g": "GRM", "mg": "MGM", "m": "MTR", "mm": "MMT", "m2": "MTK", "m^2": "MTK", "m3": "MTQ",
    "m^3": "MTQ", "kg/m3": "KMQ", "kg/m^3": "KMQ", "J": "JOU", "W": "WTT", "Hz": "HTZ",
    "K": "KEL", "degC": "CEL", "rad": "C81", "deg": "DD", "%": "P1", "1": "C62", "m/s": "MTS",
}  # fmt: skip
PROCESS_COLUMNS = ("target_tablet_mass_kg", "compaction_pressure_pa", "dwell_time_s", "punch_diameter_m")


if TYPE_CHECKING:
    from _typeshed import DataclassInstance

D = TypeVar("D", bound="DataclassInstance")


class ExportError(WorkcellError):
    """A campaign cannot be exported or reported as asked; the message says why and what to do."""


class UnknownCampaignError(ExportError):
    """The campaign id is not in the store; the message lists the campaigns that are."""


# ---------------------------------------------------------------------- snapshot
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


# ---------------------------------------------------------------------- tidy tables
@dataclass(frozen=True)
class TidyTable:
    """Rows of one table; ``columns`` are (name, type) with type string | int | float | time."""

    name: str
    columns: tuple[tuple[str, str], ...]
    rows: tuple[tuple[Any, ...], ...]

    def column(self, name: str) -> list[Any]:
        index = [c for c, _ in self.columns].index(name)
        return [row[index] for row in self.rows]


def material_columns(materials: Iterable[str]) -> dict[str, str]:
    """Material name -> column-name stem (lower case, ``_`` for anything else), unique."""
    stems: dict[str, str] = {}
    for material in materials:
        stem = re.sub(r"[^0-9a-z]+", "_", material.lower()).strip("_") or "material"
        candidate, n = stem, 1
        while candidate in stems.values():
            n += 1
            candidate = f"{stem}_{n}"
        stems[material] = candidate
    return stems


def campaign_tables(data: CampaignData) -> tuple[TidyTable, TidyTable, TidyTable]:
    """The experiments, measurements and events tables of a campaign."""
    stems = material_columns(data.materials())
    experiment_columns = (
        ("experiment_id", "string"), ("campaign_id", "string"), ("sequence", "int"), ("status", "string"),
        ("failure_reason", "string"), ("strategy", "string"), ("created_at", "time"),
        ("completed_at", "time"), *((name, "float") for name in PROCESS_COLUMNS),
        *((f"fraction_{stem}", "float") for stem in stems.values()),
        *((f"lot_{stem}", "string") for stem in stems.values()),
    )  # fmt: skip
    experiment_rows = []
    for e in data.experiments:
        fractions = dict.fromkeys(stems.values(), 0.0)
        lots: dict[str, str | None] = dict.fromkeys(stems.values())
        for c in e.components:
            fractions[stems[c.material]] += c.mass_fraction
            lots[stems[c.material]] = c.lot or None
        experiment_rows.append(
            (
                *(e.id, data.id, e.sequence, e.status, e.failure_reason, e.strategy),
                *(e.created_at, e.completed_at),
                *e.process.values(),
                *fractions.values(),
                *lots.values(),
            )
        )
    analysis_kind = {a.id: a.kind for a in data.analyses}
    measurement_columns = (
        ("experiment_id", "string"), ("name", "string"), ("value", "float"), ("unit", "string"),
        ("instrument_kind", "string"), ("instrument_serial", "string"), ("analysis_kind", "string"),
        ("analysis_id", "int"),
    )  # fmt: skip
    measurement_rows = []
    for m in data.measurements:
        instrument = data.instruments.get(m.instrument_id) if m.instrument_id is not None else None
        measurement_rows.append(
            (
                m.experiment_id,
                m.name,
                m.value,
                m.unit,
                instrument.kind if instrument else None,
                instrument.serial_number if instrument else None,
                analysis_kind.get(m.analysis_result_id) if m.analysis_result_id is not None else None,
                m.analysis_result_id,
            )
        )
    event_columns = (
        ("event_id", "int"), ("time", "time"), ("experiment_id", "string"), ("kind", "string"),
        ("source", "string"), ("message", "string"), ("data_json", "string"),
    )  # fmt: skip
    event_rows = [
        (v.id, v.time, v.experiment_id, v.kind, v.source, v.message, json.dumps(v.data, sort_keys=True))
        for v in data.events
    ]
    return (
        TidyTable("experiments", experiment_columns, tuple(experiment_rows)),
        TidyTable("measurements", measurement_columns, tuple(measurement_rows)),
        TidyTable("events", event_columns, tuple(event_rows)),
    )


_ARROW = {"string": pa.string(), "int": pa.int64(), "float": pa.float64(), "time": pa.timestamp("us", "UTC")}


def _write_table(table: TidyTable, path: Path, fmt: str) -> None:
    if fmt == "parquet":
        arrays = {name: pa.array(table.column(name), type=_ARROW[kind]) for name, kind in table.columns}
        pq.write_table(pa.table(arrays), path)
        return
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow([name for name, _ in table.columns])
        writer.writerows([_csv_cell(value) for value in row] for row in table.rows)


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    return repr(value) if isinstance(value, float) else str(value)


# ---------------------------------------------------------------------- export
@dataclass(frozen=True)
class ExportResult:
    campaign_id: str
    directory: Path
    files: tuple[Path, ...]  # every file written, the RO-Crate metadata file last
    warnings: tuple[str, ...]


def export_campaign(
    store: ExperimentStore,
    campaign_id: str,
    out_dir: Path,
    formats: Sequence[str] = FORMATS,
    *,
    license_id: str = "",
) -> ExportResult:
    """Export a campaign into ``out_dir`` (created if needed); the files of an earlier export there
    are replaced or, in a format not asked for now, removed."""
    return export_data(load_campaign(store, campaign_id), out_dir, formats, license_id=license_id)


def export_data(
    data: CampaignData, out_dir: Path, formats: Sequence[str] = FORMATS, *, license_id: str = ""
) -> ExportResult:
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise ExportError(
            f"export format {', '.join(unknown) or '(none)'} unknown; use {', '.join(FORMATS)}."
        )
    warnings = []
    if not data.experiments:
        warnings.append(f"campaign {data.id!r} has no experiments: the tables hold column headers only.")
    for name in sorted({n for n, _ in data.variables()}):
        units = sorted({u for n, u in data.variables() if n == name})
        if len(units) > 1:
            warnings.append(f"measurement {name!r} is stored in several units ({', '.join(units)}).")
    for warning in warnings:
        LOG.warning("export of %s: %s", data.id, warning)
    written: list[tuple[Path, str, str]] = []  # path, format, table name
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for table in campaign_tables(data):
            for fmt in FORMATS:
                path = out_dir / f"{table.name}.{fmt}"
                if fmt in formats:
                    _write_table(table, path, fmt)
                    written.append((path, fmt, table.name))
                else:
                    path.unlink(missing_ok=True)  # of an earlier export: the crate would not list it
        crate = rocrate_metadata(data, written, license_id=license_id)
        crate_path = out_dir / CRATE_FILE
        crate_path.write_text(json.dumps(crate, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    except OSError as error:
        raise ExportError(
            f"cannot write the export of campaign {data.id!r} to {out_dir}: {error.strerror or error}. "
            "Choose a directory you can write to."
        ) from error
    LOG.info("exported campaign %s to %s (%d files)", data.id, out_dir, len(written) + 1)
    return ExportResult(data.id, out_dir, (*(p for p, _, _ in written), crate_path), tuple(warnings))


# ---------------------------------------------------------------------- RO-Crate
def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _ref(entity_id: str) -> dict[str, str]:
    return {"@id": entity_id}


def _time(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value is not None else None


def _describe(data: CampaignData) -> str:
    done = sum(e.status == "completed" for e in data.experiments)
    text = (
        f"Tablet formulation campaign {data.id}{f' ({data.name})' if data.name else ''} on cell "
        f"{data.cell_id}: {len(data.experiments)} experiments, {done} completed. Status {data.status}."
    )
    if data.config_hash:
        text += f" Cell configuration sha256 {data.config_hash}."
    details = "; ".join(
        f"{key}: {value if isinstance(value, str) else json.dumps(value, sort_keys=True)}"
        for key, value in sorted(data.description.items())
    )
    return f"{text} {details}" if details else text


def rocrate_metadata(
    data: CampaignData, files: Sequence[tuple[Path, str, str]], *, license_id: str = ""
) -> dict[str, Any]:
    """The RO-Crate 1.1 JSON-LD document of an export; ``files`` are (path, format, table name)."""
    file_entities = [_file_entity(data, path, fmt, table) for path, fmt, table in files]
    variables = _variable_entities(data)
    provenance, recording_ids, lot_ids = _provenance_entities(data)
    results = [_ref(path.name) for path, _, table in files if table in ("experiments", "measurements")]
    actions = _actions(data, results, recording_ids, lot_ids)
    root: dict[str, Any] = {
        "@id": "./",
        "@type": "Dataset",
        "name": f"Campaign {data.name or data.id}",
        "identifier": data.id,
        "description": _describe(data),
        "datePublished": datetime.now(UTC).isoformat(timespec="seconds"),
        "hasPart": [_ref(entity["@id"]) for entity in file_entities],
        "variableMeasured": [_ref(entity["@id"]) for entity in variables],
        "mentions": [_ref(action["@id"]) for action in actions],
    }
    if data.ended_at is not None:
        root["temporalCoverage"] = f"{_time(data.started_at)}/{_time(data.ended_at)}"
    if license_id:
        root["license"] = _ref(license_id) if ":" in license_id else license_id
    descriptor = {
        "@id": CRATE_FILE,
        "@type": "CreativeWork",
        "conformsTo": _ref(CRATE_SPEC),
        "about": _ref("./"),
    }
    graph = [descriptor, root, *file_entities, *variables, *provenance, *actions]
    return {"@context": CRATE_CONTEXT, "@graph": graph}


def _file_entity(data: CampaignData, path: Path, fmt: str, table: str) -> dict[str, Any]:
    return {
        "@id": path.name,
        "@type": "File",
        "name": f"{table} table ({fmt})",
        "description": f"Tidy {table} table of campaign {data.id}.",
        "encodingFormat": MEDIA_TYPES[fmt],
        "contentSize": str(path.stat().st_size),
        "sha256": _sha256(path),
    }


def _variable_entities(data: CampaignData) -> list[dict[str, Any]]:
    names = [name for name, _ in data.variables()]
    entities = []
    for name, unit in data.variables():
        suffix = f"-{unit}" if names.count(name) > 1 else ""
        entity = {
            "@id": f"#variable-{name}{suffix}",
            "@type": "PropertyValue",
            "name": name,
            "unitText": unit,
        }
        if unit in UNIT_CODES:
            entity["unitCode"] = UNIT_CODES[unit]
        entity["description"] = f"{name} in {unit}: the rows of the measurements table with this name."
        entities.append(entity)
    return entities


def _provenance_entities(
    data: CampaignData,
) -> tuple[list[dict[str, Any]], dict[int, str], dict[tuple[str, str], str]]:
    """Artifacts, instruments, recordings and material lots; with the ids of recordings and lots."""
    entities: list[dict[str, Any]] = [
        {
            "@id": f"#artifact-{artifact.id}",
            "@type": "SoftwareApplication",
            "name": artifact.name,
            "version": artifact.version,
            "sha256": artifact.sha256,
            "applicationCategory": artifact.kind,
        }
        for artifact in data.artifacts.values()
    ]
    for instrument in data.instruments.values():
        entity = {
            "@id": f"#instrument-{instrument.id}",
            "@type": "IndividualProduct",
            "name": f"{instrument.kind} {instrument.model}".strip() + f" ({instrument.serial_number})",
            "serialNumber": instrument.serial_number,
            "category": instrument.kind,
            "model": instrument.model,
        }
        if instrument.firmware:
            entity["softwareVersion"] = instrument.firmware
        entities.append(entity)
    recording_ids = {}
    for recording in data.recordings.values():
        path = Path(recording.path)
        # MCAP files stay outside the crate: an absolute file URI where known, else a local id.
        recording_ids[recording.id] = path.as_uri() if path.is_absolute() else f"#recording-{recording.id}"
        entities.append(
            {
                "@id": recording_ids[recording.id],
                "@type": "File",
                "name": recording.path,
                "description": "MCAP recording of the raw instrument data (not copied into this crate).",
                "contentSize": str(recording.size_bytes),
                "sha256": recording.sha256,
                "dateCreated": _time(recording.started_at),
            }
        )
    lot_ids: dict[tuple[str, str], str] = {}
    for component in (c for e in data.experiments for c in e.components if c.lot):
        key = (component.material, component.lot)
        if key not in lot_ids:
            lot_ids[key] = f"#lot-{len(lot_ids) + 1}"
            entities.append(
                {
                    "@id": lot_ids[key],
                    "@type": "Product",
                    "name": f"{component.material} lot {component.lot}",
                    "identifier": component.lot,
                    "category": component.material,
                }
            )
    return entities, recording_ids, lot_ids


def _actions(
    data: CampaignData,
    results: list[dict[str, str]],
    recording_ids: dict[int, str],
    lot_ids: dict[tuple[str, str], str],
) -> list[dict[str, Any]]:
    """A CreateAction per experiment (instruments, lots -> tables) and per analysis (recording -> tables)."""
    software = (
        [_ref(f"#artifact-{data.software_artifact_id}")] if data.software_artifact_id is not None else []
    )
    instruments: dict[str, set[int]] = {}
    for m in data.measurements:
        if m.instrument_id is not None:
            instruments.setdefault(m.experiment_id, set()).add(m.instrument_id)
    actions = []
    for e in data.experiments:
        status = "CompletedActionStatus" if e.status == "completed" else "FailedActionStatus"
        action = {
            "@id": f"#experiment-{e.id}",
            "@type": "CreateAction",
            "name": f"Experiment {e.id} (#{e.sequence})",
            "startTime": _time(e.created_at),
            "endTime": _time(e.completed_at),
            "instrument": software + [_ref(f"#instrument-{i}") for i in sorted(instruments.get(e.id, ()))],
            "object": [_ref(lot_ids[(c.material, c.lot)]) for c in e.components if c.lot],
            "result": results,
            "actionStatus": _ref(f"http://schema.org/{status}"),
        }
        if e.failure_reason:
            action["error"] = e.failure_reason
        actions.append(action)
    for a in data.analyses:
        supersedes = f"; supersedes analysis {a.supersedes_id}" if a.supersedes_id else ""
        actions.append(
            {
                "@id": f"#analysis-{a.id}",
                "@type": "CreateAction",
                "name": f"{a.kind} analysis of {a.experiment_id}",
                "endTime": _time(a.created_at),
                "instrument": [
                    _ref(f"#artifact-{i}")
                    for i in (a.software_artifact_id, a.model_artifact_id)
                    if i is not None
                ],
                "object": [_ref(recording_ids[a.recording_id])] if a.recording_id in recording_ids else [],
                "result": results,
                "description": f"configuration sha256 {a.config_hash or 'not recorded'}{supersedes}",
            }
        )
    return actions
