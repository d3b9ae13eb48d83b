"""Two cells on separate ROS domains record into one PostgreSQL store at the same time.

Each cell runs the production graph (safety, cell status, recorder) on its own
ROS_DOMAIN_ID with its own campaign; only cell A's e-stop is pressed. Both recorders
register their files in the one store when the cells stop together. The store must hold
both campaigns without conflict, and each recording only its own cell's traffic.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from tablet_workcell.bringup.description import load_graph
from tablet_workcell.bringup.paths import default_graph_path
from tablet_workcell.bringup.processes import plan_processes
from tablet_workcell.bringup.supervisor import GraphSupervisor
from tablet_workcell.data import schema
from tablet_workcell.data.local_postgres import LocalPostgres
from tablet_workcell.data.mcap_io import verify_with_rosbags
from tablet_workcell.data.store import ExperimentStore
from tablet_workcell.msg import CellStatus
from tablet_workcell.ros.graph_probe import GraphProbe


@pytest.fixture(scope="module")
def postgres() -> Iterator[LocalPostgres]:
    with LocalPostgres() as server:
        yield server


def cell(name: str, domain: int, store_url: str, workspace: Path) -> GraphSupervisor:
    recorder = {
        "campaign_id": f"campaign-{name}",
        "store_url": store_url,
        "output_dir": str(workspace / name / "recordings"),
    }
    overrides = {
        "recorder": recorder,
        "optimiser": {"store_url": store_url, "campaign_id": f"campaign-{name}"},
    }
    graph = load_graph(default_graph_path(), sim=False, parameter_overrides=overrides)
    environment = {**os.environ, **graph.environment}
    return GraphSupervisor(plan_processes(graph, workspace / name / "params", domain, environment))


def probe_on(domain: int, monkeypatch: pytest.MonkeyPatch) -> GraphProbe:
    monkeypatch.setenv("ROS_DOMAIN_ID", str(domain))
    return GraphProbe(f"probe_{domain}")


def subscribers(probe: GraphProbe, topic: str) -> set[str]:
    return {info.node_name for info in probe.node.get_subscriptions_info_by_topic(topic)}


def wait_until(condition: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(0.05)


def test_two_cells_record_into_one_store(
    postgres: LocalPostgres, ros_domain_id: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    domains = {"a": ros_domain_id, "b": 100 + ros_domain_id % 20}
    with (
        cell("a", domains["a"], postgres.url, tmp_path) as cell_a,
        cell("b", domains["b"], postgres.url, tmp_path) as cell_b,
    ):
        for name in ("b", "a"):  # cell A's probe stays open to press its e-stop
            probe = probe_on(domains[name], monkeypatch)
            probe.wait_for_nodes(["safety", "cell_status", "recorder"])
            probe.wait_for_status(lambda s: any(st.state != 0 for st in s.stations), "stations to report")
            if name == "b":
                probe.close()
        wait_until(
            lambda: "recorder" in subscribers(probe, "/safety/estop"), "cell A's recorder to subscribe"
        )
        probe.estop_round_trip(operator_id="cell-a-operator")
        # Out of e-stop; not IDLE: on this graph's real ports no instrument answers (FAULT).
        probe.wait_for_status(lambda s: s.mode != CellStatus.MODE_ESTOPPED, "cell A out of e-stop")
        probe.close()
        assert not cell_a.exited() and not cell_b.exited()
    # Both recorders registered their files on shutdown, at the same moment.
    with ExperimentStore.open(postgres.url) as store, Session(store.engine) as session:
        registered = {
            row.campaign_id: Path(row.path)
            for row in session.scalars(
                select(schema.Recording).where(schema.Recording.campaign_id.like("campaign-_"))
            )
        }
    assert set(registered) == {"campaign-a", "campaign-b"}
    for name, pressed in (("a", True), ("b", False)):
        [recording] = (tmp_path / name / "recordings").glob("*/*.mcap")
        assert registered[f"campaign-{name}"].resolve() == recording.resolve()
        estops = [m for m in verify_with_rosbags(recording) if m.topic == "/safety/estop"]
        assert any(m.message.active for m in estops) is pressed, name
