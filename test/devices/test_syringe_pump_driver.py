"""The NE-1000 driver against its simulator on a real pty, every fault, a separate process."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

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
from tablet_workcell.devices.syringe_pump.codec import Direction, PumpAlarm, PumpStatus, RateUnit, VolumeUnit
from tablet_workcell.devices.syringe_pump.driver import DropletProgress, SyringePumpDriver
from tablet_workcell.devices.syringe_pump.simulator import SyringePumpSimulator, make_simulators
from tablet_workcell.devices.transport import ReplayPort, SerialTransport, TrafficLog
from tablet_workcell.errors import ConfigError

FAST = 20.0  # instrument seconds per wall second


@contextmanager
def pump(
    faults: FaultSettings | None = None, time_scale: float = FAST, **sim_options: object
) -> Iterator[tuple[SyringePumpDriver, SyringePumpSimulator, PtyServer]]:
    sim = SyringePumpSimulator(faults, **sim_options)  # type: ignore[arg-type]
    with PtyServer(sim, time_scale=time_scale) as server:
        driver = SyringePumpDriver(server.port, timeout_s=0.4, poll_period_s=0.02)
        driver.transport.open()
        try:
            yield driver, sim, server
        finally:
            driver.close()


def wait_for(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.002)


# ------------------------------------------------------------------ operations
def test_identify_and_settings_round_trip() -> None:
    with pump() as (driver, _, _):
        driver.open()
        identity = driver.identify()
        assert (identity.model, identity.firmware) == ("NE-1000", "3.928")
        driver.set_diameter_mm(4.78)
        assert driver.diameter_mm() == 4.78
        driver.set_rate_ul_per_min(50.0)
        assert driver.rate().ul_per_min == pytest.approx(50.0)
        driver.set_rate_ul_per_min(0.5)  # written as 30.00 UH: four significant digits
        assert driver.rate().unit is RateUnit.UL_PER_HOUR
        driver.set_volume_ul(12.5)
        assert driver.volume().ul == 12.5
        driver.set_volume_ul(20000.0)
        assert driver.volume().unit is VolumeUnit.ML and driver.volume().ul == 20000.0
        driver.set_direction(Direction.WITHDRAW)
        assert driver.direction() is Direction.WITHDRAW
        assert driver.status().status is PumpStatus.STOPPED


def test_the_plunger_moves_in_time_and_dispensed_volume_accumulates() -> None:
    with pump() as (driver, sim, _):
        driver.set_rate_ul_per_min(600.0)  # 10 µL per instrument second
        driver.set_volume_ul(0.0)  # continuous
        driver.clear_dispensed()
        assert driver.run() is PumpStatus.INFUSING
        wait_for(lambda: sim.infused_ul > 2.0)
        driver.stop()
        assert sim.status is PumpStatus.STOPPED
        first = driver.dispensed_ul()
        assert first >= 2.0
        time.sleep(0.05)
        assert driver.dispensed_ul() == first  # stopped means stopped


def test_dispense_droplet_reports_progress_and_returns_the_volume() -> None:
    seen: list[DropletProgress] = []
    with pump() as (driver, sim, _):
        started = time.monotonic()
        done = driver.dispense_droplet(5.0, 100.0, timeout_s=5.0, progress=seen.append)
        took = time.monotonic() - started
    assert done == pytest.approx(5.0)
    assert sim.infused_ul == pytest.approx(5.0)
    assert len(seen) >= 3 and seen[-1].dispensed_ul == pytest.approx(5.0)
    assert all(a.dispensed_ul <= b.dispensed_ul for a, b in itertools.pairwise(seen))
    assert 3.0 / FAST * 0.8 < took < 2.0  # 3 s of pumping at 100 µL/min, scaled


def test_stop_from_another_thread_halts_the_plunger_within_100_ms() -> None:
    errors: list[Exception] = []
    with pump(time_scale=1.0) as (driver, sim, _):

        def dispense() -> None:
            try:
                driver.dispense_droplet(50.0, 100.0, timeout_s=60.0)
            except Exception as error:  # collected for the assertion
                errors.append(error)

        worker = threading.Thread(target=dispense)
        worker.start()
        wait_for(lambda: sim.status is PumpStatus.INFUSING)
        started = time.monotonic()
        driver.stop()
        wait_for(lambda: not sim.status.moving, timeout_s=1.0)
        halted_s = time.monotonic() - started
        worker.join(timeout=2.0)
        returned_s = time.monotonic() - started
    assert not worker.is_alive()
    assert halted_s < 0.5, f"plunger halted {halted_s * 1000:.0f} ms after stop()"
    assert returned_s < 0.5
    assert len(errors) == 1 and isinstance(errors[0], DeviceStoppedError)
    assert sim.infused_ul < 50.0


def test_a_stop_event_halts_a_droplet_and_names_the_volume() -> None:
    event = threading.Event()
    with pump(time_scale=1.0) as (driver, sim, _):
        timer = threading.Timer(0.15, event.set)
        timer.start()
        started = time.monotonic()
        with pytest.raises(DeviceStoppedError, match=r"stopped on request after .* of 50\.000 µL"):
            driver.dispense_droplet(50.0, 100.0, timeout_s=60.0, stop_event=event)
        assert time.monotonic() - started < 0.15 + 0.5
        timer.join()
        assert sim.status is PumpStatus.STOPPED  # reset, so a later RUN starts afresh


def test_a_droplet_that_takes_too_long_times_out_and_stops_the_pump() -> None:
    with pump(time_scale=1.0) as (driver, sim, _):
        with pytest.raises(DeviceTimeoutError, match=r"not finished within 0\.2 s"):
            driver.dispense_droplet(50.0, 100.0, timeout_s=0.2)
        assert not sim.status.moving


def test_a_failing_progress_callback_still_stops_the_plunger() -> None:
    def explode(progress: DropletProgress) -> None:
        raise RuntimeError("display crashed")

    with pump(time_scale=1.0) as (driver, sim, _):
        with pytest.raises(RuntimeError, match="display crashed"):
            driver.dispense_droplet(50.0, 100.0, timeout_s=60.0, progress=explode)
        assert not sim.status.moving


# ------------------------------------------------------------------ the pump's own errors
def test_an_out_of_range_rate_is_refused_by_the_pump() -> None:
    with pump() as (driver, _, _), pytest.raises(DeviceOutOfRangeError) as raised:
        driver.set_rate_ul_per_min(1e6)  # 1 L/min through a 4.7 mm syringe
    assert raised.value.code == "?OOR"


def test_requests_the_pump_cannot_write_are_refused_before_sending() -> None:
    with pump() as (driver, _, _):
        with pytest.raises(DeviceOutOfRangeError, match="must be above 0"):
            driver.set_rate_ul_per_min(-5.0)
        with pytest.raises(DeviceOutOfRangeError, match="resolution"):
            driver.set_volume_ul(1e-5)
        with pytest.raises(DeviceOutOfRangeError, match="must be above 0"):
            driver.dispense_droplet(0.0, 10.0, 1.0)
        with pytest.raises(DeviceOutOfRangeError, match="4 digits"):
            driver.set_diameter_mm(12345.0)


def test_settings_that_cannot_change_while_pumping_answer_not_applicable() -> None:
    with pump() as (driver, _, _):
        driver.set_volume_ul(0.0)
        driver.run()
        with pytest.raises(DeviceBusyError) as raised:
            driver.set_diameter_mm(10.0)
        assert raised.value.code == "?NA"
        driver.stop()


def test_an_injected_stall_raises_the_pumps_alarm_and_is_then_cleared() -> None:
    with pump(stall_after_ul=1.0) as (driver, _, _):
        with pytest.raises(DeviceReportedError, match="motor stalled") as raised:
            driver.dispense_droplet(5.0, 100.0, timeout_s=5.0)
        assert raised.value.code == "A?S"
        assert driver.status().alarm is None  # reported once, then cleared
        assert driver.dispensed().infused_ul == pytest.approx(1.0)


def test_the_reset_alarm_after_power_up_is_acknowledged_on_connect() -> None:
    with pump(alarm_at_power_on=True) as (driver, sim, _):
        assert sim.alarm is PumpAlarm.RESET
        driver.open()  # acknowledges the alarm instead of failing
        assert sim.alarm is None
        assert driver.identify().model == "NE-1000"


def test_an_alarm_in_place_of_a_reply_says_the_command_was_not_executed() -> None:
    with pump(alarm_at_power_on=True) as (driver, sim, _):
        with pytest.raises(DeviceReportedError, match="not executed") as raised:
            driver.set_diameter_mm(10.0)
        assert raised.value.code == "A?R" and sim.diameter_mm != 10.0
        driver.set_diameter_mm(10.0)
        assert sim.diameter_mm == 10.0


# ------------------------------------------------------------------ injected faults
def test_a_silent_pump_times_out_within_the_timeout() -> None:
    with pump(FaultSettings(drop_probability=1.0)) as (driver, _, _):
        started = time.monotonic()
        with pytest.raises(DeviceTimeoutError, match="no complete reply"):
            driver.identify()
        assert time.monotonic() - started < 1.0


def test_a_garbled_reply_is_a_protocol_error() -> None:
    with (
        pump(FaultSettings(garble_probability=1.0, seed=1)) as (driver, _, _),
        pytest.raises(DeviceProtocolError),
    ):
        driver.identify()


def test_a_truncated_reply_times_out_naming_what_came() -> None:
    with (
        pump(FaultSettings(truncate_probability=1.0)) as (driver, _, _),
        pytest.raises(DeviceTimeoutError, match="received only"),
    ):
        driver.identify()


def test_an_injected_device_error_is_the_pumps_unrecognised_reply() -> None:
    with pump(FaultSettings(device_error_probability=1.0)) as (driver, _, _):
        with pytest.raises(DeviceReportedError) as raised:
            driver.diameter_mm()
        assert raised.value.code == "?"


def test_a_slow_pump_is_waited_for_and_a_too_slow_one_recovers_after_its_late_reply() -> None:
    with pump(FaultSettings(reply_delay_s=0.15)) as (driver, _, _):
        assert driver.identify().model == "NE-1000"
    with pump(FaultSettings(reply_delay_s=0.6)) as (driver, sim, _):
        with pytest.raises(DeviceTimeoutError):
            driver.identify()
        sim.faults.settings = FaultSettings()  # the pump recovers; its late reply is still on its way
        assert driver.diameter_mm() == pytest.approx(4.699)  # not the stale VER reply


def test_a_port_that_disappears_raises_disconnected_and_reconnect_says_why() -> None:
    with pump(FaultSettings(disconnect_after_s=0.3), time_scale=1.0) as (driver, _, server):
        driver.set_volume_ul(0.0)
        driver.run()
        assert server.disconnected.wait(5.0)
        started = time.monotonic()
        with pytest.raises(DeviceDisconnectedError, match="was lost"):
            driver.dispensed()
        assert time.monotonic() - started < 1.0
        with pytest.raises(DeviceDisconnectedError, match="cannot open port"):
            driver.reconnect()


def test_reconnect_to_a_live_pump_resumes() -> None:
    with pump() as (driver, _, _):
        driver.set_diameter_mm(8.0)
        driver.reconnect()
        assert driver.diameter_mm() == 8.0


def test_a_pump_at_another_address_stays_silent_and_the_right_one_answers() -> None:
    with pump(address=3) as (driver, _, server):
        with pytest.raises(DeviceTimeoutError):
            driver.identify()  # address 0: nobody answers
        other = SyringePumpDriver(server.port, address=3, timeout_s=0.4)
        with other:
            assert other.identify().model == "NE-1000"


# ------------------------------------------------------------------ process, record/replay, options
def test_the_simulator_runs_as_its_own_process() -> None:
    with (
        SimulatorProcess("syringe_pump", {"diameter_mm": "4.78"}, time_scale=FAST) as process,
        SyringePumpDriver(process.ports["syringe_pump"], timeout_s=1.0) as driver,
    ):
        assert driver.diameter_mm() == 4.78
        assert driver.dispense_droplet(2.0, 60.0, timeout_s=5.0) == pytest.approx(2.0)


def test_traffic_is_recorded_and_replays_to_the_driver(tmp_path: Path) -> None:
    log = TrafficLog()
    with pump() as (driver, _, _):
        driver.transport.log = log
        driver.identify()
        driver.set_diameter_mm(4.78)
        driver.diameter_mm()
    path = tmp_path / "pump.jsonl"
    log.save(path)
    replay = TrafficLog.load(path)
    driver = SyringePumpDriver("replay", opener=lambda: ReplayPort(replay))
    driver.transport = SerialTransport("replay", "syringe_pump", opener=lambda: ReplayPort(replay))
    driver.transport.open()
    assert driver.identify().firmware == "3.928"
    driver.set_diameter_mm(4.78)
    assert driver.diameter_mm() == 4.78
    with pytest.raises(DeviceProtocolError, match="recording has"):
        driver.set_diameter_mm(5.0)


def test_bad_simulator_options_are_refused_with_the_name() -> None:
    with pytest.raises(ConfigError, match="unknown syringe pump simulator option"):
        make_simulators({"diamter_mm": "4"}, FaultSettings())
    with pytest.raises(ConfigError, match=r"diameter_mm=99\.0"):
        make_simulators({"diameter_mm": "99"}, FaultSettings())
    with pytest.raises(ConfigError, match="must be a float"):
        make_simulators({"stall_after_ul": "lots"}, FaultSettings())
    assert set(make_simulators({"address": "2"}, FaultSettings())) == {"syringe_pump"}
