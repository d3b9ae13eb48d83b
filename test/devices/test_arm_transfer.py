"""Transfers planned and run on the simulated arm over a pty: zone interlock, progress, stops, scene."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tablet_workcell.devices.arm.driver import ArmDriver
from tablet_workcell.devices.arm.layout import Vec3, load_layout
from tablet_workcell.devices.arm.scene import AMBER, FREE, RED, CellScene, box_edges
from tablet_workcell.devices.arm.simulator import MarlinArmSimulator
from tablet_workcell.devices.arm.transfer import TransferRunner, ZoneRefusedError
from tablet_workcell.devices.arm.transfer_plan import (
    Payload,
    TransferRequest,
    leg_fraction,
    plan_transfer,
    progress,
    validate_request,
)
from tablet_workcell.devices.errors import DeviceStoppedError
from tablet_workcell.devices.pty_server import PtyServer
from tablet_workcell.errors import ConfigError

LAYOUT = load_layout()
HOME_M = (0.0, 0.0, 0.32)  # where G28 leaves the simulated arm
PICK_AND_PLACE = TransferRequest("dispenser", "press", Payload.TABLET)


class FakeZone:
    """Records what the runner asks of the interlock; refuses while ``holder`` is set."""

    def __init__(self, arm: ArmDriver, holder: str = "") -> None:
        self.arm = arm
        self.holder = holder
        self.held = False
        self.events: list[tuple[str, Vec3]] = []

    def acquire(self, why: str) -> None:
        if self.holder:
            raise ZoneRefusedError("arm", f"{why}, but the press zone is held by {self.holder}.")
        self.held = True
        self.events.append(("acquire", self.arm.position().as_tuple))

    def release(self) -> None:
        self.held = False
        self.events.append(("release", self.arm.position().as_tuple))


class Recorder:
    """The runner's observer: every progress report and suction switch."""

    def __init__(self) -> None:
        self.reports: list[tuple[str, float, Vec3 | None]] = []
        self.switches: list[tuple[bool, str]] = []

    def progress(self, phase: str, fraction: float, position_m: Vec3 | None) -> None:
        self.reports.append((phase, fraction, position_m))

    def suction(self, on: bool, station: str) -> None:
        self.switches.append((on, station))


@contextmanager
def runner(
    holder: str = "", time_scale: float = 20.0
) -> Iterator[tuple[TransferRunner, FakeZone, Recorder, MarlinArmSimulator, threading.Event]]:
    sim = MarlinArmSimulator()
    with PtyServer(sim, time_scale=time_scale) as server:
        arm = ArmDriver(server.port, timeout_s=1.0, envelope=LAYOUT.work_envelope)
        try:
            arm.open()
            zone, recorder, stop = FakeZone(arm, holder), Recorder(), threading.Event()
            run = TransferRunner(arm, LAYOUT, recorder, stop, zone, settle_s=0.05, poll_period_s=0.01)
            yield run, zone, recorder, sim, stop
        finally:
            arm.close()


# ------------------------------------------------------------------ planning (pure)
def test_a_pick_and_place_is_planned_whole_and_only_press_legs_enter_the_zone() -> None:
    steps = plan_transfer(LAYOUT, PICK_AND_PLACE, HOME_M, settle_s=0.2)
    assert [s.phase for s in steps] == [
        *["approach"] * 2,
        "grasp",
        *["transfer"] * 3,
        "release",
        "retract",
    ]
    assert [s.kind for s in steps if s.kind != "move"] == ["grip", "release"]
    entering = [(s.phase, s.target_m) for s in steps if s.enters_press_zone]
    press = LAYOUT.station("press").position_m
    assert entering == [("transfer", press), ("retract", (press[0], press[1], 0.20))]
    assert all(s.duration_s > 0 for s in steps)
    values = [progress(steps, i, f) for i in range(len(steps)) for f in (0.0, 0.5)]
    assert values == sorted(values) and progress(steps, len(steps), 0.0) == pytest.approx(1.0)
    down = steps[-3]
    assert leg_fraction(down, down.start_m) == 0.0 and leg_fraction(down, down.target_m) == 1.0


def test_a_plain_move_ends_at_the_station() -> None:
    steps = plan_transfer(LAYOUT, TransferRequest("", "home", Payload.NONE), HOME_M, settle_s=0.2)
    assert {s.phase for s in steps} == {"move"} and steps[-1].target_m == LAYOUT.station("home").position_m


