"""The press driver against the simulated press on a real pty: cycles, errors, faults, stops."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tablet_workcell.analysis.breaking import tensile_strength
from tablet_workcell.analysis.compaction import analyse_compaction, heckel_analysis
from tablet_workcell.devices.errors import (
    DeviceBusyError,
    DeviceDisconnectedError,
    DeviceOutOfRangeError,
    DeviceProtocolError,
    DeviceReportedError,
    DeviceStoppedError,
    DeviceTimeoutError,
)
from tablet_workcell.devices.faults import FaultInjector, FaultSettings
from tablet_workcell.devices.press import codec
from tablet_workcell.devices.press.codec import DieFill, Identity, Phase, PressState, Sample
from tablet_workcell.devices.press.driver import PressDriver
from tablet_workcell.devices.press.results import CompactionResult
from tablet_workcell.devices.press.simulator import PressSimConfig, PressSimulator, make_simulators
from tablet_workcell.devices.pty_server import PtyServer
from tablet_workcell.devices.sim_process import SimulatorProcess
from tablet_workcell.devices.transport import ReplayPort, SerialTransport, TrafficLog
from tablet_workcell.errors import ConfigError
from tablet_workcell.twin.blend import Formulation
from tablet_workcell.twin.records import BreakingRecord, CompactionRecord

BLEND = {"mcc": 0.69, "lactose": 0.3, "mgst": 0.01}
FAST = 50.0  # instrument seconds per wall second


@contextlib.contextmanager
def press(
    faults: FaultSettings | None = None,
    log: TrafficLog | None = None,
    timeout_s: float = 1.0,
    link: Path | None = None,
    **options: Any,
) -> Iterator[tuple[PressSimulator, PressDriver]]:
    config = PressSimConfig(**{"recipe": BLEND, "time_scale": FAST, "seed": 7, **options})
    sim = PressSimulator(config, faults)
    with (
        PtyServer(sim, link=link) as server,
        # Through the link when there is one: a new simulator behind the same link may get
        # another /dev/pts number, as a replugged USB adapter keeps its udev name.
        PressDriver(str(link) if link else server.port, timeout_s=timeout_s, log=log) as driver,
    ):
        yield sim, driver


def no_faults(sim: PressSimulator) -> None:
    sim.faults = FaultInjector(FaultSettings())


def prepare(driver: PressDriver, pressure_pa: float = 150e6, dwell_s: float = 0.5) -> None:
    driver.set_target_pressure_pa(pressure_pa)
    driver.set_dwell_s(dwell_s)


def analysis_record(result: CompactionResult, identity: Identity, mass_kg: float, true_density: float) -> (
    CompactionRecord
):  # fmt: skip
    """The driver's in-die record as the analyses' input type (mass and density from the recipe)."""
    in_die = result.in_die()
    return CompactionRecord(
        time_s=np.array(in_die.time_s),
        force_n=np.array(in_die.force_n),
        displacement_m=np.array(in_die.displacement_m),
        phase=np.array(in_die.phase),
        fill_height_m=result.summary.fill_height_m,
        die_diameter_m=identity.punch_diameter_m,
        powder_mass_kg=mass_kg,
        true_density_kg_per_m3=true_density,
    )


# ---------------------------------------------------------------- operations


def test_identify_status_and_settings() -> None:
    with press() as (_, driver):
        identity = driver.identify()
        assert (identity.model, identity.serial, identity.firmware) == ("TWC-MP20", "MP20-0417", "1.3.0")
        assert identity.max_force_n == 20e3 and identity.punch_diameter_m == pytest.approx(8e-3)
        status = driver.status()
        assert status.state is PressState.IDLE and status.die is DieFill.FILLED
        assert status.door_closed and not status.takeoff_occupied and status.last_error == "00"
        assert driver.target().pressure_pa == 0.0
        target = driver.set_target_force_n(7539.8)
        assert target.pressure_pa == pytest.approx(150e6, rel=1e-4)
        assert driver.set_target_pressure_pa(120e6).force_n == pytest.approx(6031.9, abs=0.1)
        assert driver.set_dwell_s(2.5) == 2.5
        assert driver.set_sample_rate_hz(100) == 100
        assert driver.die_state().die is DieFill.FILLED
        driver.clear_error()
        driver.stop()  # idle: just acknowledged
        assert driver.status().state is PressState.IDLE


def test_a_compaction_returns_the_twins_record_and_a_breaking_test_its_breaking_force() -> None:
    with press() as (sim, driver):
        identity = driver.identify()
        prepare(driver)
        seen: list[Sample] = []
        result = driver.compact(on_sample=seen.append)
        outcome = sim.last_outcome
        assert outcome is not None
        truth, tablet = outcome.record, outcome.tablet
        in_die = result.in_die()
        assert len(in_die) == truth.time_s.size and result.missing_samples == 0
        np.testing.assert_allclose(in_die.time_s, truth.time_s, rtol=0, atol=0.5e-6 + 1e-12)
        np.testing.assert_allclose(in_die.force_n, truth.force_n, rtol=0, atol=0.005 + 1e-9)
        np.testing.assert_allclose(in_die.displacement_m, truth.displacement_m, rtol=0, atol=0.005e-6 + 1e-12)
        np.testing.assert_array_equal(in_die.phase, truth.phase)
        assert [s.time_s for s in seen] == list(result.record.time_s)
        assert np.all(np.diff(result.record.time_s) > 0)
        ejection = result.ejection()
        assert len(ejection) > 50 and ejection.time_s[0] > in_die.time_s[-1]
        summary = result.summary
        assert summary.sample_count == len(result.record) and not summary.capped
        assert summary.max_force_n == pytest.approx(float(np.max(in_die.force_n)))
        assert summary.max_force_n == pytest.approx(150e6 * identity.punch_area_m2, abs=15.0)
        assert summary.fill_height_m == pytest.approx(truth.fill_height_m, abs=1e-8)
        assert summary.tablet_thickness_m == pytest.approx(tablet.thickness_m, abs=1e-8)
        assert summary.min_gap_m == pytest.approx(tablet.in_die_min_thickness_m, abs=1e-6)
        assert summary.ejection_force_n == pytest.approx(tablet.ejection_force_n, abs=2.0)
        assert (result.target_pressure_pa, result.dwell_s, result.sample_rate_hz) == (150e6, 0.5, 250)
        assert driver.die_state().die is DieFill.EMPTY and driver.die_state().takeoff_occupied

        breaking = driver.breaking_test()
        assert breaking.summary.fractured and breaking.platen_speed_m_per_s == pytest.approx(200e-6)
        assert breaking.summary.breaking_force_n == pytest.approx(tablet.breaking_force_n, abs=2.0)
        expected = sim.last_breaking_samples
        np.testing.assert_allclose(breaking.record.force_n, [s.force_n for s in expected], atol=1e-9)
        assert breaking.summary.sample_count == len(expected) == len(breaking.record)
        analysed = tensile_strength(
            BreakingRecord(
                time_s=np.array(breaking.record.time_s),
                force_n=np.array(breaking.record.force_n),
                displacement_m=np.array(breaking.record.displacement_m),
                tablet_diameter_m=identity.punch_diameter_m,
                tablet_thickness_m=summary.tablet_thickness_m,
            )
        )
        assert analysed.tensile_strength_pa == pytest.approx(tablet.tensile_strength_pa, rel=0.02)
        assert not driver.die_state().takeoff_occupied


def test_the_analysis_gets_the_twins_yield_pressure_back_from_a_driver_record() -> None:
    blend = Formulation.of(BLEND).properties
    with press(fill_mass_mg=100.0) as (_, driver):
        identity = driver.identify()
        prepare(driver, 200e6, 0.2)
        result = driver.compact()
    record = analysis_record(result, identity, 100e-6, blend.true_density_kg_per_m3)
    heckel = heckel_analysis(record)
    assert heckel.yield_pressure_pa == pytest.approx(blend.yield_pressure_pa, rel=0.03)
    analysis = analyse_compaction(record, result.summary.tablet_thickness_m)
    assert analysis.max_force_n == pytest.approx(result.summary.max_force_n)
    assert analysis.elastic_recovery.out_of_die_recovery == pytest.approx(
        (result.summary.tablet_thickness_m - result.summary.min_gap_m) / result.summary.min_gap_m, rel=0.01
    )


def test_a_capping_blend_is_flagged_and_its_breaking_test_finds_no_fracture() -> None:
    with press(recipe={"apap": 0.8, "lactose": 0.19, "mgst": 0.01}) as (sim, driver):
        prepare(driver)
        result = driver.compact()
        assert sim.last_outcome is not None and sim.last_outcome.tablet.capped
        assert result.summary.capped
        breaking = driver.breaking_test(platen_speed_m_per_s=500e-6)
        assert not breaking.summary.fractured and breaking.summary.breaking_force_n < 5.0
        assert breaking.platen_speed_m_per_s == pytest.approx(500e-6)


# ---------------------------------------------------------------- refusals


def test_the_press_refuses_cycles_it_cannot_run_with_its_codes() -> None:
    def code_of(action: Any) -> str:
        with pytest.raises(DeviceReportedError) as caught:
            action()
        return caught.value.code

    with press(auto_fill=False) as (sim, driver):
        assert code_of(driver.compact) == "15"  # no target
        prepare(driver)
        assert code_of(driver.eject) == "08"  # nothing pressed
        assert code_of(driver.breaking_test) == "08"  # take-off empty
        driver.compact()
        assert code_of(driver.compact) == "09"  # the last tablet still at take-off
        assert sim.take_tablet() is not None
        assert code_of(driver.compact) == "07"  # no auto fill
        sim.remove_die()
        assert code_of(driver.compact) == "06"
        assert driver.status().die is DieFill.NONE
        sim.load_die(BLEND, 80.0)
        assert driver.compact().summary.sample_count > 0


def test_an_open_guard_door_refuses_motion_and_clear() -> None:
    with press(door_open=True) as (sim, driver):
        prepare(driver)
        with pytest.raises(DeviceReportedError) as refused:
            driver.compact()
        assert refused.value.code == "10" and "guard door" in str(refused.value)
        with pytest.raises(DeviceReportedError, match="guard door"):
            driver.clear_error()
        assert not driver.status().door_closed
        sim.close_door()
        driver.clear_error()
        assert driver.compact().summary.sample_count > 0


def test_out_of_range_requests_are_refused_before_sending_once_limits_are_known() -> None:
    log = TrafficLog()
    with press(log=log) as (_, driver):
        with pytest.raises(DeviceOutOfRangeError) as by_press:
            driver.set_target_pressure_pa(500e6)  # limit not yet known: the press refuses
        assert by_press.value.code == "03" and "397.89" in str(by_press.value)
        with pytest.raises(DeviceOutOfRangeError) as force:
            driver.set_target_force_n(25e3)
        assert force.value.code == "03"
        driver.identify()
        sent = len(log.entries)
        for action in (
            lambda: driver.set_target_pressure_pa(500e6),
            lambda: driver.set_target_pressure_pa(float("nan")),
            lambda: driver.set_target_force_n(5.0),
            lambda: driver.set_dwell_s(61.0),
            lambda: driver.set_sample_rate_hz(1000),
            lambda: driver.breaking_test(platen_speed_m_per_s=5e-3),
        ):
            with pytest.raises(DeviceOutOfRangeError) as local:
                action()
            assert local.value.code == ""
        assert len(log.entries) == sent  # nothing went on the wire
        with pytest.raises(DeviceOutOfRangeError, match=r"400 MPa is outside .* 1 MPa \.\. 397\.887 MPa"):
            driver.set_target_pressure_pa(4e8)


def test_raw_protocol_errors_busy_unknown_syntax_checksum(tmp_path: Path) -> None:
    sim = PressSimulator(PressSimConfig(recipe=BLEND, time_scale=5.0))
    with PtyServer(sim) as server, SerialTransport(server.port, "press", timeout_s=1.0) as port:

        def ask(raw: bytes) -> str:
            return codec.unframe(port.transact(raw, b"\r\n"))

        assert ask(codec.encode_command("XYZ")) == "ER 01 UNKNOWN XYZ"
        assert ask(codec.encode_command("TGT", "P")).startswith("ER 02 SYNTAX")
        assert ask(b"TGT P 150.00*0000\r\n") == "ER 04 CHECKSUM"
        assert ask(b"TGT P 150.00\r\n") == "ER 04 CHECKSUM"
        assert ask(codec.encode_command("IDN", "extra")).startswith("ER 02 SYNTAX")
        assert ask(codec.encode_target_pressure(150e6)) == "OK TGT 150.00 7539.8"
        assert ask(codec.encode_compact()).startswith("OK CMP")
        port.write(codec.encode_dwell(1.0) + codec.encode_status() + codec.encode_stop())
        bodies: list[str] = []
        while not bodies or not bodies[-1].startswith("ER 14"):
            bodies.append(codec.unframe(port.read_until(b"\r\n", 2.0)))
        assert "ER 05 BUSY" in bodies and bodies[-2:] == ["OK STP", "ER 14 ABORTED"]
        assert any(b.startswith("OK STA COMPACT") for b in bodies)


# ---------------------------------------------------------------- faults during cycles


def test_overload_mid_cycle_latches_until_cleared_and_the_compact_can_be_ejected() -> None:
    with press(overload_at_s=1.0) as (sim, driver):
        prepare(driver)
        seen: list[Sample] = []
        with pytest.raises(DeviceReportedError) as caught:
            driver.compact(on_sample=seen.append)
        assert caught.value.code == "11" and "load cell" in str(caught.value)
        assert seen[-1].force_n == pytest.approx(21200.0) and seen[-2].time_s < 1.0
        status = driver.status()
        assert (status.state, status.die, status.last_error) == (PressState.FAULT, DieFill.PRESSED, "11")
        with pytest.raises(DeviceReportedError) as latched:
            driver.compact()
        assert latched.value.code == "13"
        driver.clear_error()
        ejected = driver.eject()
        assert ejected.summary.sample_count == len(ejected.record) > 0
        assert set(ejected.record.phase) == {Phase.EJECTION}
        sim.overload_at_s = 0.0
        assert sim.take_tablet() is not None
        assert driver.compact().summary.sample_count > 0  # auto fill, normal cycle


def test_a_motion_fault_mid_cycle_is_reported_and_latched() -> None:
    with press(motion_fault_at_s=0.5) as (_, driver):
        prepare(driver)
        with pytest.raises(DeviceReportedError) as caught:
            driver.compact()
        assert caught.value.code == "12" and "drive" in str(caught.value)
        assert driver.status().state is PressState.FAULT
        driver.clear_error()
        assert driver.status().last_error == "00"


def test_the_guard_door_opening_mid_cycle_stops_it() -> None:
    with press() as (sim, driver):
        prepare(driver)

        def open_door_later(sample: Sample) -> None:
            if sample.time_s > 0.4:
                sim.open_door()

        with pytest.raises(DeviceReportedError) as caught:
            driver.compact(on_sample=open_door_later)
        assert caught.value.code == "10"
        with pytest.raises(DeviceReportedError):
            driver.clear_error()
        sim.close_door()
        driver.clear_error()
        assert driver.status().state is PressState.IDLE


def test_a_stop_event_aborts_a_cycle_within_100_ms() -> None:
    with press(time_scale=1.0) as (_, driver):
        prepare(driver, 150e6, 5.0)
        stop = threading.Event()
        set_at: list[float] = []

        def stop_after_some_samples(sample: Sample) -> None:
            if sample.time_s >= 0.1 and not stop.is_set():
                set_at.append(time.monotonic())
                stop.set()

        with pytest.raises(DeviceStoppedError) as caught:
            driver.compact(on_sample=stop_after_some_samples, stop_event=stop)
        latency = time.monotonic() - set_at[0]
        assert caught.value.code == "14"
        assert latency < 0.5  # design: one 20 ms read slice plus the press's answer
        status = driver.status()
        assert status.state is PressState.IDLE and status.last_error == "14"


def test_stop_from_another_thread_aborts_the_running_cycle_and_the_compact_ejects() -> None:
    with press() as (_, driver):
        prepare(driver, 150e6, 5.0)
        called_at: list[float] = []

        def stop_in_dwell(sample: Sample) -> None:
            if sample.phase is Phase.DWELL and not called_at:
                called_at.append(time.monotonic())
                threading.Thread(target=driver.stop).start()

        with pytest.raises(DeviceStoppedError):
            driver.compact(on_sample=stop_in_dwell)
        assert time.monotonic() - called_at[0] < 0.5
        assert driver.die_state().die is DieFill.PRESSED
        ejected = driver.eject()
        assert ejected.summary.ejection_force_n > 5.0
        assert driver.die_state().takeoff_occupied


def test_a_failing_callback_stops_the_press_and_propagates() -> None:
    # At FAST the whole cycle lasts a few tens of ms of wall time: on a loaded machine it
    # could end before the driver read the first sample, and then there is nothing left to
    # stop (CI saw last_error "00"). At 2x the stop lands mid-cycle however busy the machine.
    with press(time_scale=2.0) as (_, driver):
        prepare(driver)

        def broken(sample: Sample) -> None:
            raise ValueError("publisher gone")

        with pytest.raises(ValueError, match="publisher gone"):
            driver.compact(on_sample=broken)
        status = driver.status()
        assert status.state is PressState.IDLE and status.last_error == "14"


def test_a_cycle_longer_than_its_timeout_is_stopped() -> None:
    with press(time_scale=1.0) as (_, driver):
        prepare(driver)
        with pytest.raises(DeviceTimeoutError, match=r"longer than 0\.1 s"):
            driver.compact(timeout_s=0.1)
        assert driver.status().state is PressState.IDLE


def test_a_stream_that_falls_silent_times_out_and_stops_the_press() -> None:
    with press(time_scale=0.01) as (_, driver):  # one sample every 0.4 s
        driver.stream_timeout_s = 0.2
        prepare(driver)
        started = time.monotonic()
        with pytest.raises(DeviceTimeoutError, match="fell silent"):
            driver.compact()
        assert time.monotonic() - started < 2.0
        assert driver.status().state is PressState.IDLE


# ---------------------------------------------------------------- transport faults


def test_a_silent_press_times_out_and_the_driver_recovers() -> None:
    with press(FaultSettings(drop_probability=1.0), timeout_s=0.3) as (sim, driver):
        started = time.monotonic()
        with pytest.raises(DeviceTimeoutError):
            driver.identify()
        assert time.monotonic() - started < 1.0
        no_faults(sim)
        assert driver.identify().model == "TWC-MP20"


def test_a_lost_cycle_acknowledgement_stops_the_press_it_may_have_started() -> None:
    with press(timeout_s=0.3, time_scale=5.0) as (sim, driver):  # the cycle outlasts the timeout
        prepare(driver, 150e6, 5.0)
        sim.faults = FaultInjector(FaultSettings(drop_probability=1.0))
        with pytest.raises(DeviceTimeoutError):
            driver.compact()
        no_faults(sim)
        status = driver.status()
        assert status.state is PressState.IDLE and status.last_error == "14"


def test_garbled_and_truncated_replies_are_typed_errors_and_the_driver_recovers() -> None:
    with press(FaultSettings(garble_probability=1.0, seed=2)) as (sim, driver):
        with pytest.raises(DeviceProtocolError):
            driver.status()
        sim.faults = FaultInjector(FaultSettings(truncate_probability=1.0))
        driver.timeout_s = 0.3
        with pytest.raises(DeviceTimeoutError, match="received only"):
            driver.status()
        no_faults(sim)
        assert driver.status().state is PressState.IDLE


def test_the_presss_own_error_code_injected_is_a_busy_error() -> None:
    with press(FaultSettings(device_error_probability=1.0)) as (sim, driver):
        with pytest.raises(DeviceBusyError) as caught:
            driver.status()
        assert caught.value.code == "05"
        no_faults(sim)
        assert driver.status().state is PressState.IDLE


def test_a_slow_press_answers_late_and_a_too_slow_one_times_out() -> None:
    with press(FaultSettings(reply_delay_s=0.15)) as (sim, driver):
        started = time.monotonic()
        assert driver.identify().model == "TWC-MP20"
        assert time.monotonic() - started >= 0.14
        driver.timeout_s = 0.05
        with pytest.raises(DeviceTimeoutError):
            driver.status()
        driver.timeout_s = 1.0
        no_faults(sim)
        assert driver.die_state().die is DieFill.FILLED  # the late STA reply is skipped


def test_a_port_that_disappears_mid_cycle_raises_disconnected_and_reconnect_works(tmp_path: Path) -> None:
    link = tmp_path / "ttyPRESS"
    with press(FaultSettings(disconnect_after_s=0.3), link=link, time_scale=5.0) as (_, driver):
        prepare(driver)
        started = time.monotonic()
        with pytest.raises(DeviceDisconnectedError):
            driver.compact()
        assert time.monotonic() - started < 3.0
        with pytest.raises(DeviceDisconnectedError):
            driver.reconnect()
        with PtyServer(PressSimulator(PressSimConfig(recipe=BLEND)), link=link):
            driver.reconnect()
            assert driver.identify().model == "TWC-MP20"


# ---------------------------------------------------------------- process, record and replay


def test_the_press_simulator_as_its_own_process() -> None:
    options = {"recipe": "mcc:0.69,lactose:0.3,mgst:0.01", "time_scale": "50", "seed": "3"}
    with SimulatorProcess("press", options=options) as process, PressDriver(process.ports["press"]) as driver:
        assert driver.identify().serial == "MP20-0417"
        prepare(driver)
        result = driver.compact()
        assert result.summary.max_force_n == pytest.approx(7540.0, abs=20.0)
        assert driver.breaking_test().summary.fractured


def test_a_recorded_session_replays_to_the_same_results(tmp_path: Path) -> None:
    log = TrafficLog()
    with press(log=log) as (_, driver):
        driver.identify()
        prepare(driver)
        live = driver.compact()
        live_breaking = driver.breaking_test()
    path = tmp_path / "press.jsonl"
    log.save(path)
    recording = TrafficLog.load(path)
    with PressDriver("replay", opener=lambda: ReplayPort(recording)) as replayed:
        replayed.identify()
        prepare(replayed)
        again = replayed.compact()
        np.testing.assert_array_equal(again.record.force_n, live.record.force_n)
        assert again.summary == live.summary
        assert replayed.breaking_test().summary == live_breaking.summary
    with (
        PressDriver("replay", opener=lambda: ReplayPort(recording)) as changed,
        pytest.raises(DeviceProtocolError, match="recording has"),
    ):
        changed.status()


def test_simulator_options_from_the_command_line_and_their_errors() -> None:
    options = {
        "recipe": "mcc:0.99,mgst:0.01",
        "fill_mass_mg": "80",
        "auto_fill": "0",
        "punch_diameter_mm": "6",
        "door_open": "true",
        "overload_at_s": "1.5",
        "seed": "4",
    }
    sim = make_simulators(options, FaultSettings())["press"]
    assert isinstance(sim, PressSimulator)
    config = sim.config
    assert config.recipe == {"mcc": 0.99, "mgst": 0.01} and config.fill_mass_mg == 80.0
    assert not config.auto_fill and config.door_open and config.punch_diameter_m == pytest.approx(6e-3)
    assert (config.overload_at_s, config.seed) == (1.5, 4)
    for bad, match in [
        ({"colour": "red"}, "unknown press option"),
        ({"recipe": "mcc=1"}, "material:fraction"),
        ({"recipe": "mcc:0.5"}, "sum to"),
        ({"recipe": "unobtainium:1"}, "unknown material"),
        ({"time_scale": "fast"}, "not a valid number"),
        ({"time_scale": "-1"}, "positive"),
        ({"motion_fault_at_s": "nan"}, "0 \\(off\\) or more"),
        ({"auto_fill": "maybe"}, "true or false"),
        ({"serial": "A B"}, "printable"),
    ]:
        with pytest.raises(ConfigError, match=match):
            make_simulators(bad, FaultSettings())
