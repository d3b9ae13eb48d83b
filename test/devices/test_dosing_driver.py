"""The dosing-head bus driver against the simulated dispensing station over real ptys."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tablet_workcell.devices.dosing import codec
from tablet_workcell.devices.dosing.codec import FeederJamError, HopperEmptyError
from tablet_workcell.devices.dosing.driver import DosingBus
from tablet_workcell.devices.dosing.simulator import DosingBusSimulator, make_simulators
from tablet_workcell.devices.errors import (
    DeviceBusyError,
    DeviceDisconnectedError,
    DeviceOutOfRangeError,
    DeviceProtocolError,
    DeviceReportedError,
    DeviceTimeoutError,
)
from tablet_workcell.devices.faults import FaultSettings
from tablet_workcell.devices.pty_server import PtyServer
from tablet_workcell.devices.sim_process import SimulatorProcess
from tablet_workcell.devices.transport import ReplayPort, SerialTransport, TrafficLog

SCALE = 10.0


@contextlib.contextmanager
def served(
    faults: FaultSettings | None = None, link: Path | None = None, **options: Any
) -> Iterator[tuple[PtyServer, Any]]:
    sims = make_simulators({key: str(value) for key, value in options.items()}, faults or FaultSettings())
    with PtyServer(sims["feeder"], link=link, time_scale=SCALE) as server:
        feeder = sims["feeder"]
        assert isinstance(feeder, DosingBusSimulator)
        yield server, feeder.world


def wait_for(condition: Callable[[], bool], timeout_s: float = 3.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def test_identify_start_status_stop() -> None:
    with served(heads="lactose:5000,mcc:3000") as (server, _), DosingBus(server.port) as bus:
        lactose, mcc = bus.head(1), bus.head(2)
        assert lactose.identify() == codec.HeadIdentity("DH-20-SIM", "SN-0001", "1.3.0", "lactose", 20.0)
        assert mcc.identify().powder == "mcc"
        idle = lactose.status()
        assert idle.state == "idle" and idle.hopper_mass_kg == pytest.approx(5e-3) and idle.total_fed_kg == 0
        assert lactose.start(12.5) == 12.5
        feeding = lactose.status()
        assert feeding.state == "feeding" and feeding.rate_mg_per_s == 12.5
        wait_for(lambda: lactose.status().total_fed_kg > 2e-6)
        lactose.stop()
        stopped = lactose.status()
        assert stopped.state == "idle" and stopped.rate_mg_per_s == 0.0
        assert stopped.hopper_mass_kg + stopped.total_fed_kg == pytest.approx(5e-3)
        assert mcc.start_fraction(0.5) == 10.0
        assert mcc.status().state == "feeding" and lactose.status().state == "idle"
        bus.stop_all()  # broadcast: no reply, every head stops
        wait_for(lambda: mcc.status().state == "idle")


def test_the_head_refuses_a_rate_above_its_maximum_with_e03() -> None:
    log = TrafficLog()
    with served() as (server, _), DosingBus(server.port, log=log) as bus:
        head = bus.head(1)
        with pytest.raises(DeviceOutOfRangeError, match="rate out of range") as raised:
            head.start(25.0)  # maximum not known yet: sent, refused by the head
        assert raised.value.code == "E03"
        head.identify()
        sent = len(log.entries)
        with pytest.raises(DeviceOutOfRangeError, match=r"outside 0 to 20\.00 mg/s"):
            head.start(25.0)  # now refused before sending
        with pytest.raises(DeviceOutOfRangeError, match=r"fraction 1\.5"):
            head.start_fraction(1.5)
        assert len(log.entries) == sent
        with pytest.raises(DeviceOutOfRangeError, match="address 40"):
            bus.head(40)


def test_an_empty_hopper_is_a_typed_error_that_comes_back_until_refilled() -> None:
    with served(heads="lactose:0.5,mcc:0") as (server, _), DosingBus(server.port) as bus:
        lactose, mcc = bus.head(1), bus.head(2)
        with pytest.raises(HopperEmptyError, match="hopper empty") as raised:
            mcc.start(5.0)
        assert raised.value.code == "E10"
        lactose.start(20.0)
        wait_for(lambda: lactose.status().state == "error")
        with pytest.raises(HopperEmptyError, match="head in error state"):
            lactose.raise_if_error()
        with pytest.raises(DeviceBusyError, match="send CLR") as busy:
            lactose.start(5.0)
        assert busy.value.code == "E05"
        lactose.clear_error()
        assert lactose.status().state == "idle"
        with pytest.raises(HopperEmptyError):
            lactose.start(5.0)


def test_a_jam_stops_the_head_with_e11() -> None:
    with served(jam="lactose:1") as (server, _), DosingBus(server.port) as bus:
        head = bus.head(1)
        head.start(20.0)
        wait_for(lambda: head.status().state == "error")
        status = head.status()
        assert status.error_code == "11" and status.rate_mg_per_s == 0.0
        with pytest.raises(FeederJamError, match="jammed"):
            head.raise_if_error(status)
        head.stop()  # accepted in the error state, which stays
        assert head.status().state == "error"


def test_the_head_answers_protocol_errors_with_its_codes() -> None:
    with served() as (server, _), SerialTransport(server.port, "raw", timeout_s=0.3) as port:

        def ask(frame: bytes) -> codec.Reply:
            return codec.parse_reply(port.transact(frame, b"\r\n"))

        body = b"01 FEED"
        assert ask(b">" + body + b"*%02X\r\n" % codec.crc8(body)).error_code == "01"
        assert ask(codec.encode_request(1, "RUN", "fast", "MGS")).error_code == "02"
        assert ask(codec.encode_request(1, "RUN", "5")).error_code == "02"
        assert ask(codec.encode_request(1, "STA", "now")).error_code == "02"
        assert ask(codec.encode_request(1, "RUN", "5", "LPH")).error_code == "02"
        assert ask(codec.encode_request(1, "RUN", "120", "PCT")).error_code == "03"
        damaged = ask(b">01 STA*00\r\n")
        assert damaged.error_code == "04" and damaged.command == "STA"
        for silent in (codec.encode_request(7, "STA"), b">0X STA*00\r\n", b"garbage\r\n"):
            with pytest.raises(DeviceTimeoutError):
                port.transact(silent, b"\r\n", timeout_s=0.15)


def test_a_head_that_is_not_on_the_bus_times_out() -> None:
    with served() as (server, _), DosingBus(server.port, timeout_s=0.2) as bus:
        with pytest.raises(DeviceTimeoutError, match="head 05 did not answer IDN"):
            bus.head(5).identify()
        assert bus.head(1).identify().powder == "lactose"


def test_stop_from_another_thread_during_exchanges() -> None:
    with served() as (server, world), DosingBus(server.port) as bus:
        head = bus.head(1)
        head.start(20.0)
        errors: list[BaseException] = []
        done = threading.Event()

        def poll() -> None:
            try:
                while not done.is_set():
                    head.status()
            except BaseException as error:  # pragma: no cover - reported below
                errors.append(error)

        poller = threading.Thread(target=poll)
        poller.start()
        try:
            time.sleep(0.05)
            started = time.monotonic()
            head.stop()
            wait_for(lambda: world.heads[1].fraction == 0.0, 1.0)
            assert time.monotonic() - started < 0.1
        finally:
            done.set()
            poller.join(timeout=2.0)
        assert not errors and head.status().state == "idle"


@pytest.mark.parametrize(
    ("fault", "error", "words"),
    [
        ({"drop_probability": 1.0}, DeviceTimeoutError, "did not answer STA"),
        ({"truncate_probability": 1.0}, DeviceTimeoutError, "did not answer STA"),
        ({"garble_probability": 1.0}, DeviceProtocolError, "checksum|frame"),
        ({"device_error_probability": 1.0}, DeviceReportedError, "drive fault"),
    ],
)
def test_faults_give_typed_errors_in_bounded_time(
    fault: dict[str, float], error: type[Exception], words: str
) -> None:
    with served(FaultSettings(seed=5, **fault)) as (server, _), DosingBus(server.port, timeout_s=0.3) as bus:
        started = time.monotonic()
        with pytest.raises(error, match=words):
            bus.head(1).status()
        assert time.monotonic() - started < 1.5


def test_a_slow_head_still_answers() -> None:
    with served(FaultSettings(reply_delay_s=0.15)) as (server, _), DosingBus(server.port) as bus:
        started = time.monotonic()
        assert bus.head(1).status().state == "idle"
        assert time.monotonic() - started >= 0.14


def test_a_late_reply_is_dropped_not_taken_for_the_next() -> None:
    with (
        served(FaultSettings(reply_delay_s=0.3)) as (server, _),
        DosingBus(server.port, timeout_s=0.1) as bus,
    ):
        with pytest.raises(DeviceTimeoutError):
            bus.head(1).status()
        time.sleep(0.35)
        bus.timeout_s = 1.0
        assert bus.head(1).identify().powder == "lactose"


def test_an_unplugged_bus_is_disconnected_and_reconnects(tmp_path: Path) -> None:
    link = tmp_path / "ttyDOSE"
    with (
        served(FaultSettings(disconnect_after_s=0.3), link=link) as (server, _),
        DosingBus(str(link), timeout_s=0.5) as bus,
    ):
        bus.head(1).start(5.0)
        assert server.disconnected.wait(5.0)
        with pytest.raises(DeviceDisconnectedError):
            bus.head(1).status()
        with served(link=link):  # plugged in again
            bus.reconnect()
            assert bus.head(1).status().state == "idle"


def test_through_a_separate_simulator_process() -> None:
    options = {"heads": "lactose:5000,mcc:4000", "seed": 2}
    with (
        SimulatorProcess("dispensing_station", options, time_scale=SCALE) as sim,
        DosingBus(sim.ports["feeder"]) as bus,
    ):
        assert [bus.head(a).identify().powder for a in (1, 2)] == ["lactose", "mcc"]
        assert bus.head(2).status().hopper_mass_kg == pytest.approx(4e-3)


def test_traffic_is_recorded_and_replays_to_the_driver(tmp_path: Path) -> None:
    log = TrafficLog()
    with served() as (server, _), DosingBus(server.port, log=log) as bus:
        identity = bus.head(1).identify()
        rate = bus.head(1).start(7.5)
        bus.head(1).stop()
    path = tmp_path / "dosing.jsonl"
    log.save(path)
    recording = TrafficLog.load(path)
    with DosingBus("replay", opener=lambda: ReplayPort(recording)) as replayed:
        assert replayed.head(1).identify() == identity
        assert replayed.head(1).start(7.5) == rate
        replayed.head(1).stop()
