"""Campaign export (CSV, Parquet, RO-Crate), the HTML report and the ``workcell data`` commands."""

from __future__ import annotations

import csv
import json
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tablet_workcell.data.commands import main
from tablet_workcell.data.export import (
    CRATE_FILE,
    ExportError,
    UnknownCampaignError,
    export_campaign,
    load_campaign,
    material_columns,
)
from tablet_workcell.data.records import (
    AnalysisRecord,
    ArtifactRef,
    ComponentRecord,
    EventRecord,
    ExperimentRecord,
    InstrumentRef,
    MeasurementRecord,
)
from tablet_workcell.data.report import (
    Objective,
    formulation_clusters,
    pareto_front,
    resolve_name,
    write_report,
)
from tablet_workcell.data.store import ExperimentStore

SOFTWARE = ArtifactRef("software", "tablet_workcell", "a" * 64, "1.4.0")
MODEL = ArtifactRef("model", "droplet-segmenter", "c" * 64, "0.7")
PRESS = InstrumentRef("press", "PR-001", model="MiniPress 10", firmware="2.1")
CAMERA = InstrumentRef("camera", "CAM-7", model="Goniometer cam")
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
FAULT = "feeder <jam> & retry"
REASON = "tablet broke on ejection <capping>"


def _experiment(
    campaign: str,
    sequence: int,
    pressure_mpa: float,
    strength_mpa: float,
    disintegration_s: float,
    recording_path: str = "",
) -> ExperimentRecord:
    recipe = (
        ComponentRecord("lactose monohydrate", 0.60 - 0.3 * (sequence % 2), "LM-01", "filler"),
        ComponentRecord("MCC PH-102", 0.39 + 0.3 * (sequence % 2), "MCC-7", "binder"),
        ComponentRecord("Mg stearate", 0.01, "", "lubricant"),
    )
    measurements = (
        MeasurementRecord("tensile_strength", strength_mpa * 1e6, "Pa", PRESS),
        MeasurementRecord("disintegration_time", disintegration_s, "s", CAMERA, analysis="disintegration"),
    )
    times = [0.0, 5.0, 10.0, 20.0, 40.0]
    analyses = (
        AnalysisRecord(
            "disintegration",
            {"time_s": times, "droplet_area_m2": [8e-6 * (1 - t / (disintegration_s + 40)) for t in times]},
            inputs={"topic": "/camera/side"},
            recording_path=recording_path,
            model=MODEL,
            config_hash="d" * 64,
        ),
    )
    return ExperimentRecord(
        experiment_id=f"{campaign}-E{sequence:03d}",
        campaign_id=campaign,
        sequence=sequence,
        status="completed",
        components=recipe,
        target_tablet_mass_kg=2.5e-4,
        compaction_pressure_pa=pressure_mpa * 1e6,
        dwell_time_s=0.5,
        punch_diameter_m=6e-3,
        measurements=measurements,
        analyses=analyses,
        strategy="qNEHVI",
        completed_at=T0 + timedelta(minutes=20 * sequence),
    )


@pytest.fixture(scope="module")
def store_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = tmp_path_factory.mktemp("store")
    url = f"sqlite:///{folder / 'workcell.sqlite'}"
    with ExperimentStore.open(url) as store:
        store.ensure_campaign(
            "C1",
            name="Lactose/MCC <screening>",
            config_hash="e" * 64,
            description={"objectives": {"tensile_strength": "maximise"}, "notes": "operator <Ann> & Bob"},
            software=SOFTWARE,
        )
        recording = folder / "C1-E001.mcap"
        store.register_recording("C1", recording, "b" * 64, 120, 4096, T0, T0 + timedelta(minutes=5))
        store.record_experiment(_experiment("C1", 1, 100, 1.2, 60, recording_path=str(recording)))
        store.record_experiment(_experiment("C1", 2, 150, 2.1, 95))
        store.record_experiment(_experiment("C1", 3, 200, 1.8, 40))
        store.record_experiment(_failed(_experiment("C1", 4, 250, 0.4, 30)))
        store.add_event(
            EventRecord("operator", "paused by Ann", source="panel", time=T0 + timedelta(hours=2)), "C1"
        )
        store.ensure_campaign("C2", name="Second campaign", software=SOFTWARE)
        store.record_experiment(_experiment("C2", 1, 120, 1.5, 70))
        store.ensure_campaign("C3-empty", name="Nothing yet")
    return url