@pytest.mark.parametrize(
    ("source", "destination", "payload", "expected"),
    [
        ("dispenser", "pres", 2, "Did you mean 'press'"),
        ("press", "press", 2, "two stations"),
        ("press", "tablet_tray", 0, "set payload to DIE or TABLET"),
        ("", "press", 1, "needs a from_station"),
        ("press", "tablet_tray", 7, "payload 7 is not one of"),
        ("press", "", 1, "to_station is empty"),
    ],
)
def test_bad_requests_are_refused_with_a_sentence(
    source: str, destination: str, payload: int, expected: str
) -> None:
    with pytest.raises(ConfigError, match=expected):
        validate_request(LAYOUT, source, destination, payload)


# ------------------------------------------------------------------ running on the simulated arm
def test_transfer_holds_the_press_zone_only_until_the_tool_has_left_it() -> None:
    with runner() as (run, zone, recorder, sim, _):
        outcome = run.run(PICK_AND_PLACE, home_first=True)
        press = LAYOUT.station("press").position_m
        assert outcome.position_m == pytest.approx((press[0], press[1], 0.20), abs=1e-5)
        assert [kind for kind, _ in zone.events] == ["acquire", "release"]
        assert zone.events[0][1] == (0.0, 0.0, 0.0)  # before homing: position unknown, the zone is taken
        assert not LAYOUT.press_zone.contains(zone.events[1][1]) and zone.events[1][1][2] == pytest.approx(
            0.20
        )
        assert recorder.switches == [(True, "dispenser"), (False, "press")] and not sim.suction_on
        phases = [phase for phase, _, _ in recorder.reports]
        assert phases[0] == "homing" and phases[-1] == "retract"
        assert recorder.reports[-1][1] == pytest.approx(1.0)
        assert len({p[2] for p in recorder.reports if p[0] == "transfer"}) >= 3  # live positions


def test_a_refused_zone_stops_the_transfer_before_the_arm_moves() -> None:
    with runner(holder="press") as (run, zone, _, sim, _):
        run.arm.home()
        before = sim.physical_mm
        with pytest.raises(ZoneRefusedError, match="held by press"):
            run.run(TransferRequest("tablet_tray", "press", Payload.DIE), home_first=False)
        assert sim.physical_mm == before and not sim.moving and zone.events == []


def test_a_transfer_that_needs_no_zone_does_not_ask_for_it() -> None:
    with runner(holder="press") as (run, zone, _, _, _):
        run.arm.home()
        run.run(TransferRequest("tablet_tray", "dispenser", Payload.TABLET), home_first=False)
        assert zone.events == []


def test_a_stop_inside_the_press_zone_stops_the_arm_and_keeps_the_zone() -> None:
    with runner(time_scale=4.0) as (run, zone, _, sim, stop):
        run.arm.home()
        inside = threading.Event()

        def watch() -> None:
            deadline = time.monotonic() + 20.0
            while time.monotonic() < deadline and not inside.is_set():
                if LAYOUT.press_zone.contains(tuple(v / 1000.0 for v in sim.physical_mm)):  # type: ignore[arg-type]
                    stop.set()
                    run.arm.stop()
                    inside.set()
                time.sleep(0.002)

        watcher = threading.Thread(target=watch)
        watcher.start()
        started = time.monotonic()
        try:
            with pytest.raises(DeviceStoppedError):
                run.run(TransferRequest("", "press", Payload.NONE), home_first=False)
        finally:
            watcher.join(timeout=25.0)
        assert inside.is_set() and time.monotonic() - started < 15.0
        assert not sim.moving
        assert zone.held and [kind for kind, _ in zone.events] == ["acquire"]  # the tool is still inside


# ------------------------------------------------------------------ the picture
def test_the_scene_follows_the_zone_holder_and_the_payload() -> None:
    scene = CellScene(LAYOUT, tool_m=(0.3, 0.17, 0.2))
    first = scene.key()
    shapes = {(s.namespace, s.id): s for s in scene.shapes()}
    assert shapes[("press_zone", 0)].colour == FREE
    assert {s.text for s in scene.shapes() if s.namespace == "labels"} == set(LAYOUT.stations)
    scene.zone_holder = "press"
    assert next(s for s in scene.shapes() if s.namespace == "press_zone").colour == RED
    scene.zone_holder = "arm"
    assert next(s for s in scene.shapes() if s.namespace == "press_zone").colour == AMBER
    scene.picked("dispenser", Payload.TABLET)
    assert {s.namespace for s in scene.shapes()} >= {"tool", "payload"}
    scene.put_down("press")
    tablets = [s for s in scene.shapes() if s.namespace == "tablets"]
    assert len(tablets) == 1 and tablets[0].position_m[:2] == LAYOUT.station("press").position_m[:2]
    assert scene.key() != first
    scene.picked("press", Payload.TABLET)
    assert not [s for s in scene.shapes() if s.namespace == "tablets"]
    assert len(box_edges(LAYOUT.work_envelope)) == 24
