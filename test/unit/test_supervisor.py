"""The supervisor against plain Python processes (no ROS needed to test process handling)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from tablet_workcell.bringup import supervisor as supervisor_module
from tablet_workcell.bringup.processes import ProcessSpec
from tablet_workcell.bringup.supervisor import GraphSupervisor
from tablet_workcell.errors import LaunchError


def spec(name: str, code: str, tmp_path: Path) -> ProcessSpec:
    return ProcessSpec(name, (sys.executable, "-u", "-c", code), dict(os.environ), tmp_path / f"{name}.yaml")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_output_is_relayed_with_node_names_and_processes_stopped(tmp_path: Path) -> None:
    lines: list[tuple[str, str]] = []
    code = "import time; print('ready', flush=True); time.sleep(60)"
    with GraphSupervisor(
        [spec("a", code, tmp_path), spec("b", code, tmp_path)], line_sink=lambda n, s: lines.append((n, s))
    ) as supervisor:
        pids = supervisor.pids
        deadline = time.monotonic() + 20
        while len(lines) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    assert ("a", "ready") in lines and ("b", "ready") in lines
    assert not any(alive(pid) for pid in pids.values())


def test_a_node_that_dies_is_reported_with_its_last_output(tmp_path: Path) -> None:
    dying = spec("press", "print('port /dev/ttyUSB9 not found'); raise SystemExit(3)", tmp_path)
    sleeper = spec("arm", "import time; time.sleep(60)", tmp_path)
    with GraphSupervisor([sleeper, dying], line_sink=lambda n, s: None) as supervisor:
        with pytest.raises(LaunchError) as error:
            supervisor.watch(duration_s=20)
        pid = supervisor.pids["arm"]
    message = str(error.value)
    assert "node 'press' exited unexpectedly with code 3" in message
    assert "port /dev/ttyUSB9 not found" in message
    assert not alive(pid)


def test_a_node_ignoring_sigint_is_escalated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        supervisor_module, "STOP_SEQUENCE", tuple((sig, 0.5) for sig, _ in supervisor_module.STOP_SEQUENCE)
    )
    stubborn = (
        "import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); "
        "print('ignoring', flush=True); time.sleep(60)"
    )
    lines: list[str] = []
    supervisor = GraphSupervisor(
        [spec("stubborn", stubborn, tmp_path)], line_sink=lambda n, s: lines.append(s)
    )
    supervisor.start()
    pid = supervisor.pids["stubborn"]
    deadline = time.monotonic() + 20
    while not lines and time.monotonic() < deadline:
        time.sleep(0.05)
    supervisor.stop()
    assert not alive(pid)


def test_failure_to_start_stops_what_already_runs(tmp_path: Path) -> None:
    good = spec("good", "import time; time.sleep(60)", tmp_path)
    bad = ProcessSpec(
        "bad", (str(tmp_path / "no-such-interpreter"),), dict(os.environ), tmp_path / "bad.yaml"
    )
    supervisor = GraphSupervisor([good, bad], line_sink=lambda n, s: None)
    with pytest.raises(LaunchError, match="could not start node process"):
        supervisor.start()
    assert supervisor.pids == {}