def _failed(record: ExperimentRecord) -> ExperimentRecord:
    fault = EventRecord("fault", FAULT, source="feeder", time=T0 + timedelta(minutes=75))
    return replace(
        record, status="failed", failure_reason=REASON, measurements=(), analyses=(), events=(fault,)
    )


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


# ---------------------------------------------------------------------- tables
def test_export_writes_tidy_csv_and_parquet(store_url: str, tmp_path: Path) -> None:
    with ExperimentStore.open(store_url) as store:
        result = export_campaign(store, "C1", tmp_path / "out")
    names = [p.name for p in result.files]
    for table in ("experiments", "measurements", "events"):
        assert f"{table}.csv" in names and f"{table}.parquet" in names
    assert names[-1] == CRATE_FILE and result.warnings == ()

    experiments = _rows(tmp_path / "out" / "experiments.csv")
    assert [row["experiment_id"] for row in experiments] == ["C1-E001", "C1-E002", "C1-E003", "C1-E004"]
    first = experiments[0]
    assert float(first["compaction_pressure_pa"]) == 100e6 and float(first["punch_diameter_m"]) == 6e-3
    assert float(first["fraction_lactose_monohydrate"]) == pytest.approx(0.3)
    assert float(first["fraction_mcc_ph_102"]) == pytest.approx(0.69)
    assert first["lot_lactose_monohydrate"] == "LM-01" and first["lot_mg_stearate"] == ""
    assert experiments[3]["status"] == "failed" and experiments[3]["failure_reason"] == REASON

    measurements = _rows(tmp_path / "out" / "measurements.csv")
    assert len(measurements) == 6  # two per completed experiment, none for the failed one
    strength = next(
        m for m in measurements if m["experiment_id"] == "C1-E002" and m["name"] == "tensile_strength"
    )
    assert float(strength["value"]) == pytest.approx(2.1e6) and strength["unit"] == "Pa"
    assert strength["instrument_serial"] == "PR-001" and strength["analysis_kind"] == ""
    timing = next(m for m in measurements if m["name"] == "disintegration_time")
    assert timing["unit"] == "s" and timing["instrument_serial"] == "CAM-7"
    assert timing["analysis_kind"] == "disintegration"

    events = pq.read_table(tmp_path / "out" / "events.parquet").to_pylist()
    assert {e["message"] for e in events} == {FAULT, "paused by Ann"}
    fault = next(e for e in events if e["kind"] == "fault")
    assert fault["experiment_id"] == "C1-E004" and fault["time"] == T0 + timedelta(minutes=75)

    table = pq.read_table(tmp_path / "out" / "experiments.parquet")
    assert table.num_rows == 4
    assert str(table.schema.field("sequence").type) == "int64"
    assert str(table.schema.field("compaction_pressure_pa").type) == "double"
    assert table.column("fraction_mg_stearate").to_pylist() == pytest.approx([0.01] * 4)
    parquet_values = pq.read_table(tmp_path / "out" / "measurements.parquet").column("value").to_pylist()
    assert parquet_values == pytest.approx([float(m["value"]) for m in measurements])


def test_export_of_only_csv_replaces_an_earlier_export(store_url: str, tmp_path: Path) -> None:
    with ExperimentStore.open(store_url) as store:
        export_campaign(store, "C2", tmp_path)
        result = export_campaign(store, "C2", tmp_path, ["csv"])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in result.files)
    assert sorted(p.name for p in result.files) == sorted(
        ["experiments.csv", "measurements.csv", "events.csv", CRATE_FILE]
    )


def test_material_column_names_are_unique_identifiers() -> None:
    assert material_columns(["MCC PH-102", "mcc ph 102", "Ø"]) == {
        "MCC PH-102": "mcc_ph_102",
        "mcc ph 102": "mcc_ph_102_2",
        "Ø": "material",
    }


