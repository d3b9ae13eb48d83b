"""Insert rate of experiment records into the store: SQLite and PostgreSQL, same run.

    .venv/bin/python bench/store_insert.py [--experiments 300] [--output bench/results/store_insert.json]

Why: a cell makes about one tablet a minute, so the store is never the bottleneck of one
cell; the figure that matters is headroom when several cells share one PostgreSQL store
and when campaigns are imported or re-derived in bulk. Each experiment (recipe with
lots, 11 measurements with instruments, one analysis with provenance, events) is one
transaction, as the cell writes it. Records are built from the twin before timing.

Baseline in the same run: the same rows written with plain DB-API ``executemany`` on
SQLite (one transaction per experiment, no ORM, no shared-row upserts), to show what the
store's typed layer and integrity checks cost.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sqlite3
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from tablet_workcell.data.local_postgres import LocalPostgres
from tablet_workcell.data.records import ExperimentRecord
from tablet_workcell.data.store import ExperimentStore
from tablet_workcell.data.synthetic import twin_record

LOG = logging.getLogger("store_insert")
BLENDS = ({"mcc": 0.6, "lactose": 0.35, "ccs": 0.04, "mgst": 0.01}, {"mcc": 0.5, "dcpa": 0.46, "ccs": 0.04})


def records(count: int) -> list[ExperimentRecord]:
    return [
        twin_record(
            "bench",
            i,
            BLENDS[i % 2],
            100e6 + 5e6 * (i % 20),
            seed=i,
            lots={"microcrystalline_cellulose": "MCC-1"},
        )
        for i in range(1, count + 1)
    ]


def store_rate(url: str, batch: list[ExperimentRecord]) -> dict[str, float]:
    with ExperimentStore.open(url) as store:
        store.ensure_campaign("bench")
        start = time.perf_counter()
        for record in batch:
            store.record_experiment(record)
        elapsed = time.perf_counter() - start
    rows = sum(1 + len(r.components) + len(r.measurements) + len(r.analyses) + len(r.events) for r in batch)
    return {"experiments_per_s": len(batch) / elapsed, "rows_per_s": rows / elapsed, "seconds": elapsed}


def raw_sqlite_rate(path: Path, batch: list[ExperimentRecord]) -> dict[str, float]:
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=FULL")
    connection.executescript(
        "create table experiments (id text primary key, campaign text, sequence int, status text, "
        "pressure real, dwell real);"
        "create table components (experiment text, position int, material text, fraction real);"
        "create table measurements (experiment text, name text, value real, unit text);"
    )
    start = time.perf_counter()
    for r in batch:
        with connection:
            connection.execute(
                "insert into experiments values (?,?,?,?,?,?)",
                (
                    r.experiment_id,
                    r.campaign_id,
                    r.sequence,
                    r.status,
                    r.compaction_pressure_pa,
                    r.dwell_time_s,
                ),
            )
            connection.executemany(
                "insert into components values (?,?,?,?)",
                [(r.experiment_id, i, c.material, c.mass_fraction) for i, c in enumerate(r.components)],
            )
            connection.executemany(
                "insert into measurements values (?,?,?,?)",
                [(r.experiment_id, m.name, m.value, m.unit) for m in r.measurements],
            )
    elapsed = time.perf_counter() - start
    connection.close()
    rows = sum(1 + len(r.components) + len(r.measurements) for r in batch)
    return {"experiments_per_s": len(batch) / elapsed, "rows_per_s": rows / elapsed, "seconds": elapsed}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--experiments", type=int, default=300)
    parser.add_argument(
        "--output", type=Path, default=Path(__file__).resolve().parent / "results" / "store_insert.json"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    LOG.info("building %d experiment records in the twin ...", args.experiments)
    batch = records(args.experiments)
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="store-bench-") as tmp:
        results["raw_sqlite_executemany (baseline)"] = raw_sqlite_rate(Path(tmp) / "raw.sqlite", batch)
        results["store_sqlite"] = store_rate(f"sqlite:///{Path(tmp) / 'store.sqlite'}", batch)
        with LocalPostgres() as server:
            results["store_postgresql"] = store_rate(server.url, batch)
    for name, figures in results.items():
        LOG.info(
            "%-36s %8.1f experiments/s  %9.0f rows/s",
            name,
            figures["experiments_per_s"],
            figures["rows_per_s"],
        )
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "experiments": args.experiments,
        "transaction": "one per experiment (recipe, measurements, analysis, events)",
        "results": results,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    LOG.info("written %s", args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
