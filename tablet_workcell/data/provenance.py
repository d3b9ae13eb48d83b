"""Re-deriving stored results from their recorded inputs (provenance you can execute).

Every analysis result in the store names the recording it was computed from (MCAP path
and sha256), the topic and inputs it used, and the version of the analysis settings or
model (an artifact with a sha256). :func:`rederive` reads the recording again, checks
it is byte-for-byte the one recorded, runs the analysis with the same or a newer
version, and reports every figure that changed: the same version must reproduce the
stored result; a newer one shows the difference it makes.

Compaction is the first analysis wired this way: the press publishes
``tablet_workcell/msg/CompactionResult`` with the whole force-displacement record, and
:class:`CompactionAnalysisSettings` is the versioned "model" of its analysis.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory
from sqlalchemy.orm import Session

from tablet_workcell.analysis.compaction import elastic_recovery, work_of_compaction
from tablet_workcell.analysis.heckel import heckel_analysis
from tablet_workcell.analysis.kawakita import kawakita_analysis
from tablet_workcell.data import schema
from tablet_workcell.data.mcap_io import RecordingError
from tablet_workcell.data.records import ArtifactRef
from tablet_workcell.data.store import ExperimentStore
from tablet_workcell.errors import WorkcellError
from tablet_workcell.twin.records import CompactionRecord

COMPACTION_TOPIC = "/press/compaction_result"


class ProvenanceError(WorkcellError):
    """A stored result cannot be re-derived: its inputs are missing or changed."""


@dataclass(frozen=True)
class CompactionAnalysisSettings:
    """The versioned settings of the in-die compaction analysis (its "model")."""

    version: str = "1"
    heckel_min_span_pa: float = 15e6
    heckel_min_r_squared: float = 0.995
    heckel_grid_points: int = 41  # candidate region ends: a finer grid finds a wider linear region

    def artifact(self) -> ArtifactRef:
        canonical = json.dumps(dataclasses.asdict(self), sort_keys=True).encode()
        return ArtifactRef(
            "config", "compaction-analysis", hashlib.sha256(canonical).hexdigest(), self.version
        )


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def decoded_messages(path: Path, topic: str) -> list[Any]:
    """Messages of one topic, decoded with the schema embedded in the recording (no ROS needed)."""
    try:
        with Path(path).open("rb") as file:
            reader = make_reader(file, decoder_factories=[DecoderFactory()])
            return [decoded for _, _, _, decoded in reader.iter_decoded_messages(topics=[topic])]
    except (OSError, ValueError, KeyError, RuntimeError) as error:
        raise RecordingError(f"cannot read topic {topic} from the recording {path}: {error}") from error


def compaction_record_from_message(message: Any) -> CompactionRecord:
    """The analysis input from a CompactionResult message (as decoded from a recording)."""
    record = message.record
    return CompactionRecord(
        time_s=np.asarray(record.time_s, dtype=np.float64),
        force_n=np.asarray(record.force_n, dtype=np.float64),
        displacement_m=np.asarray(record.displacement_m, dtype=np.float64),
        phase=np.frombuffer(bytes(record.phase), dtype=np.uint8).copy(),
        fill_height_m=float(message.fill_height_m),
        die_diameter_m=float(message.tablet_diameter_m),
        powder_mass_kg=float(message.tablet_mass_kg),
        true_density_kg_per_m3=float(message.true_density_kg_per_m3),
    )


def analyse_compaction_message(message: Any, settings: CompactionAnalysisSettings) -> dict[str, float]:
    """The stored figures of one compaction, computed with ``settings``."""
    record = compaction_record_from_message(message)
    heckel = heckel_analysis(
        record,
        min_span_pa=settings.heckel_min_span_pa,
        min_r_squared=settings.heckel_min_r_squared,
        grid_points=settings.heckel_grid_points,
    )
    kawakita = kawakita_analysis(record)
    return {
        "max_pressure_pa": float(record.force_n.max() / record.punch_area_m2),
        "heckel_yield_pressure_pa": heckel.yield_pressure_pa,
        "heckel_region_start_pa": heckel.region_start_pa,
        "heckel_region_end_pa": heckel.region_end_pa,
        "kawakita_a": kawakita.a,
        "kawakita_b_per_pa": kawakita.b_per_pa,
        "work_of_compaction_j": work_of_compaction(record).loading_work_j,
        "in_die_elastic_recovery": elastic_recovery(record).in_die_recovery,
    }


Analyser = Callable[[Path, Mapping[str, Any], Any], dict[str, float]]


def _compaction_analyser(path: Path, inputs: Mapping[str, Any], settings: Any) -> dict[str, float]:
    messages = decoded_messages(path, str(inputs.get("topic", COMPACTION_TOPIC)))
    index = int(inputs.get("message_index", 0))
    if index >= len(messages):
        raise ProvenanceError(
            f"the recording {path} has {len(messages)} compaction messages; "
            f"the result was computed from message {index}."
        )
    return analyse_compaction_message(messages[index], settings)


ANALYSERS: dict[str, Analyser] = {"compaction": _compaction_analyser}


@dataclass(frozen=True)
class Rederivation:
    analysis_id: int
    kind: str
    recording: Path
    stored_version: str
    used_version: str
    stored: dict[str, float]
    recomputed: dict[str, float]
    differences: dict[str, tuple[float | None, float | None]]

    @property
    def reproduced(self) -> bool:
        return not self.differences


def rederive(store: ExperimentStore, analysis_id: int, settings: Any, rel_tol: float = 1e-9) -> Rederivation:
    """Recompute stored analysis ``analysis_id`` from its recording with ``settings``."""
    with Session(store.engine) as session:
        row = session.get(schema.AnalysisResult, analysis_id)
        if row is None:
            raise ProvenanceError(f"there is no analysis result {analysis_id} in the store.")
        recording = session.get(schema.Recording, row.recording_id) if row.recording_id else None
        model = session.get(schema.Artifact, row.model_artifact_id) if row.model_artifact_id else None
        kind, inputs, stored = row.kind, dict(row.inputs), dict(row.result)
    analyser = ANALYSERS.get(kind)
    if analyser is None:
        raise ProvenanceError(
            f"results of kind {kind!r} cannot be re-derived yet; known: {', '.join(ANALYSERS)}."
        )
    if recording is None:
        raise ProvenanceError(f"analysis {analysis_id} names no recording, so it cannot be re-derived.")
    path = Path(recording.path)
    if not path.is_file():
        raise ProvenanceError(
            f"the recording {path} of analysis {analysis_id} is missing; restore it from backup."
        )
    actual = sha256_of(path)
    if recording.sha256 and actual != recording.sha256:
        raise ProvenanceError(
            f"the recording {path} changed since it was stored (sha256 {actual[:12]}..., stored "
            f"{recording.sha256[:12]}...); results cannot be re-derived from altered data."
        )
    recomputed = analyser(path, inputs, settings)
    differences: dict[str, tuple[float | None, float | None]] = {}
    for name in sorted(set(stored) | set(recomputed)):
        before, after = stored.get(name), recomputed.get(name)
        if before is None or after is None or not math.isclose(before, after, rel_tol=rel_tol, abs_tol=0.0):
            differences[name] = (before, after)
    used = settings.artifact().version if hasattr(settings, "artifact") else ""
    return Rederivation(
        analysis_id, kind, path, model.version if model else "", used, stored, recomputed, differences
    )
