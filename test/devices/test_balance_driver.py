"""The MT-SICS balance driver against the simulated dispensing station over real ptys."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tablet_workcell.devices.balance.driver import MtSicsBalance
from tablet_workcell.devices.dosing.simulator import DosingBusSimulator, make_simulators
from tablet_workcell.devices.errors import (
    DeviceBusyError,
    DeviceDisconnectedError,
    DeviceOutOfRangeError,
    DeviceProtocolError,
    DeviceReportedError,
    DeviceStoppedError,
    DeviceTimeoutError,
)
from tablet_workcell.devices.faults import FaultSettings
from tablet_workcell.devices.pty_server import PtyServer
from tablet_workcell.devices.sim_process import SimulatorProcess
from tablet_workcell.devices.transport import ReplayPort, SerialTransport, TrafficLog
from tablet_workcell.errors import ConfigError

SCALE = 10.0  # instrument seconds per wall second: settling in tens of milliseconds


@contextlib.contextmanager
def served(
    faults: FaultSettings | None = None, link: Path | None = None, **options: Any
) -> Iterator[tuple[PtyServer, Any]]:
    sims = make_simulators({key: str(value) for key, value in options.items()}, faults or FaultSettings())
    with PtyServer(sims["balance"], link=link, time_scale=SCALE) as server:
        feeder = sims["feeder"]
        assert isinstance(feeder, DosingBusSimulator)
        yield server, feeder.world


def test_identify_reads_type_capacity_firmware_and_serial() -> None:
    with served() as (server, _), MtSicsBalance(server.port) as balance:
        identity = balance.identify()
    assert identity.model == "XS205DU-SIM" and identity.serial == "SIM0000001"
    assert identity.firmware == "1.10 18.6.4.1361.772" and identity.capacity_kg == pytest.approx(0.220)


@pytest.mark.parametrize("unit", ["g", "mg"])
def test_weighing_taring_zeroing_in_kilograms(unit: str) -> None:
    with served(unit=unit, container_g=2.5) as (server, world), MtSicsBalance(server.port) as balance:
        assert balance.read_immediate().mass_kg == pytest.approx(2.5e-3, abs=1e-7)  # the container
        assert balance.stable_mass_kg() == pytest.approx(2.5e-3, abs=1e-7)
        assert balance.tare() == pytest.approx(2.5e-3, abs=1e-7)
        assert balance.stable_mass_kg() == pytest.approx(0.0, abs=1e-7)
        with world.lock:
            world.landed_kg += 20e-6  # powder lands on the pan
        time.sleep(0.3)  # settle (3 instrument seconds)
        reading = balance.read_immediate()
        assert reading.mass_kg == pytest.approx(20e-6, abs=0.1e-6)
        assert balance.reset() == "SIM0000001"  # @ clears the tare
        assert balance.stable_mass_kg() == pytest.approx(2.52e-3, abs=1e-7)
        balance.zero()
        assert balance.stable_mass_kg() == pytest.approx(0.0, abs=1e-7)


def test_a_balance_that_never_settles_answers_s_i_after_its_timeout() -> None:
    with (
        served(noise_mg=5, stability_timeout_s=1.0) as (server, _),
        MtSicsBalance(server.port) as balance,
    ):
        started = time.monotonic()
        with pytest.raises(DeviceBusyError, match="stability was not reached") as raised:
            balance.stable_mass_kg()
        assert raised.value.code == "S I" and time.monotonic() - started < 1.0
        with pytest.raises(DeviceBusyError, match="taring not performed"):
            balance.tare()
        with pytest.raises(DeviceBusyError, match="zero setting not performed"):
            balance.zero()
        assert not balance.read_immediate().stable  # SI answers at once, flagged dynamic


def test_overload_and_zero_range_are_typed_out_of_range() -> None:
    with served(container_g=250) as (server, _), MtSicsBalance(server.port) as balance:
        for call, code in [(balance.stable_mass_kg, "S +"), (balance.tare, "T +"), (balance.zero, "Z +")]:
            with pytest.raises(DeviceOutOfRangeError) as raised:
                call()
            assert raised.value.code == code
    with served(container_g=10) as (server, _), MtSicsBalance(server.port) as balance:
        with pytest.raises(DeviceOutOfRangeError, match="zero setting range"):
            balance.zero()  # 10 g is beyond 2 % of the capacity around the power-on zero
        assert balance.tare() == pytest.approx(10e-3, abs=1e-7)  # taring it is fine


def test_stop_cancels_a_waiting_stable_read_within_a_slice() -> None:
    with served(noise_mg=5, stability_timeout_s=100) as (server, _), MtSicsBalance(server.port) as balance:
        timer = threading.Timer(0.2, balance.stop)
        timer.start()
        started = time.monotonic()
        with pytest.raises(DeviceStoppedError, match="cancelled"):
            balance.stable_mass_kg()
        assert time.monotonic() - started < 0.5
        timer.join()
        assert balance.identify().serial == "SIM0000001"  # the '@' reply was consumed
        cancel = threading.Event()
        cancel.set()
        with pytest.raises(DeviceStoppedError):
            balance.tare(cancel=cancel)
        balance.stop()  # nothing in flight: harmless
        assert balance.read_immediate().mass_kg > 0


def test_the_simulator_answers_protocol_errors_as_the_manual_says() -> None:
    with served() as (server, _), SerialTransport(server.port, "raw") as port:
        assert port.transact(b"XYZ\r\n", b"\r\n") == b"ES\r\n"
        assert port.transact(b"s\r\n", b"\r\n") == b"ES\r\n"  # commands are upper case
        assert port.transact(b"S 1\r\n", b"\r\n") == b"EL\r\n"
        assert port.transact(b"S\xb5\r\n", b"\r\n") == b"ET\r\n"
        assert port.transact(b"I4\r\n", b"\r\n") == b'I4 A "SIM0000001"\r\n'


@pytest.mark.parametrize(
    ("fault", "error", "words"),
    [
        ({"drop_probability": 1.0}, DeviceTimeoutError, "no reply to SI"),
        ({"truncate_probability": 1.0}, DeviceTimeoutError, "no reply to SI"),
        ({"garble_probability": 1.0}, DeviceProtocolError, "reply"),
        ({"device_error_probability": 1.0}, DeviceReportedError, "logical error"),
    ],
)
def test_faults_give_typed_errors_in_bounded_time(
    fault: dict[str, float], error: type[Exception], words: str
) -> None:
    with (
        served(FaultSettings(seed=3, **fault)) as (server, _),
        MtSicsBalance(server.port, timeout_s=0.3) as balance,
    ):
        started = time.monotonic()
        with pytest.raises(error, match=words):
            balance.read_immediate()
        assert time.monotonic() - started < 1.5


def test_a_slow_balance_still_answers() -> None:
    with served(FaultSettings(reply_delay_s=0.15)) as (server, _), MtSicsBalance(server.port) as balance:
        started = time.monotonic()
        assert balance.read_immediate().mass_kg == pytest.approx(2e-3, abs=1e-7)
        assert time.monotonic() - started >= 0.14


def test_a_lost_reply_does_not_shift_later_replies() -> None:
    with (
        served(FaultSettings(reply_delay_s=0.3)) as (server, _),
        MtSicsBalance(server.port, timeout_s=0.1) as balance,
    ):
        with pytest.raises(DeviceTimeoutError):
            balance.identify()  # its late I2 reply arrives while we wait for the next
        balance.timeout_s = 1.0
        time.sleep(0.35)
        assert balance.read_immediate().mass_kg == pytest.approx(2e-3, abs=1e-7)


def test_an_unplugged_balance_is_disconnected_and_reconnects(tmp_path: Path) -> None:
    link = tmp_path / "ttyBAL"
    with served(FaultSettings(disconnect_after_s=0.3), link=link) as (server, _):
        balance = MtSicsBalance(str(link), timeout_s=0.5)
        with balance:
            assert balance.read_immediate().mass_kg > 0
            assert server.disconnected.wait(5.0)
            with pytest.raises(DeviceDisconnectedError):
                balance.read_immediate()
            with served(link=link):  # plugged in again (a new simulator on the same path)
                balance.reconnect()
                assert balance.identify().serial == "SIM0000001"


def test_through_a_separate_simulator_process() -> None:
    with (
        SimulatorProcess("dispensing_station", {"seed": 4, "unit": "mg"}, time_scale=SCALE) as sim,
        MtSicsBalance(sim.ports["balance"]) as balance,
    ):
        assert balance.identify().capacity_kg == pytest.approx(0.220)
        assert balance.stable_mass_kg() == pytest.approx(2e-3, abs=1e-7)


def test_bad_options_are_refused_by_name() -> None:
    with pytest.raises(ConfigError, match="unknown dispensing_station option"):
        make_simulators({"units": "g"}, FaultSettings())
    with pytest.raises(ConfigError, match="unit='lb' must be g or mg"):
        make_simulators({"unit": "lb"}, FaultSettings())


def test_traffic_is_recorded_and_replays_to_the_driver(tmp_path: Path) -> None:
    log = TrafficLog()
    with served() as (server, _), MtSicsBalance(server.port, log=log) as balance:
        identity = balance.identify()
        mass = balance.stable_mass_kg()
    path = tmp_path / "balance.jsonl"
    log.save(path)
    recording = TrafficLog.load(path)
    with MtSicsBalance("replay", opener=lambda: ReplayPort(recording)) as replayed:
        assert replayed.identify() == identity
        assert replayed.stable_mass_kg() == mass
