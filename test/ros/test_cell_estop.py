"""The whole simulated cell: one e-stop stops every moving instrument, and the cell recovers.

The shipped graph (config/workcell.yaml, sim: true) runs with its simulators; all four
instruments are set in motion at once, the e-stop is engaged through the safety
service, and the simulators' wire logs must show each instrument receiving its stop
command. Latency is measured by bench/estop_latency.py, not asserted here (shared
machines are noisy); the bound below only catches a node that does not react at all.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from tablet_workcell.bringup.description import load_graph
from tablet_workcell.bringup.paths import default_graph_path
from tablet_workcell.bringup.processes import plan_processes
from tablet_workcell.bringup.supervisor import GraphSupervisor
from tablet_workcell.devices.serve import WIRE_LOG_ENV
from tablet_workcell.devices.wire_log import stop_times
from tablet_workcell.msg import StationStatus
from tablet_workcell.ros.cell_exercise import STATIONS, CellExercise
from tablet_workcell.ros.graph_probe import GraphProbe

REACTION_BOUND_S = 2.0


def message_of(result: Any) -> str:
    """The reason text: on the result itself, or on its nested result message."""
    return str(getattr(result, "message", None) or result.result.message)


def test_one_estop_stops_every_instrument_and_goals_abort_with_the_reason(
    tmp_path: Path, ros_domain_id: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    wire = tmp_path / "wire"
    wire.mkdir()
    monkeypatch.setenv(WIRE_LOG_ENV, str(wire))
    store = f"sqlite:///{tmp_path / 'store.sqlite'}"
    graph = load_graph(
        default_graph_path(),
        sim=True,
        parameter_overrides={
            "recorder": {"output_dir": str(tmp_path / "recordings"), "store_url": store},
            "optimiser": {"store_url": store},
        },
    )
    for key, value in graph.environment.items():
        monkeypatch.setenv(key, value)
    processes = plan_processes(graph, tmp_path / "run", ros_domain_id, base_environment=dict(os.environ))
    with GraphSupervisor(processes) as supervisor, GraphProbe("cell_estop_probe") as probe:
        cell = CellExercise(probe)
        probe.wait_for_nodes(["safety", *STATIONS], timeout_s=60.0)
        cell.wait_states(StationStatus.STATE_IDLE, "every instrument node active and idle", timeout_s=90.0)
        cell.home_arm()
        goals = cell.start_motions("tablet_tray")
        cell.wait_states(StationStatus.STATE_BUSY, "every station busy", timeout_s=30.0)
        sent = cell.estop(True)
        outcomes = [goal.result(timeout_s=30.0) for goal in goals]
        assert all(status == "aborted" for status, _ in outcomes), outcomes
        messages = [message_of(result) for _, result in outcomes]
        assert all("e-stop" in m.lower() for m in messages), messages
        deadline = time.monotonic() + 10.0
        stops = stop_times(wire, sent)
        while set(stops) != set(STATIONS) and time.monotonic() < deadline:
            time.sleep(0.05)
            stops = stop_times(wire, sent)
        assert set(stops) == set(STATIONS), f"no stop command reached {set(STATIONS) - set(stops)}"
        assert max(stops.values()) - sent < REACTION_BOUND_S
        cell.wait_states(StationStatus.STATE_ESTOPPED, "every station to report ESTOPPED", timeout_s=10.0)
        # Motion is refused until an operator resets; after the reset the cell works again.
        refused = cell.transfer.send(cell.transfer_goal("dispenser"))
        status, result = refused.result(timeout_s=10.0)
        assert status == "aborted" and "e-stop" in result.message
        cell.estop(False)
        cell.wait_states(StationStatus.STATE_IDLE, "every station idle after the reset", timeout_s=30.0)
        status, result = cell.transfer.send(cell.transfer_goal("dispenser")).result(timeout_s=60.0)
        assert status == "succeeded", result.message
        assert not supervisor.exited()
