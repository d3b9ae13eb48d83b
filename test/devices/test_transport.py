"""The shared device layer: transport over a real pty, deadlines, faults, record/replay."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tablet_workcell.devices.errors import DeviceDisconnectedError, DeviceProtocolError, DeviceTimeoutError
from tablet_workcell.devices.faults import FaultSettings
from tablet_workcell.devices.pty_server import PtyServer
from tablet_workcell.devices.sim_process import SimulatorProcess, SimulatorStartError
from tablet_workcell.devices.simulated_instrument import SimulatedInstrument
from tablet_workcell.devices.transport import ReplayPort, SerialTransport, TrafficLog
from tablet_workcell.errors import ConfigError


class Echo(SimulatedInstrument):
    """Answers ``ECHO <line>``; ``ERR`` is its device error."""

    name = "echo"

    def handle_line(self, line: bytes, now_s: float) -> bytes:
        return b"ECHO " + line + b"\r\n"

    def error_reply(self, line: bytes) -> bytes:
        return b"ERR\r\n"


def serve(faults: FaultSettings | None = None) -> PtyServer:
    return PtyServer(Echo(faults))


def test_a_driver_talks_to_a_simulator_through_a_real_pty() -> None:
    with serve() as server, SerialTransport(server.port, "echo", timeout_s=2.0) as port:
        assert port.transact(b"HELLO\r\n", b"\r\n") == b"ECHO HELLO\r\n"
        # two commands in one write, replies in order
        port.write(b"A\r\nB\r\n")
        assert port.read_until(b"\r\n") == b"ECHO A\r\n"
        assert port.read_until(b"\r\n") == b"ECHO B\r\n"


def test_a_symlinked_port_works_like_a_device_path(tmp_path: Path) -> None:
    link = tmp_path / "ttyECHO"
    with PtyServer(Echo(), link=link) as server, SerialTransport(str(link), "echo") as port:
        assert link.is_symlink() and server.port
        assert port.transact(b"X\r\n", b"\r\n") == b"ECHO X\r\n"
    assert not link.exists()


def test_a_silent_instrument_times_out_with_a_sentence() -> None:
    with serve(FaultSettings(drop_probability=1.0)) as server, SerialTransport(server.port, "echo") as port:
        started = time.monotonic()
        with pytest.raises(DeviceTimeoutError, match=r"no complete reply within 0\.30 s"):
            port.transact(b"HELLO\r\n", b"\r\n", timeout_s=0.3)
        assert time.monotonic() - started < 2.0


def test_a_truncated_reply_times_out_and_names_what_came() -> None:
    with (
        serve(FaultSettings(truncate_probability=1.0)) as server,
        SerialTransport(server.port, "echo") as port,
        pytest.raises(DeviceTimeoutError, match="received only b'ECHO"),
    ):
        port.transact(b"HELLO\r\n", b"\r\n", timeout_s=0.3)


def test_a_slow_instrument_answers_late() -> None:
    with serve(FaultSettings(reply_delay_s=0.2)) as server, SerialTransport(server.port, "echo") as port:
        started = time.monotonic()
        assert port.transact(b"SLOW\r\n", b"\r\n", timeout_s=2.0) == b"ECHO SLOW\r\n"
        assert time.monotonic() - started >= 0.19


def test_injected_device_errors_use_the_instruments_own_reply() -> None:
    with (
        serve(FaultSettings(device_error_probability=1.0)) as server,
        SerialTransport(server.port, "echo") as port,
    ):
        assert port.transact(b"HELLO\r\n", b"\r\n") == b"ERR\r\n"


def test_garbled_replies_keep_their_length() -> None:
    with (
        serve(FaultSettings(garble_probability=1.0, seed=4)) as server,
        SerialTransport(server.port, "echo") as port,
    ):
        reply = port.transact(b"HELLO-WORLD\r\n", b"\r\n")
        assert reply != b"ECHO HELLO-WORLD\r\n" and len(reply) == len(b"ECHO HELLO-WORLD\r\n")


def test_a_port_that_disappears_raises_disconnected_not_a_hang() -> None:
    with serve(FaultSettings(disconnect_after_s=0.3)) as server, SerialTransport(server.port, "echo") as port:
        assert port.transact(b"A\r\n", b"\r\n") == b"ECHO A\r\n"
        assert server.disconnected.wait(5.0)
        with pytest.raises(DeviceDisconnectedError, match="was lost"):
            port.transact(b"B\r\n", b"\r\n", timeout_s=1.0)
        assert not port.is_open


def test_opening_a_missing_port_says_so(tmp_path: Path) -> None:
    with pytest.raises(DeviceDisconnectedError, match="cannot open port"):
        SerialTransport(str(tmp_path / "nothing"), "echo").open()


def test_io_on_a_closed_transport_is_a_typed_error() -> None:
    with pytest.raises(DeviceDisconnectedError, match="not open"):
        SerialTransport("loop://", "echo").write(b"x")


def test_traffic_is_recorded_and_replays_to_the_same_driver(tmp_path: Path) -> None:
    log = TrafficLog()
    with serve() as server, SerialTransport(server.port, "echo", log=log) as port:
        port.transact(b"ONE\r\n", b"\r\n")
        port.transact(b"TWO\r\n", b"\r\n")
    path = tmp_path / "echo.jsonl"
    log.save(path)
    assert ">> b'ONE\\r\\n'" in log.text() and "<< b'ECHO ONE\\r\\n'" in log.text()
    replay = TrafficLog.load(path)
    port = SerialTransport("replay", "echo", opener=lambda: ReplayPort(replay))
    with port:
        assert port.transact(b"ONE\r\n", b"\r\n") == b"ECHO ONE\r\n"
        assert port.transact(b"TWO\r\n", b"\r\n") == b"ECHO TWO\r\n"
    with (
        SerialTransport("replay", "echo", opener=lambda: ReplayPort(replay)) as changed,
        pytest.raises(DeviceProtocolError, match="recording has"),
    ):
        changed.write(b"THREE\r\n")


def test_bad_fault_settings_are_refused_with_the_name() -> None:
    with pytest.raises(ConfigError, match=r"drop_probability=1\.5"):
        FaultSettings(drop_probability=1.5)
    with pytest.raises(ConfigError, match="unknown fault setting"):
        FaultSettings.from_mapping({"dorp_probability": "0.1"})


def test_the_wire_log_records_host_bytes_with_monotonic_times(tmp_path: Path) -> None:
    log = tmp_path / "echo.wire"
    before = time.monotonic()
    with PtyServer(Echo(), wire_log=log) as server, SerialTransport(server.port, "echo") as port:
        port.transact(b"STOP\r\n", b"\r\n")
    stamp, name, data = log.read_text().split()
    assert name == "echo" and bytes.fromhex(data) == b"STOP\r\n"
    assert before <= float(stamp) <= time.monotonic()


def test_a_simulator_that_cannot_start_says_why() -> None:
    simulator = SimulatorProcess("syringe_pump", options={"no_such_option": "1"}, start_timeout_s=30.0)
    with pytest.raises(SimulatorStartError, match="no_such_option"):
        simulator.start()
    assert not simulator.running
    assert "no_such_option" in simulator.log_tail()


def test_a_stopping_simulator_leaves_a_successors_link_alone(tmp_path: Path) -> None:
    link = tmp_path / "ttyECHO"
    first = PtyServer(Echo(), link=link)
    first.start()
    with PtyServer(Echo(), link=link) as second:  # plugged in again under the same name
        first.stop()
        assert os.readlink(link) == second.port
        with SerialTransport(str(link), "echo") as port:
            assert port.transact(b"X\r\n", b"\r\n") == b"ECHO X\r\n"
    assert not link.exists()
