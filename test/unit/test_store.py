"""Experiment store on SQLite: round trip, validation, provenance, faults."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC
from pathlib import Path

import pytest
from sqlalchemy import event, select, text
from sqlalchemy.orm import Session

from tablet_workcell.data import schema
from tablet_workcell.data.records import ComponentRecord, InvalidRecordError, MeasurementRecord
from tablet_workcell.data.store import (
    DuplicateExperimentError,
    ExperimentStore,
    SchemaTooNewError,
    StoreError,
    StoreFullError,
)
from tablet_workcell.data.synthetic import twin_record

IR_BLEND = {"mcc": 0.6, "lactose": 0.35, "ccs": 0.04, "mgst": 0.01}


@pytest.fixture
def store(tmp_path: Path) -> ExperimentStore:
    opened = ExperimentStore.open(f"sqlite:///{tmp_path / 'store.sqlite'}")
    opened.ensure_campaign("c1", name="first", cell_id="cell-a")
    return opened


def test_experiment_round_trip_with_recipe_measurements_and_provenance(store: ExperimentStore) -> None:
    record = twin_record("c1", 1, IR_BLEND, 150e6, seed=0, lots={"microcrystalline_cellulose": "MCC-2026-01"})
    store.record_experiment(record)
    [summary] = store.experiments("c1")
    assert summary.status == "completed"
    assert summary.recipe == pytest.approx({c.material: c.mass_fraction for c in record.components})
    assert summary.measurements["tensile_strength_pa"][1] == "Pa"
    with Session(store.engine) as session:
        lot = session.scalars(select(schema.MaterialLot)).one()
        assert (lot.material_name, lot.lot_code) == ("microcrystalline_cellulose", "MCC-2026-01")
        analysis = session.scalars(select(schema.AnalysisResult)).one()
        model = session.get(schema.Artifact, analysis.model_artifact_id)
        assert model is not None and len(model.sha256) == 64
        porosity = session.scalars(select(schema.Measurement).filter_by(name="porosity")).one()
        assert porosity.analysis_result_id == analysis.id and porosity.instrument_id is not None
        completed = session.scalars(select(schema.Experiment)).one().completed_at
        assert completed is not None and completed.tzinfo == UTC


def test_failed_experiment_keeps_its_reason_and_fault_event(store: ExperimentStore) -> None:
    store.record_experiment(twin_record("c1", 1, {"apap": 1.0}, 150e6, seed=0))
    [failed] = store.experiments("c1", status="failed")
    assert failed.failure_reason == "tablet capped on ejection"
    assert "tensile_strength_pa" not in failed.measurements
    [campaign] = store.campaigns()
    assert (campaign.experiments, campaign.failed) == (1, 1)


def test_duplicates_are_refused_and_nothing_half_written(store: ExperimentStore) -> None:
    store.record_experiment(twin_record("c1", 1, IR_BLEND, 150e6, seed=0))
    again = twin_record("c1", 1, IR_BLEND, 100e6, seed=1, experiment_id="other-id")
    with pytest.raises(DuplicateExperimentError, match="Nothing of experiment other-id was written"):
        store.record_experiment(again)
    with Session(store.engine) as session:
        assert (
            session.scalar(text("select count(*) from recipe_components where experiment_id='other-id'")) == 0
        )


def test_unknown_campaign_is_refused(store: ExperimentStore) -> None:
    with pytest.raises(StoreError, match="campaign 'nope' is not in the store; call ensure_campaign first"):
        store.record_experiment(twin_record("nope", 1, IR_BLEND, 150e6, seed=0))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"status": "lost"}, "status 'lost' is not one of"),
        ({"status": "failed"}, "needs a failure_reason"),
        ({"components": (ComponentRecord("mcc", 0.5),)}, "sum to 0.5000, not 1"),
        ({"compaction_pressure_pa": float("nan")}, "must be a finite, non-negative number"),
        (
            {"measurements": (MeasurementRecord("x", float("nan"), "Pa"),)},
            "store failures as a failed experiment",
        ),
        ({"measurements": (MeasurementRecord("x", 1.0, ""),)}, "has no unit"),
    ],
)
def test_invalid_records_are_refused_before_any_database_work(
    change: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidRecordError, match=message):
        dataclasses.replace(twin_record("c1", 1, IR_BLEND, 150e6, seed=0), **change)  # type: ignore[arg-type]


def test_full_disk_is_reported_and_leaves_no_partial_record(store: ExperimentStore) -> None:
    store.record_experiment(twin_record("c1", 1, IR_BLEND, 150e6, seed=0))
    with store.engine.connect() as connection:
        pages = connection.exec_driver_sql("PRAGMA page_count").scalar()
    event.listen(store.engine, "connect", lambda conn, _: conn.execute(f"PRAGMA max_page_count={pages}"))
    store.engine.dispose()
    with pytest.raises(
        StoreFullError, match=r"is full .* Nothing of experiment (c1-\d+) was written"
    ) as error:
        for sequence in range(2, 500):
            store.record_experiment(twin_record("c1", sequence, IR_BLEND, 150e6, seed=sequence))
    refused = re.search(r"experiment (c1-\d+)", str(error.value))
    assert refused is not None
    stored = {e.id: len(e.measurements) for e in store.experiments("c1")}
    assert refused.group(1) not in stored
    assert set(stored.values()) == {11}  # every stored experiment is whole


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'newer.sqlite'}"
    ExperimentStore.open(url).close()
    opened = ExperimentStore.open(url)
    with opened.engine.begin() as connection:
        connection.execute(text("update alembic_version set version_num='9999_from_the_future'"))
    opened.close()
    with pytest.raises(SchemaTooNewError, match=r"written by a newer tablet_workcell\. Upgrade"):
        ExperimentStore.open(url)


def test_reopening_is_idempotent_and_keeps_data(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'again.sqlite'}"
    with ExperimentStore.open(url) as first:
        first.ensure_campaign("c1")
        first.ensure_campaign("c1")  # a restarted cell calls it again
        first.record_experiment(twin_record("c1", 1, IR_BLEND, 150e6, seed=0))
    with ExperimentStore.open(url) as second:
        assert second.schema_revision() == "0001"
        assert [e.id for e in second.experiments()] == ["c1-0001"]