# ---------------------------------------------------------------------- RO-Crate
def test_rocrate_metadata_describes_files_units_and_provenance(store_url: str, tmp_path: Path) -> None:
    with ExperimentStore.open(store_url) as store:
        export_campaign(store, "C1", tmp_path)
    crate = json.loads((tmp_path / CRATE_FILE).read_text(encoding="utf-8"))
    assert crate["@context"][0] == "https://w3id.org/ro/crate/1.1/context"
    graph = {entity["@id"]: entity for entity in crate["@graph"]}
    descriptor = graph[CRATE_FILE]
    assert descriptor["conformsTo"] == {"@id": "https://w3id.org/ro/crate/1.1"}
    assert descriptor["about"] == {"@id": "./"}
    root = graph["./"]
    assert root["@type"] == "Dataset" and root["identifier"] == "C1"
    assert "operator <Ann> & Bob" in root["description"] and "e" * 64 in root["description"]
    assert {part["@id"] for part in root["hasPart"]} == {
        f"{t}.{f}" for t in ("experiments", "measurements", "events") for f in ("csv", "parquet")
    }
    for part in root["hasPart"]:
        entity = graph[part["@id"]]
        assert entity["@type"] == "File" and re.fullmatch("[0-9a-f]{64}", entity["sha256"])
        assert entity["encodingFormat"] in ("text/csv", "application/vnd.apache.parquet")
        assert int(entity["contentSize"]) == (tmp_path / part["@id"]).stat().st_size

    variables = {graph[v["@id"]]["name"]: graph[v["@id"]] for v in root["variableMeasured"]}
    assert variables["tensile_strength"]["@type"] == "PropertyValue"
    assert (
        variables["tensile_strength"]["unitText"] == "Pa"
        and variables["tensile_strength"]["unitCode"] == "PAL"
    )
    assert variables["disintegration_time"]["unitText"] == "s"
    assert variables["disintegration_time"]["unitCode"] == "SEC"

    software = [e for e in graph.values() if e["@type"] == "SoftwareApplication"]
    assert {(s["name"], s["version"], s["sha256"]) for s in software} == {
        ("tablet_workcell", "1.4.0", "a" * 64),
        ("droplet-segmenter", "0.7", "c" * 64),
    }
    instruments = {e["serialNumber"] for e in graph.values() if e["@type"] == "IndividualProduct"}
    assert instruments == {"PR-001", "CAM-7"}
    recordings = [e for e in graph.values() if e["@type"] == "File" and e["name"].endswith(".mcap")]
    assert len(recordings) == 1 and recordings[0]["sha256"] == "b" * 64
    assert recordings[0]["@id"].startswith("file:///")

    actions = [e for e in graph.values() if e["@type"] == "CreateAction"]
    assert {a["@id"] for a in actions} == {a["@id"] for a in root["mentions"]}
    analysis = next(a for a in actions if a["@id"].startswith("#analysis-") and a["object"])
    assert analysis["object"] == [{"@id": recordings[0]["@id"]}]
    assert {"@id": "measurements.csv"} in analysis["result"]
    assert {graph[i["@id"]]["name"] for i in analysis["instrument"]} == {"droplet-segmenter"}
    run = graph["#experiment-C1-E001"]
    assert {graph[i["@id"]]["@type"] for i in run["instrument"]} == {
        "SoftwareApplication",
        "IndividualProduct",
    }
    assert {graph[o["@id"]]["identifier"] for o in run["object"]} == {"LM-01", "MCC-7"}
    failed = graph["#experiment-C1-E004"]
    assert failed["actionStatus"] == {"@id": "http://schema.org/FailedActionStatus"}
    assert failed["error"] == REASON


def test_empty_campaign_is_exported_with_a_warning(store_url: str, tmp_path: Path) -> None:
    with ExperimentStore.open(store_url) as store:
        result = export_campaign(store, "C3-empty", tmp_path)
    assert len(result.warnings) == 1 and "no experiments" in result.warnings[0]
    assert _rows(tmp_path / "experiments.csv") == []
    assert pq.read_table(tmp_path / "measurements.parquet").num_rows == 0
    assert json.loads((tmp_path / CRATE_FILE).read_text())["@graph"][1]["variableMeasured"] == []


