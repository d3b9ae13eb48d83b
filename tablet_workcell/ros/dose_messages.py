"""The dispenser's action messages, built from the doser's values (ROS glue, no logic).

:class:`RecipeRecord` keeps what one ``Dispense`` goal has dosed so far, including the
component that failed or was stopped with the mass that landed of it (that powder is in
the die whatever happens next), and turns it into the ``DoseResult`` message.
"""

from __future__ import annotations

import time
from typing import Any

from tablet_workcell.action import Dispense
from tablet_workcell.devices.dosing.dose import DoseProgress
from tablet_workcell.devices.dosing.recipe import DoseTarget
from tablet_workcell.msg import DosedComponent, DoseResult


def feedback_message(index: int, progress: DoseProgress) -> Any:
    return Dispense.Feedback(
        component=progress.component,
        component_index=index,
        target_mass_kg=progress.target_kg,
        dosed_mass_kg=progress.reading_kg,
        feed_rate_kg_per_s=progress.rate_mg_per_s * 1e-6,
    )


class RecipeRecord:
    """One goal's components dosed so far and the last reading of the one in progress."""

    def __init__(self, experiment_id: str) -> None:
        self.experiment_id = experiment_id
        self.plan: list[DoseTarget] = []
        self.components: list[DosedComponent] = []
        self.index, self.reading_kg, self.started = 0, 0.0, time.monotonic()

    def start(self, index: int) -> None:
        self.index, self.reading_kg, self.started = index, 0.0, time.monotonic()

    def note(self, progress: DoseProgress) -> None:
        self.reading_kg = progress.reading_kg

    def add(self, target: DoseTarget, dosed_kg: float, duration_s: float) -> None:
        self.components.append(
            DosedComponent(
                name=target.name,
                target_mass_kg=target.target_kg,
                dosed_mass_kg=dosed_kg,
                error_kg=dosed_kg - target.target_kg,
                duration_s=duration_s,
            )
        )

    def add_partial(self, target: DoseTarget) -> None:
        """The component that did not finish, with the last reading seen (the powder that landed)."""
        self.add(target, self.reading_kg, time.monotonic() - self.started)

    def failed_text(self, error: str) -> str:
        name = self.plan[self.index].name
        return f"{name} (component {self.index + 1} of {len(self.plan)}) failed: {error}"

    def summary(self) -> str:
        total = sum(c.dosed_mass_kg for c in self.components)
        target = sum(c.target_mass_kg for c in self.components)
        worst = max((abs(c.error_kg) for c in self.components), default=0.0)
        return (
            f"dosed {len(self.components)} component(s): {total * 1e6:.3f} mg of {target * 1e6:.3f} mg, "
            f"largest error {worst * 1e6:.3f} mg"
        )

    def result(self, success: bool, message: str, stamp: Any) -> Any:
        """The Dispense result; totals over the whole plan, so a partial recipe shows as short."""
        target = sum(dose.target_kg for dose in self.plan)
        dosed = sum(c.dosed_mass_kg for c in self.components)
        result = DoseResult(
            experiment_id=self.experiment_id,
            components=self.components,
            total_target_mass_kg=target,
            total_dosed_mass_kg=dosed,
            relative_error=(dosed - target) / target if target > 0.0 else 0.0,
            success=success,
            message=message,
        )
        result.header.stamp = stamp
        return Dispense.Result(result=result)
