"""The optimiser node over its services, and its restart from the experiment store."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from rclpy.client import Client

from tablet_workcell.bringup.description import load_graph
from tablet_workcell.bringup.paths import default_graph_path
from tablet_workcell.bringup.processes import plan_processes
from tablet_workcell.bringup.supervisor import GraphSupervisor
from tablet_workcell.data.records import ComponentRecord, ExperimentRecord, MeasurementRecord
from tablet_workcell.data.store import ExperimentStore
from tablet_workcell.msg import ExperimentResult, Measurement
from tablet_workcell.ros.graph_probe import GraphProbe, ProbeError
from tablet_workcell.srv import ReportResult


def optimiser_graph(workspace: Path, store_url: str) -> Path:
    production = yaml.safe_load(default_graph_path().read_text())
    ros = dict(production["ros"])
    ros["fastdds_profile"] = str((default_graph_path().parent / ros["fastdds_profile"]).resolve())
    graph = {
        "ros": ros,
        "environment": production.get("environment", {}),
        "nodes": [
            {
                "name": "optimiser",
                "executable": "optimiser",
                "parameters": {
                    "config_path": str(default_graph_path().parent / "optimiser.yaml"),
                    "campaign_id": "opt",
                    "store_url": store_url,
                },
            }
        ],
    }
    path = workspace / "graph.yaml"
    path.write_text(yaml.safe_dump(graph))
    return path


def start_optimiser(workspace: Path, store_url: str, domain: int) -> GraphSupervisor:
    graph = load_graph(optimiser_graph(workspace, store_url), sim=False)
    return GraphSupervisor(
        plan_processes(graph, workspace / "params", domain, {**os.environ, **graph.environment})
    )


def report(probe: GraphProbe, request: ReportResult.Request) -> ReportResult.Response:
    client: Client[ReportResult.Request, ReportResult.Response] = probe.node.create_client(
        ReportResult, "/optimiser/report"
    )
    assert client.wait_for_service(timeout_sec=30)
    future = client.call_async(request)
    done = threading.Event()
    future.add_done_callback(lambda _: done.set())
    assert done.wait(30), "no answer from /optimiser/report"
    response = future.result()
    assert response is not None
    return response


@pytest.fixture
def probe(ros_domain_id: int) -> Iterator[GraphProbe]:
    with GraphProbe("optimiser_probe") as probe:
        yield probe


def measurements(**values: float) -> list[Any]:
    return [Measurement(name=name, value=value, unit="") for name, value in values.items()]


def test_suggest_report_and_restart_from_the_store(
    tmp_path: Path, ros_domain_id: int, probe: GraphProbe
) -> None:
    store_url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    with start_optimiser(tmp_path, store_url, ros_domain_id):
        probe.wait_for_nodes(["optimiser"])
        suggestions = probe.suggest(2).suggestions
        assert [s.recipe.experiment_id for s in suggestions] == ["opt-0001", "opt-0002"]
        for suggestion in suggestions:
            assert sum(c.mass_fraction for c in suggestion.recipe.components) == pytest.approx(1.0, abs=1e-12)
            assert 50e6 <= suggestion.recipe.compaction_pressure_pa <= 300e6
        good = report(
            probe,
            ReportResult.Request(
                experiment_id="opt-0001",
                outcome=ExperimentResult.OUTCOME_SUCCESS,
                measurements=measurements(tensile_strength_pa=3e6, disintegration_time_s=120.0),
            ),
        )
        assert good.accepted, good.message
        failed = report(
            probe,
            ReportResult.Request(
                experiment_id="opt-0002",
                outcome=ExperimentResult.OUTCOME_FAILED,
                failure_reason="capped on ejection",
            ),
        )
        assert failed.accepted and "capped" in failed.message
        unknown = report(
            probe,
            ReportResult.Request(
                experiment_id="opt-0999", measurements=measurements(tensile_strength_pa=1.0)
            ),
        )
        assert not unknown.accepted and "never suggested" in unknown.message
        with pytest.raises(ProbeError, match=r"outside 1\.\.8"):
            probe.suggest(50)
    # The cell stored both experiments; a restarted optimiser continues after them.
    with ExperimentStore.open(store_url) as store:
        for sequence, suggestion in enumerate(suggestions, start=1):
            ok = sequence == 1
            store.record_experiment(
                ExperimentRecord(
                    suggestion.recipe.experiment_id,
                    "opt",
                    sequence,
                    "completed" if ok else "failed",
                    tuple(ComponentRecord(c.name, c.mass_fraction) for c in suggestion.recipe.components),
                    100e-6,
                    suggestion.recipe.compaction_pressure_pa,
                    0.5,
                    8e-3,
                    measurements=(
                        MeasurementRecord("tensile_strength_pa", 3e6, "Pa"),
                        MeasurementRecord("disintegration_time_s", 120.0, "s"),
                    )
                    if ok
                    else (),
                    failure_reason="" if ok else "capped on ejection",
                )
            )
    with start_optimiser(tmp_path, store_url, ros_domain_id):
        probe.wait_for_nodes(["optimiser"])
        [next_one] = probe.suggest(1).suggestions
        assert next_one.recipe.experiment_id == "opt-0003"