def test_export_errors_are_typed_and_say_what_to_do(store_url: str, tmp_path: Path) -> None:
    with ExperimentStore.open(store_url) as store:
        with pytest.raises(UnknownCampaignError, match=r"'C9'.*campaigns there: C1, C2, C3-empty"):
            export_campaign(store, "C9", tmp_path)
        blocker = tmp_path / "a-file"
        blocker.write_text("not a directory")
        with pytest.raises(ExportError, match="cannot write the export of campaign 'C1'"):
            export_campaign(store, "C1", blocker / "out")
        with pytest.raises(ExportError, match="xlsx"):
            export_campaign(store, "C1", tmp_path, ["xlsx"])


# ---------------------------------------------------------------------- report
def test_report_is_html_with_plots_next_to_it_and_escaped_text(store_url: str, tmp_path: Path) -> None:
    with ExperimentStore.open(store_url) as store:
        result = write_report(store, "C1", tmp_path / "report" / "c1.html")
    page = result.html.read_text(encoding="utf-8")
    sources = re.findall(r'<img src="([^"]+)"', page)
    assert sources == ["c1-objectives.png", "c1-pareto.png", "c1-tabletability.png", "c1-disintegration.png"]
    for source in sources:
        image = result.html.parent / source
        assert image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and image.stat().st_size > 5000
    assert [p.name for p in result.images] == sources and result.notes == ()
    assert "Lactose/MCC &lt;screening&gt;" in page and "<screening>" not in page
    assert "tablet broke on ejection &lt;capping&gt;" in page
    assert "feeder &lt;jam&gt; &amp; retry" in page and "paused by Ann" in page
    assert "operator &lt;Ann&gt; &amp; Bob" in page


def test_report_skips_plots_without_data_with_a_note(store_url: str, tmp_path: Path) -> None:
    with ExperimentStore.open(store_url) as store:
        empty = write_report(store, "C3-empty", tmp_path / "empty.html")
        other = write_report(
            store,
            "C2",
            tmp_path / "c2.html",
            pareto=(Objective("tensile_strength", "max"), Objective("porosity", "min")),
        )
    assert empty.images == () and len(empty.notes) == 4
    assert "no experiments yet" in empty.html.read_text(encoding="utf-8")
    assert not list(tmp_path.glob("empty-*.png"))
    assert any("porosity" in note for note in other.notes)
    assert "c2-pareto.png" not in other.html.read_text(encoding="utf-8")


def test_formulation_clusters_group_similar_recipes(store_url: str) -> None:
    with ExperimentStore.open(store_url) as store:
        experiments = load_campaign(store, "C1").experiments
    clusters = formulation_clusters(experiments, k=2)
    assert clusters["C1-E001"] == clusters["C1-E003"] != clusters["C1-E002"] == clusters["C1-E004"]
    assert clusters["C1-E001"].startswith("1: MCC PH-102 0.69, lactose monohydrate 0.30")


def test_measurement_names_with_a_unit_suffix_count_as_objectives() -> None:
    assert resolve_name("tensile_strength", ["tensile_strength_pa", "porosity"]) == "tensile_strength_pa"
    assert resolve_name("tensile_strength", ["tensile_strength", "tensile_strength_pa"]) == "tensile_strength"
    assert resolve_name("tensile_strength", ["tensile_strength_ratio"]) is None


def test_pareto_front_respects_the_goals() -> None:
    points = [(1.0, 10.0), (2.0, 20.0), (3.0, 15.0), (0.5, 5.0)]
    assert pareto_front(points, ("max", "min")) == [0, 2, 3]
    assert pareto_front(points, ("max", "max")) == [1, 2]


def test_campaign_snapshot_keeps_provenance(store_url: str) -> None:
    with ExperimentStore.open(store_url) as store:
        data = load_campaign(store, "C1")
    recorded = [a.recording_id for a in data.analyses if a.recording_id is not None]
    assert len(recorded) == 1 and data.recordings[recorded[0]].sha256 == "b" * 64
    analysis = data.analyses[0]
    assert (
        analysis.model_artifact_id is not None
        and data.artifacts[analysis.model_artifact_id].sha256 == "c" * 64
    )
    assert data.experiments[0].main_component == "MCC PH-102"


