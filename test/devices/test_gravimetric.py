"""Gravimetric dosing over the balance and dosing-head drivers, end to end over real ptys."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tablet_workcell.devices.balance.driver import MtSicsBalance
from tablet_workcell.devices.dosing.driver import DosingBus
from tablet_workcell.devices.dosing.feed_model import FeedModel
from tablet_workcell.devices.dosing.gravimetric import (
    DoseProgress,
    DoseSettings,
    DoseTimeoutError,
    FeederJamError,
    GravimetricDoser,
    HopperEmptyError,
    OvershootError,
)
from tablet_workcell.devices.dosing.simulator import DispensingWorld, DosingBusSimulator, make_simulators
from tablet_workcell.devices.errors import DeviceError, DeviceStoppedError
from tablet_workcell.devices.faults import FaultSettings
from tablet_workcell.devices.pty_server import PtyServer
from tablet_workcell.devices.sim_process import SimulatorProcess

SCALE = 5.0  # instrument seconds per wall second


@dataclass
class Station:
    doser: GravimetricDoser
    bus: DosingBus
    world: DispensingWorld


@contextlib.contextmanager
def station(settings: DoseSettings | None = None, **options: Any) -> Iterator[Station]:
    sims = make_simulators({key: str(value) for key, value in options.items()}, FaultSettings())
    feeder = sims["feeder"]
    assert isinstance(feeder, DosingBusSimulator)
    with (
        PtyServer(sims["balance"], time_scale=SCALE) as balance_port,
        PtyServer(feeder, time_scale=SCALE) as feeder_port,
        MtSicsBalance(balance_port.port) as balance,
        DosingBus(feeder_port.port) as bus,
    ):
        doser = GravimetricDoser(balance, settings or DoseSettings(time_scale=SCALE))
        yield Station(doser, bus, feeder.world)


def test_a_20_mg_dose_lands_within_tolerance() -> None:
    phases: list[str] = []
    with station(seed=1) as cell:
        result = cell.doser.dose(
            cell.bus.head(1), 20e-6, "lactose", progress=lambda p: phases.append(p.phase)
        )
        true_kg = cell.world.landed_kg
    assert result.within_tolerance and result.tolerance_kg == pytest.approx(0.5e-6)
    assert abs(result.error_kg) < 0.5e-6 and abs(true_kg - 20e-6) < 0.5e-6
    assert result.dosed_kg == pytest.approx(true_kg, abs=0.05e-6)  # the balance reading is the truth
    assert phases[0] == "taring" and {"fast", "slow", "settling"} <= set(phases)
    assert "lactose" in cell.doser.correction


def test_a_recipe_reports_each_component() -> None:
    progress: list[DoseProgress] = []
    with station(heads="lactose:5000,mcc:5000", seed=2) as cell:
        plan = {"mcc": (cell.bus.head(2), 30e-6), "lactose": (cell.bus.head(1), 12e-6)}
        results = cell.doser.dose_recipe(plan, progress=progress.append)
        fed = {h.powder: h.total_fed_kg for h in cell.world.heads.values()}
    assert [r.component for r in results] == ["mcc", "lactose"]
    for result in results:
        assert result.within_tolerance, result
        assert fed[result.component] == pytest.approx(result.dosed_kg, abs=0.3e-6)
    assert {p.component for p in progress} == {"mcc", "lactose"}
    assert all(p.target_kg in (30e-6, 12e-6) for p in progress)


def test_an_empty_hopper_is_refused_before_feeding() -> None:
    with (
        station(heads="lactose:5") as cell,
        pytest.raises(HopperEmptyError, match=r"holds 5\.00 mg") as raised,
    ):
        cell.doser.dose(cell.bus.head(1), 20e-6, "lactose")
    assert raised.value.code == "E10" and cell.world.heads[1].total_fed_kg == 0.0


def test_a_hopper_that_runs_empty_mid_dose_is_a_typed_error() -> None:
    settings = DoseSettings(time_scale=SCALE, check_hopper=False)
    with station(settings, heads="lactose:5") as cell:
        with pytest.raises(HopperEmptyError, match=r"after \d+\.\d\d mg of 20\.00 mg"):
            cell.doser.dose(cell.bus.head(1), 20e-6, "lactose")
        assert cell.world.heads[1].fraction == 0.0


def test_a_jam_mid_dose_is_a_typed_error_and_the_head_is_stopped() -> None:
    with station(jam="lactose:4") as cell:
        with pytest.raises(FeederJamError, match="jammed") as raised:
            cell.doser.dose(cell.bus.head(1), 20e-6, "lactose")
        assert raised.value.code == "E11" and cell.world.heads[1].fraction == 0.0


@pytest.mark.parametrize("how", ["event", "stop()"])
def test_a_cancel_halts_the_feeder_within_100_ms(how: str) -> None:
    with station(seed=3) as cell:
        cancel = threading.Event()
        feeding = threading.Event()
        outcome: list[BaseException] = []

        def on_progress(p: DoseProgress) -> None:
            if p.phase == "fast":
                feeding.set()

        def run() -> None:
            try:
                cell.doser.dose(cell.bus.head(1), 80e-6, "lactose", on_progress, cancel)
            except BaseException as error:
                outcome.append(error)

        worker = threading.Thread(target=run)
        worker.start()
        try:
            assert feeding.wait(10.0)
            time.sleep(0.05)
            assert cell.world.heads[1].fraction > 0
            started = time.monotonic()
            cancel.set() if how == "event" else cell.doser.stop()
            while cell.world.heads[1].fraction > 0 and time.monotonic() - started < 1.0:
                time.sleep(0.001)
            halted_s = time.monotonic() - started
        finally:
            cancel.set()
            worker.join(timeout=5.0)
        assert halted_s < 0.1, f"feeder still running {halted_s * 1e3:.0f} ms after the stop"
        assert len(outcome) == 1 and isinstance(outcome[0], DeviceStoppedError)
        assert "cancelled after" in str(outcome[0])


def test_an_overshoot_beyond_tolerance_is_a_typed_error_with_the_result() -> None:
    blind = DoseSettings(
        time_scale=SCALE, fall_time_s=0.0, tau_s=0.001, slow_fraction=1.0, min_fraction=1.0, max_top_ups=0
    )
    with station(blind) as cell, pytest.raises(OvershootError, match="over the") as raised:
        cell.doser.dose(cell.bus.head(1), 15e-6, "lactose")
    assert raised.value.result.error_kg > 2e-6 and not raised.value.result.within_tolerance


def test_a_dose_that_takes_too_long_times_out_and_stops_the_head() -> None:
    with station(DoseSettings(time_scale=SCALE, timeout_s=1.0)) as cell:
        with pytest.raises(DoseTimeoutError, match="after 1 s"):
            cell.doser.dose(cell.bus.head(1), 100e-6, "lactose")
        assert cell.world.heads[1].fraction == 0.0


def test_impossible_targets_are_refused() -> None:
    with station() as cell, pytest.raises(DeviceError, match="must be positive"):
        cell.doser.dose(cell.bus.head(1), 0.0)


def test_a_dose_through_the_simulator_process() -> None:
    with (
        SimulatorProcess("dispensing_station", {"seed": 6}, time_scale=SCALE) as sim,
        MtSicsBalance(sim.ports["balance"]) as balance,
        DosingBus(sim.ports["feeder"]) as bus,
    ):
        result = GravimetricDoser(balance, DoseSettings(time_scale=SCALE)).dose(bus.head(1), 25e-6)
    assert result.within_tolerance and result.component == "head 01"


def test_the_feed_model_matches_the_physics_in_steady_flow_and_after_a_stop() -> None:
    model = FeedModel(fall_s=0.15, tau_s=0.3)
    model.command(0.0, 20e-6)
    assert model.in_flight_kg(5.0) == pytest.approx(20e-6 * 0.15)
    assert model.unshown_kg(5.0) == pytest.approx(20e-6 * 0.3, rel=1e-6)
    model.command(5.0, 0.0)
    assert model.pending_kg(5.0) == pytest.approx(20e-6 * 0.45, rel=1e-6)
    assert model.shown_kg(20.0) == pytest.approx(model.sent_kg(20.0)) == pytest.approx(100e-6)
    with pytest.raises(ValueError, match="tau"):
        FeedModel(0.1, 0.0)
