"""The RO-Crate 1.1 metadata (``ro-crate-metadata.json``) of a campaign export.

Kept apart from the table writing in :mod:`tablet_workcell.data.export` because it is a
vocabulary of its own: JSON-LD entities for the files (with sha256), the measured variables with
their units (UN/CEFACT codes), and provenance (software and model artifacts, instruments,
recordings, material lots, one CreateAction per experiment and per analysis).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tablet_workcell.data.snapshot import CampaignData

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
