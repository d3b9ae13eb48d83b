"""The Marlin arm driver against its simulator on a real pty: motion, stops, faults, stations."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tablet_workcell.devices.arm.driver import ArmDriver
from tablet_workcell.devices.arm.layout import load_layout
from tablet_workcell.devices.arm.simulator import MarlinArmSimulator, make_simulators
from tablet_workcell.devices.arm.stations import StationMover
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
from tablet_workcell.devices.transport import ReplayPort, TrafficLog
from tablet_workcell.errors import ConfigError

FAST = 20.0
LAYOUT = load_layout()


@contextmanager
def arm(
    faults: FaultSettings | None = None,
    time_scale: float = FAST,
    timeout_s: float = 1.0,
    log: TrafficLog | None = None,
) -> Iterator[tuple[ArmDriver, MarlinArmSimulator, PtyServer]]:
    sim = MarlinArmSimulator(faults)
    with PtyServer(sim, time_scale=time_scale) as server:
        driver = ArmDriver(server.port, timeout_s=timeout_s, envelope=LAYOUT.work_envelope, log=log)
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
def test_identify_reads_marlins_firmware_report() -> None:
    with arm() as (driver, _, _):
        driver.open()
        identity = driver.identify()
        assert identity.model == "Tablet Cell Arm" and identity.firmware.startswith("Marlin 2.1")
        assert identity.serial == "3f2b8c1e-5a7d-4c1b-9e2f-0d6a4b8c7e21"
        assert driver.firmware_limits is not None and driver.firmware_limits.max_mm == (450.0, 350.0, 320.0)


def test_home_then_move_shows_intermediate_positions_and_arrives() -> None:
    with arm(time_scale=5.0) as (driver, sim, _):
        driver.open()
        assert driver.home().as_tuple == pytest.approx((0.0, 0.0, 0.32))
        driver.move_to(0.30, 0.10, 0.20, 0.25, wait=False)
        seen = []
        while sim.moving:
            seen.append(driver.position().x_m)
            time.sleep(0.01)
        assert len(seen) >= 3 and any(0.01 < x < 0.29 for x in seen), seen
        assert seen == sorted(seen)
        driver.wait_idle()
        assert driver.position().as_tuple == pytest.approx((0.30, 0.10, 0.20))


def test_a_move_takes_the_time_its_trapezoid_takes() -> None:
    with arm(time_scale=10.0) as (driver, _, _):
        driver.open()
        driver.home()
        started = time.monotonic()
        driver.move_to(0.0, 0.0, 0.12, 0.1)  # 200 mm down: limited to 100 mm/s in z... at 0.1 m/s: ~2.07 s
        took = (time.monotonic() - started) * 10.0
    assert 1.9 < took < 3.5


def test_grip_and_release_switch_the_suction_after_the_moves() -> None:
    with arm() as (driver, sim, _):
        driver.open()
        driver.home()
        driver.move_to(0.2, 0.0, 0.1, 0.2, wait=False)
        driver.grip(settle_s=0.05)
        assert sim.suction_on and not sim.moving  # M400 first: the move had finished
        driver.release(settle_s=0.0)
        assert not sim.suction_on


def test_moving_before_homing_is_refused_by_the_firmware() -> None:
    with arm() as (driver, _, _):
        driver.open()
        with pytest.raises(DeviceReportedError, match="must be homed") as raised:
            driver.move_to(0.1, 0.0, 0.1, 0.1)
        assert raised.value.code == "Home XYZ First"


def test_targets_outside_the_envelope_are_refused_before_sending() -> None:
    log = TrafficLog()
    with arm(log=log) as (driver, _, _):
        driver.open()
        driver.home()
        sent = len(log.entries)
        with pytest.raises(DeviceOutOfRangeError, match=r"x=0\.5000 m is outside the cell's work envelope"):
            driver.move_to(0.5, 0.0, 0.1, 0.1)
        with pytest.raises(DeviceOutOfRangeError, match="speed"):
            driver.move_to(0.1, 0.0, 0.1, 2.0)
        with pytest.raises(DeviceOutOfRangeError, match="finite"):
            driver.move_to(float("nan"), 0.0, 0.1, 0.1)
        driver.envelope = None  # only the firmware's soft endstops left
        with pytest.raises(DeviceOutOfRangeError, match="soft endstops"):
            driver.move_to(0.0, 0.0, 0.40, 0.1)
        assert len(log.entries) == sent  # nothing went out


def test_the_simulated_firmware_clips_targets_to_its_soft_endstops_as_marlin_does() -> None:
    with arm() as (driver, sim, _):
        driver.open()
        driver.home()
        driver.envelope, driver.firmware_limits = None, None  # bypass the driver's own check
        driver.move_to(0.0, 0.0, 0.9, 0.2)  # Marlin clips z to Z_MAX_POS = 320 mm, silently
        assert sim.position_mm[2] == 320.0


def test_an_unknown_command_is_reported_by_the_firmware() -> None:
    with arm() as (driver, _, _):
        driver.open()
        with pytest.raises(DeviceReportedError, match="does not know 'G999 X1'"):
            driver._transact("G999 X1")


# ------------------------------------------------------------------ stopping
def test_stop_from_another_thread_halts_within_100_ms_and_keeps_the_position() -> None:
    errors: list[Exception] = []
    with arm(time_scale=1.0, timeout_s=2.0) as (driver, sim, _):
        driver.open()
        sim.homed, sim.position_mm, sim.physical_mm = (
            True,
            (0.0, 0.0, 300.0),
            (0.0, 0.0, 300.0),
        )  # skip homing

        def move() -> None:
            try:
                driver.move_to(0.30, 0.0, 0.30, 0.1)  # 3 s of travel
            except Exception as error:  # collected for the assertion
                errors.append(error)

        worker = threading.Thread(target=move)
        worker.start()
        wait_for(lambda: sim.physical_mm[0] > 20.0)
        started = time.monotonic()
        driver.stop()
        wait_for(lambda: not sim.moving, timeout_s=1.0)
        halted_s = time.monotonic() - started
        worker.join(timeout=3.0)
        returned_s = time.monotonic() - started
        assert not worker.is_alive()
        assert halted_s < 0.5, f"steppers stopped {halted_s * 1000:.0f} ms after stop()"
        assert returned_s < 0.5
        assert len(errors) == 1 and isinstance(errors[0], DeviceStoppedError)
        where = driver.position()
        assert 0.02 < where.x_m < 0.29 and sim.homed  # stopped part-way, position kept
        driver.move_to(0.1, 0.0, 0.25, 0.2)  # and the arm works on
        assert driver.position().as_tuple == pytest.approx((0.1, 0.0, 0.25))


def test_a_stop_while_idle_is_reported_once_by_the_next_operation() -> None:
    with arm() as (driver, _, _):
        driver.open()
        driver.home()
        driver.stop()
        with pytest.raises(DeviceStoppedError):
            driver.move_to(0.1, 0.0, 0.1, 0.2)
        driver.move_to(0.1, 0.0, 0.1, 0.2)


def test_emergency_stop_halts_the_firmware_until_reset() -> None:
    with arm(timeout_s=0.3) as (driver, sim, _):
        driver.open()
        driver.home()
        driver.move_to(0.3, 0.0, 0.1, 0.1, wait=False)
        driver.emergency_stop()
        wait_for(lambda: sim.killed)
        assert not sim.moving
        started = time.monotonic()
        with pytest.raises(DeviceStoppedError, match="reset button"):
            driver.position()
        assert time.monotonic() - started < 0.1  # refused at once, no wait for a dead firmware
        with pytest.raises(DeviceTimeoutError):
            driver.reconnect()  # the killed firmware answers nothing
        sim.reset()
        driver.reconnect()
        with pytest.raises(DeviceReportedError, match="must be homed"):
            driver.move_to(0.1, 0.0, 0.1, 0.1)  # a reset board has lost its home
        driver.home()


def test_a_busy_firmware_keeps_a_long_wait_alive() -> None:
    with arm(time_scale=10.0, timeout_s=0.3) as (driver, _, _):
        driver.open()
        driver.home(timeout_s=0.3)  # ~3.4 s of homing = 0.34 s wall; busy lines extend the wait
        driver.move_to(0.3, 0.0, 0.1, 0.05, wait=False)  # 7 s of travel = 0.7 s wall
        driver.wait_idle(timeout_s=0.3)


# ------------------------------------------------------------------ injected faults
def test_lost_replies_time_out_and_the_driver_resynchronises() -> None:
    with arm(timeout_s=0.3) as (driver, sim, _):
        driver.open()
        sim.faults.settings = FaultSettings(drop_probability=1.0)
        started = time.monotonic()
        with pytest.raises(DeviceTimeoutError):
            driver.identify()
        assert time.monotonic() - started < 1.0
        sim.faults.settings = FaultSettings()
        assert driver.identify().model == "Tablet Cell Arm"


def test_a_garbled_reply_is_a_protocol_error_and_the_next_command_works() -> None:
    with arm() as (driver, sim, _):
        driver.open()
        sim.faults.settings = FaultSettings(garble_probability=1.0, seed=3)
        with pytest.raises(DeviceProtocolError, match="damaged reply"):
            driver.identify()
        sim.faults.settings = FaultSettings()
        assert driver.soft_endstops().enabled


def test_a_truncated_reply_times_out_naming_what_came() -> None:
    with arm(timeout_s=0.3) as (driver, sim, _):
        driver.open()
        sim.faults.settings = FaultSettings(truncate_probability=1.0)
        with pytest.raises(DeviceTimeoutError, match="received only"):
            driver.identify()


def test_checksum_errors_are_resent_and_persistent_ones_reported() -> None:
    log = TrafficLog()
    with arm(FaultSettings(device_error_probability=0.3, seed=2), log=log) as (driver, _, _):
        driver.open()
        for _ in range(5):
            assert driver.soft_endstops().enabled
        assert "Resend:" in log.text()
    with arm() as (driver, sim, _):
        driver.open()
        sim.faults.settings = FaultSettings(device_error_probability=1.0)
        with pytest.raises(DeviceReportedError, match="refused 'M115' 4 times") as raised:
            driver.identify()
        assert raised.value.code == "checksum mismatch"


def test_a_slow_firmware_is_waited_for_and_a_too_slow_one_recovers() -> None:
    with arm(timeout_s=1.0) as (driver, sim, _):
        driver.open()
        sim.faults.settings = FaultSettings(reply_delay_s=0.2)
        assert driver.soft_endstops().enabled
        sim.faults.settings = FaultSettings(reply_delay_s=1.5)
        with pytest.raises(DeviceTimeoutError):
            driver.identify()
        sim.faults.settings = FaultSettings()
        assert driver.soft_endstops().enabled  # the late ok is accounted for by the resync


def test_a_port_that_disappears_raises_disconnected() -> None:
    with arm(FaultSettings(disconnect_after_s=0.5), time_scale=1.0) as (driver, _, server):
        driver.open()
        assert server.disconnected.wait(5.0)
        started = time.monotonic()
        with pytest.raises(DeviceDisconnectedError):
            driver.identify()
        assert time.monotonic() - started < 1.5
        with pytest.raises(DeviceDisconnectedError, match="cannot open port"):
            driver.reconnect()


# ------------------------------------------------------------------ stations
def test_transfer_picks_carries_at_safe_height_and_places(monkeypatch: pytest.MonkeyPatch) -> None:
    with arm() as (driver, sim, _):
        driver.open()
        driver.home()
        heights: list[float] = []
        mover = StationMover(driver, LAYOUT, settle_s=0.0)
        original = driver.move_to

        def spy(
            x: float, y: float, z: float, speed: float, wait: bool = True, timeout_s: float | None = None
        ) -> None:
            heights.append(z)
            original(x, y, z, speed, wait, timeout_s)
            if abs(z - LAYOUT.station("dispenser").position_m[2]) < 1e-9:
                assert not sim.suction_on  # grip comes after arriving

        monkeypatch.setattr(driver, "move_to", spy)  # record the height of each leg
        mover.transfer("dispenser", "press")
        assert not sim.suction_on
        press = LAYOUT.station("press").position_m
        assert driver.position().as_tuple == pytest.approx((press[0], press[1], LAYOUT.safe_travel_height_m))
        assert heights == [0.2, 0.06, 0.2, 0.2, 0.07, 0.2]  # across, down, up, across, down, up


def test_entering_the_press_zone_needs_the_zone_and_fails_before_moving() -> None:
    with arm() as (driver, sim, _):
        driver.open()
        driver.home()
        mover = StationMover(driver, LAYOUT, may_enter_press_zone=lambda: False)
        mover.move_to_station("tablet_tray")  # never near the press
        before = sim.position_mm
        with pytest.raises(DeviceBusyError, match="enters the press zone"):
            mover.move_to_station("press")
        assert sim.position_mm != before  # it went up and across, at the safe height ...
        assert sim.position_mm[2] == pytest.approx(LAYOUT.safe_travel_height_m * 1000.0)  # ... but not down


# ------------------------------------------------------------------ process, record/replay, options
def test_the_simulator_runs_as_its_own_process() -> None:
    with (
        SimulatorProcess("arm", {"accel_mm_s2": "2000"}, time_scale=FAST) as process,
        ArmDriver(process.ports["arm"], envelope=LAYOUT.work_envelope) as driver,
    ):
        driver.home()
        driver.move_to(0.2, 0.1, 0.15, 0.2)
        assert driver.position().as_tuple == pytest.approx((0.2, 0.1, 0.15))


def test_traffic_is_recorded_and_replays_to_the_driver(tmp_path: Path) -> None:
    log = TrafficLog()
    with arm(log=log) as (driver, _, _):
        driver.open()
        driver.identify()
        driver.home()
        driver.move_to(0.1, 0.0, 0.2, 0.2)
    path = tmp_path / "arm.jsonl"
    log.save(path)
    replay = TrafficLog.load(path)
    driver = ArmDriver("replay", envelope=LAYOUT.work_envelope, opener=lambda: ReplayPort(replay))
    with driver:
        assert driver.identify().model == "Tablet Cell Arm"
        driver.home()
        driver.move_to(0.1, 0.0, 0.2, 0.2)
        with pytest.raises(DeviceProtocolError, match="recording has"):
            driver.grip()


def test_bad_simulator_options_are_refused_with_the_name() -> None:
    with pytest.raises(ConfigError, match="unknown arm simulator option"):
        make_simulators({"acel_mm_s2": "1"}, FaultSettings())
    with pytest.raises(ConfigError, match="three numbers"):
        make_simulators({"max_mm": "1,2"}, FaultSettings())
    with pytest.raises(ConfigError, match="must be below max_mm"):
        make_simulators({"min_mm": "500,0,0"}, FaultSettings())
    with pytest.raises(ConfigError, match="above 0"):
        make_simulators({"accel_mm_s2": "-1"}, FaultSettings())
    assert set(make_simulators({"home_mm": "0,0,300"}, FaultSettings())) == {"arm"}