# ---------------------------------------------------------------------- commands
def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_data_list(store_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "data", "list", "--store", store_url)
    lines = out.splitlines()
    assert code == 0 and lines[0].split()[:3] == ["CAMPAIGN", "NAME", "CELL"]
    assert lines[1].startswith("C1 ") and lines[1].split()[-2:] == ["4", "1"]
    experiments_column = lines[0].index("EXPERIMENTS")  # aligned: the count starts under its header
    assert lines[1][experiments_column:].split()[0] == "4"

    code, out, _ = _run(capsys, "data", "list", "--store", store_url, "--campaign", "C1")
    assert code == 0 and "tensile_strength [Pa]" in out and len(out.splitlines()) == 5
    code, out, _ = _run(
        capsys, "data", "list", "--store", store_url, "--campaign", "C1", "--status", "failed"
    )
    assert code == 0 and "C1-E004" in out and REASON in out and "C1-E001" not in out


def test_data_show(store_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "data", "show", "C1-E001", "--store", store_url)
    assert code == 0
    assert "lactose monohydrate" in out and "lot LM-01" in out
    assert "compaction_pressure_pa" in out and "1e+08" in out
    assert re.search(r"tensile_strength\s+1\.2e\+06 Pa\s+\(press PR-001\)", out)
    assert f"C1-E001.mcap  sha256 {'b' * 64}" in out
    assert f"droplet-segmenter 0.7  sha256 {'c' * 64}" in out
    assert f"tablet_workcell 1.4.0  sha256 {'a' * 64}" in out
    assert f"config hash: {'d' * 64}" in out


def test_data_export_and_report(store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    licence = "https://spdx.org/licenses/CC-BY-4.0"
    argv = ["data", "export", "C1", "--out", str(tmp_path / "x"), "--format", "parquet", "--license", licence]
    code, out, _ = _run(capsys, *argv, "--store", store_url)
    assert code == 0 and "exported campaign C1" in out and "experiments.parquet" in out
    assert not (tmp_path / "x" / "experiments.csv").exists()
    root = json.loads((tmp_path / "x" / CRATE_FILE).read_text(encoding="utf-8"))["@graph"][1]
    assert root["license"] == {"@id": licence}
    code, out, _ = _run(
        capsys, "data", "export", "C3-empty", "--out", str(tmp_path / "y"), "--store", store_url
    )
    assert code == 0 and "warning: campaign 'C3-empty' has no experiments" in out
    code, out, _ = _run(
        capsys, "data", "report", "C1", "--out", str(tmp_path / "r.html"), "--store", store_url
    )
    assert code == 0 and f"written to {tmp_path / 'r.html'}" in out and "r-pareto.png" in out
    argv = ["data", "report", "C3-empty", "--out", str(tmp_path / "s.html"), "--colour-by", "cluster"]
    code, out, _ = _run(capsys, *argv, "--pareto", "tensile_strength:max,porosity:min", "--store", store_url)
    assert code == 0 and "Pareto front skipped: no measurement named tensile_strength or porosity." in out


def test_data_errors_are_one_line_and_exit_2(
    store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for argv in (
        ("data", "export", "NOPE", "--out", str(tmp_path)),
        ("data", "report", "NOPE", "--out", str(tmp_path / "r.html")),
        ("data", "list", "--campaign", "NOPE"),
    ):
        code, out, err = _run(capsys, *argv, "--store", store_url)
        assert code == 2 and out == ""
        assert err.startswith("error: campaign 'NOPE' is not in the store") and err.count("\n") == 1
        assert "campaigns there: C1, C2, C3-empty" in err
    code, _, err = _run(capsys, "data", "show", "C1-E999", "--store", store_url)
    assert code == 2 and "experiment 'C1-E999' is not in the store" in err
    code, _, err = _run(capsys, "data", "list", "--store", f"sqlite:///{tmp_path / 'missing.sqlite'}")
    assert code == 2 and "there is no experiment store at" in err
    assert not (tmp_path / "missing.sqlite").exists()
    with pytest.raises(SystemExit):
        main(["data", "export", "C1", "--out", str(tmp_path), "--format", "xlsx"])
