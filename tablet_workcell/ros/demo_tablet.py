"""One tablet by hand through the simulated instruments: what ``workcell demo`` shows.

From the optimiser's first suggestion: dose the recipe on the balance, carry the die to
the press, compact it at the suggested pressure, test the tablet's strength, move to the
disintegration camera and place a water droplet. Each step is one action of an
instrument node, printed with its result. The simulators are separate instruments that
do not share material (the press fills its own die from its recipe option, the droplet
lands on the camera stage), and the behaviour tree that will run this loop on its own,
with the camera analysis and reporting, is not part of this demo.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from tablet_workcell.action import ArmTransfer, BreakingTest, Compact, Dispense, DispenseDroplet
from tablet_workcell.msg import DosedComponent, Recipe, StationStatus
from tablet_workcell.ros.cell_exercise import CellExercise
from tablet_workcell.ros.goal_client import GoalClient
from tablet_workcell.ros.graph_probe import GraphProbe, ProbeError

DROPLET_M3 = 5e-9
DROPLET_RATE_M3_PER_S = 100e-9 / 60.0  # 100 uL/min
TRUE_DENSITY_KG_PER_M3 = 1540.0  # typical of cellulose/lactose blends; the press reports the in-die record


def _run(client: GoalClient, goal: object, what: str, timeout_s: float = 300.0) -> object:
    status, result = client.send(goal).result(timeout_s)
    if status != "succeeded":
        message = getattr(result, "message", "") or getattr(getattr(result, "result", None), "message", "")
        raise ProbeError(f"{what} ended {status}: {message}")
    return result


def make_one_tablet(probe: GraphProbe, recipe: Recipe, say: Callable[[str], None]) -> None:
    """Run ``recipe`` through dispenser, arm, press, arm and syringe pump; ``say`` prints each step."""
    cell = CellExercise(probe)
    cell.wait_states(StationStatus.STATE_IDLE, "the instruments to be active and idle", timeout_s=90.0)
    node = probe.node
    breaking = GoalClient(node, BreakingTest, "/press/breaking_test")
    cell.home_arm()
    say("arm homed")
    targets = [
        DosedComponent(name=c.name, target_mass_kg=c.mass_fraction * recipe.target_tablet_mass_kg)
        for c in recipe.components
        if c.mass_fraction > 0.0
    ]
    dosed = _run(cell.dispense, Dispense.Goal(experiment_id=recipe.experiment_id, targets=targets), "dosing")
    for component in dosed.result.components:  # type: ignore[attr-defined]
        say(
            f"dosed {component.name}: {component.dosed_mass_kg * 1e6:.2f} mg "
            f"(target {component.target_mass_kg * 1e6:.2f} mg, error {component.error_kg * 1e6:+.3f} mg)"
        )
    die = ArmTransfer.Goal(from_station="dispenser", to_station="press", payload=ArmTransfer.Goal.PAYLOAD_DIE)
    moved = _run(cell.transfer, die, "carrying the die to the press")
    say(f"arm: {moved.message}")  # type: ignore[attr-defined]
    compact = Compact.Goal(
        experiment_id=recipe.experiment_id,
        target_pressure_pa=recipe.compaction_pressure_pa,
        dwell_time_s=recipe.dwell_time_s,
        punch_diameter_m=recipe.punch_diameter_m,
        fill_mass_kg=recipe.target_tablet_mass_kg,
        true_density_kg_per_m3=TRUE_DENSITY_KG_PER_M3,
    )
    pressed = _run(cell.compact, compact, "compaction").result  # type: ignore[attr-defined]
    say(
        f"compacted at {pressed.max_pressure_pa / 1e6:.0f} MPa: "
        f"tablet {pressed.tablet_thickness_m * 1e3:.2f} mm thick, "
        f"{len(pressed.record.time_s)} force-displacement samples, Heckel Py "
        + (
            f"{pressed.heckel_yield_pressure_pa / 1e6:.0f} MPa"
            if math.isfinite(pressed.heckel_yield_pressure_pa)
            else "n/a"
        )
    )
    tested = _run(
        breaking,
        BreakingTest.Goal(
            experiment_id=recipe.experiment_id,
            tablet_diameter_m=recipe.punch_diameter_m,
            tablet_thickness_m=pressed.tablet_thickness_m,
            platen_speed_m_per_s=0.0,
        ),
        "breaking test",
    ).result  # type: ignore[attr-defined]
    strength = tested.tensile_strength_pa
    say(
        f"breaking test: {tested.breaking_force_n:.1f} N, tensile strength "
        + (f"{strength / 1e6:.2f} MPa" if math.isfinite(strength) else f"n/a ({tested.message})")
    )
    moved = _run(cell.transfer, cell.transfer_goal("disintegration_camera"), "moving to the camera")
    say(f"arm: {moved.message}")  # type: ignore[attr-defined]
    drop = _run(
        cell.droplet,
        DispenseDroplet.Goal(volume_m3=DROPLET_M3, flow_rate_m3_per_s=DROPLET_RATE_M3_PER_S),
        "droplet",
    )
    volume_ul = drop.dispensed_volume_m3 * 1e9  # type: ignore[attr-defined]
    say(f"droplet of {volume_ul:.1f} uL placed in {drop.duration_s:.1f} s")  # type: ignore[attr-defined]
