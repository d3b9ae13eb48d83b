"""Real ROS 2 nodes in separate processes, each test on its own ROS_DOMAIN_ID.

Every wait is bounded and discovery is awaited (GraphProbe), never slept for; every
process a test starts is stopped by the supervisor's context manager, also on failure.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from rcl_interfaces.srv import SetParameters
from rclpy.client import Client
from rclpy.parameter import Parameter

from tablet_workcell.bringup.description import GraphDescription, load_graph
from tablet_workcell.bringup.paths import default_graph_path
from tablet_workcell.bringup.processes import plan_processes
from tablet_workcell.bringup.supervisor import GraphSupervisor
from tablet_workcell.data.mcap_io import read_recording
from tablet_workcell.msg import CellStatus
from tablet_workcell.ros.graph_probe import GraphProbe


def graph(sim: bool, workspace: Path, **overrides: dict[str, object]) -> GraphDescription:
    """The shipped graph, its recorder writing into ``workspace`` instead of the working directory."""
    recorder = {
        "output_dir": str(workspace / "recordings"),
        "store_url": f"sqlite:///{workspace / 'store.sqlite'}",
    }
    optimiser = {"store_url": recorder["store_url"]}
    return load_graph(
        default_graph_path(),
        sim=sim,
        parameter_overrides={"recorder": recorder, "optimiser": optimiser, **overrides},
    )


@pytest.fixture
def probe(ros_domain_id: int) -> Iterator[GraphProbe]:
    with GraphProbe("test_probe") as probe:
        yield probe


def start(description: GraphDescription, tmp_path: Path, domain: int) -> GraphSupervisor:
    os.environ.update(description.environment)
    return GraphSupervisor(plan_processes(description, tmp_path, domain))


def test_the_simulated_cell_comes_up_and_every_station_reports_idle(
    tmp_path: Path, ros_domain_id: int, probe: GraphProbe
) -> None:
    description = graph(sim=True, workspace=tmp_path)
    with start(description, tmp_path, ros_domain_id) as supervisor:
        simulators = {f"sim_{s.name}" for s in description.simulators}
        assert set(supervisor.pids) == {n.name for n in description.nodes} | simulators
        assert simulators == {"sim_arm", "sim_press", "sim_dispensing_station", "sim_disintegration_station"}
        stations = ["safety", "arm", "press", "dispenser", "syringe_pump", "camera", "disintegration"]
        probe.wait_for_nodes(["safety", "cell_status", *stations[1:]], timeout_s=60.0)
        status = probe.wait_for_status(
            lambda s: sorted((st.station, st.state) for st in s.stations) == sorted((n, 2) for n in stations),
            "every station to report IDLE (instrument nodes configured against their simulators)",
            timeout_s=90.0,
        )
        assert all(st.simulated for st in status.stations if st.station != "safety")
        trip = probe.estop_round_trip(operator_id="tester")
        assert "no operator id" in trip.refused_reset_message
        probe.wait_for_status(lambda s: s.mode == CellStatus.MODE_IDLE, "the cell to be IDLE after the reset")
        assert not supervisor.exited()


def test_a_late_subscriber_sees_the_latched_estop(tmp_path: Path, ros_domain_id: int) -> None:
    description = graph(sim=False, workspace=tmp_path, safety={"engaged_at_start": True})
    with start(description, tmp_path, ros_domain_id):
        with GraphProbe("early") as early:
            early.wait_for_nodes(["safety", "cell_status"])
            status = early.wait_for_status(lambda s: s.mode == CellStatus.MODE_ESTOPPED, "ESTOPPED")
            assert status.estop_reason == "engaged at start-up"
        with GraphProbe("late") as late:
            late.wait_for_nodes(["safety"])
            assert late.latest_estop().active


def test_sim_clock_runs_at_the_requested_factor_and_nodes_follow_it(
    tmp_path: Path, ros_domain_id: int, probe: GraphProbe
) -> None:
    description = graph(sim=True, workspace=tmp_path, sim_clock={"real_time_factor": 50.0})
    with start(description, tmp_path, ros_domain_id):
        probe.wait_for_nodes(["sim_clock", "safety", "cell_status"])
        factor = probe.measure_real_time_factor(real_seconds=2.0)
        assert 40.0 < factor < 60.0
        # cell_status runs with use_sim_time: its stamps advance with /clock, not the wall.
        first = probe.latest_status().header.stamp.sec
        time.sleep(1.0)
        later = probe.latest_status().header.stamp.sec
        assert later - first >= 20


def test_out_of_range_parameter_is_refused_by_the_node_itself(ros_domain_id: int) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tablet_workcell.nodes.safety", "--ros-args", "-p", "status_period_s:=0.0"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "invalid parameter" in result.stderr and "status_period_s" in result.stderr
    assert "Traceback" not in result.stderr


def run_cli(*arguments: str, cwd: Path, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the `workcell` command as a user would (in ``cwd``, its workspace), bounded in time."""
    return subprocess.run(
        [sys.executable, "-m", "tablet_workcell.cli", *arguments],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def makefile_demo_arguments() -> list[str]:
    """The arguments `make demo` passes, so this test runs what the README promises."""
    makefile = (Path(__file__).resolve().parents[2] / "Makefile").read_text()
    line = next(line for line in makefile.splitlines() if line.startswith("DEMO_ARGS ?="))
    return line.split("?=", 1)[1].split()


def test_workcell_demo_command_runs_end_to_end(ros_domain_id: int, tmp_path: Path) -> None:
    # At the demo's own speed (real time): the dosing loop's simulators run at most ~5x.
    result = run_cli(
        "demo",
        *makefile_demo_arguments(),
        "--domain-id",
        str(ros_domain_id),
        "--run-dir",
        str(tmp_path / "params"),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "graph alive" in result.stdout
    assert "e-stop engaged -> cell ESTOPPED" in result.stdout
    assert "demo complete" in result.stdout
    assert "optimiser suggests campaign-0001 (sobol)" in result.stdout
    # One tablet by hand through every simulated instrument.
    for step in (
        "arm homed",
        "dosed magnesium_stearate",
        "die moved from dispenser to press",
        "compacted at",
    ):
        assert step in result.stdout, result.stdout
    assert "breaking test:" in result.stdout and "droplet of 5.0 uL placed" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    assert (tmp_path / "params" / "safety.params.yaml").is_file()
    # The recorder of the default graph kept the session, and the store knows the file.
    [recording] = (tmp_path / "runs" / "recordings").glob("*/*.mcap")
    topics = {message.topic for message in read_recording(recording)}
    assert {"/safety/estop", "/workcell/status"} <= topics
    listing = run_cli("data", "list", cwd=tmp_path, timeout_s=60)
    assert listing.returncode == 0 and recording.parent.name in listing.stdout


def test_workcell_up_stops_after_duration_and_reports_bad_config(ros_domain_id: int, tmp_path: Path) -> None:
    up = run_cli("up", "--duration", "2", "--domain-id", str(ros_domain_id), cwd=tmp_path)
    assert up.returncode == 0, up.stderr
    assert "all nodes stopped" in up.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("nodes:\n  - executable: press_controller\n")
    check = run_cli("up", "--config", str(bad), cwd=tmp_path, timeout_s=60)
    assert check.returncode == 2
    assert "unknown node executable 'press_controller'" in check.stderr
    assert "Traceback" not in check.stderr


def test_real_time_factor_changes_at_run_time_and_range_is_enforced(
    tmp_path: Path, ros_domain_id: int, probe: GraphProbe
) -> None:
    description = graph(sim=True, workspace=tmp_path, sim_clock={"real_time_factor": 10.0})
    with start(description, tmp_path, ros_domain_id):
        probe.wait_for_nodes(["sim_clock"])
        client: Client[SetParameters.Request, SetParameters.Response] = probe.node.create_client(
            SetParameters, "/sim_clock/set_parameters"
        )
        assert client.wait_for_service(timeout_sec=10.0)

        def set_factor(value: float) -> bool:
            request = SetParameters.Request(
                parameters=[Parameter("real_time_factor", value=value).to_parameter_msg()]
            )
            future = client.call_async(request)
            done = threading.Event()
            future.add_done_callback(lambda _: done.set())
            assert done.wait(10.0), "parameter service did not answer"
            result = future.result()
            assert result is not None
            return bool(result.results[0].successful)

        assert 8.0 < probe.measure_real_time_factor(real_seconds=1.0) < 12.0
        assert set_factor(50.0)
        assert 40.0 < probe.measure_real_time_factor(real_seconds=1.5) < 60.0
        assert not set_factor(0.0)  # below the declared minimum: refused, clock keeps running
        assert 40.0 < probe.measure_real_time_factor(real_seconds=1.0) < 60.0
