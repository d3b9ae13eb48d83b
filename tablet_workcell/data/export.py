"""Export a campaign as tidy tables (CSV, Parquet) described by an RO-Crate 1.1 file.

An export is one directory::

    experiments.csv|parquet    one row per experiment: process parameters (SI unit in each
                               column name), ``fraction_<material>`` and ``lot_<material>``
    measurements.csv|parquet   one row per measured value (long form): unit, instrument, analysis
    events.csv|parquet         faults, operator actions and e-stops of the campaign
    ro-crate-metadata.json     JSON-LD (RO-Crate 1.1): the files, the measured variables with
                               units, and provenance (software and model artifacts, instruments,
                               recordings, one CreateAction per experiment and per analysis)

This module builds the tidy tables and writes the files. The campaign is read once into a
:class:`~tablet_workcell.data.snapshot.CampaignData` snapshot (:mod:`tablet_workcell.data.snapshot`)
and the crate is built by :mod:`tablet_workcell.data.rocrate`; their public names used by callers
(the loaders, the errors, ``CRATE_FILE``) are re-exported here so existing imports keep working.
"""

from __future__ import annotations

import csv
import json
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from tablet_workcell.data.rocrate import CRATE_FILE, rocrate_metadata
from tablet_workcell.data.snapshot import (
    PROCESS_COLUMNS,
    CampaignData,
    ExportError,
    UnknownCampaignError,
    load_campaign,
    load_experiment,
    require_campaign,
)
from tablet_workcell.data.store import ExperimentStore

__all__ = [
    "CRATE_FILE",
    "FORMATS",
    "CampaignData",
    "ExportError",
    "ExportResult",
    "TidyTable",
    "UnknownCampaignError",
    "campaign_tables",
    "export_campaign",
    "export_data",
    "load_campaign",
    "load_experiment",
    "material_columns",
    "require_campaign",
    "rocrate_metadata",
]

LOG = logging.getLogger(__name__)
FORMATS = ("csv", "parquet")


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
