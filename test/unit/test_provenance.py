"""A stored compaction result re-derived from its recording: same settings reproduce it,
newer settings show the difference, altered recordings are refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from rclpy.serialization import serialize_message
from sqlalchemy import select
from sqlalchemy.orm import Session

from tablet_workcell.data import schema
from tablet_workcell.data.mcap_io import McapRecorder, register_summary
from tablet_workcell.data.provenance import (
    COMPACTION_TOPIC,
    CompactionAnalysisSettings,
    ProvenanceError,
    analyse_compaction_message,
    decoded_messages,
    rederive,
)
from tablet_workcell.data.records import AnalysisRecord, ComponentRecord, ExperimentRecord
from tablet_workcell.data.store import ExperimentStore
from tablet_workcell.msg import CompactionResult
from tablet_workcell.twin.blend import Formulation
from tablet_workcell.twin.compaction import compact

V1 = CompactionAnalysisSettings()
V2 = CompactionAnalysisSettings(version="2", heckel_grid_points=81)


def compaction_message() -> CompactionResult:
    blend = Formulation.of({"mcc": 1.0}).properties
    outcome = compact(blend, 100e-6, 8e-3, 200e6, 0.5, np.random.default_rng(4))
    record = outcome.record
    message = CompactionResult(
        experiment_id="c1-0001",
        tablet_diameter_m=record.die_diameter_m,
        tablet_mass_kg=record.powder_mass_kg,
        fill_height_m=record.fill_height_m,
        true_density_kg_per_m3=record.true_density_kg_per_m3,
        success=True,
    )
    message.record.time_s = record.time_s.tolist()
    message.record.force_n = record.force_n.tolist()
    message.record.displacement_m = record.displacement_m.tolist()
    message.record.phase = record.phase.tobytes()
    return message


@pytest.fixture
def stored(tmp_path: Path) -> tuple[ExperimentStore, int, Path]:
    store = ExperimentStore.open(f"sqlite:///{tmp_path / 'store.sqlite'}")
    with McapRecorder.for_experiment(tmp_path / "recordings", "c1", "c1-0001") as recorder:
        recorder.add_channel(COMPACTION_TOPIC, "tablet_workcell/msg/CompactionResult")
        recorder.write(COMPACTION_TOPIC, serialize_message(compaction_message()), 1_000)
    summary = recorder.close()
    register_summary(store, summary)
    [message] = decoded_messages(summary.path, COMPACTION_TOPIC)
    result = analyse_compaction_message(message, V1)
    store.record_experiment(
        ExperimentRecord(
            "c1-0001",
            "c1",
            1,
            "completed",
            (ComponentRecord("microcrystalline_cellulose", 1.0),),
            100e-6,
            200e6,
            0.5,
            8e-3,
            analyses=(
                AnalysisRecord(
                    "compaction",
                    result,
                    {"topic": COMPACTION_TOPIC, "message_index": 0},
                    recording_path=str(summary.path),
                    model=V1.artifact(),
                ),
            ),
        )
    )
    with Session(store.engine) as session:
        analysis_id = session.scalars(select(schema.AnalysisResult.id)).one()
    return store, analysis_id, summary.path


def test_same_settings_reproduce_the_stored_result(stored: tuple[ExperimentStore, int, Path]) -> None:
    store, analysis_id, _ = stored
    again = rederive(store, analysis_id, V1)
    assert again.reproduced, again.differences
    assert again.stored_version == again.used_version == "1"
    assert again.stored["heckel_yield_pressure_pa"] == pytest.approx(80e6, rel=0.1)


def test_newer_settings_show_the_difference(stored: tuple[ExperimentStore, int, Path]) -> None:
    store, analysis_id, _ = stored
    newer = rederive(store, analysis_id, V2)
    assert not newer.reproduced
    assert "heckel_region_start_pa" in newer.differences
    assert "max_pressure_pa" not in newer.differences  # raw figures do not depend on the settings
    assert newer.used_version == "2"


def test_an_altered_recording_is_refused(stored: tuple[ExperimentStore, int, Path]) -> None:
    store, analysis_id, path = stored
    with path.open("r+b") as file:
        file.seek(200)
        file.write(b"\x00")
    with pytest.raises(ProvenanceError, match="changed since it was stored"):
        rederive(store, analysis_id, V1)
    path.unlink()
    with pytest.raises(ProvenanceError, match="is missing; restore it from backup"):
        rederive(store, analysis_id, V1)
