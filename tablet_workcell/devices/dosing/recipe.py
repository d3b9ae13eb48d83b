"""What the dispenser checks before it doses: which head holds which powder, and whether a
recipe can be dosed at all.

Pure functions on parameter values and goal fields (no ROS, no I/O), so the rules a goal
is refused by are tested without a graph, and the node stays ROS glue.

Heads are configured as ``ADDRESS:POWDER`` entries (``["1:microcrystalline_cellulose",
"2:lactose_monohydrate"]``): the bus address is wiring, so it must be written down, and
the powder is what the recipes call it. On configure the node also asks each head which
powder it holds (``IDN``) and refuses a mismatch, so a hopper put on the wrong head is
never dosed as another powder.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from tablet_workcell.devices.dosing.codec import MAX_ADDRESS
from tablet_workcell.errors import ConfigError, WorkcellError

_ENTRY = re.compile(r"^\s*(\d{1,2})\s*:\s*([A-Za-z0-9_.\-]+)\s*$")


class RecipeError(WorkcellError):
    """A recipe the dispensing station cannot dose as asked (the message says why and what to change)."""


@dataclass(frozen=True)
class DoseTarget:
    """One component of a recipe, resolved to the head that holds its powder."""

    name: str
    target_kg: float
    address: int


def parse_heads(entries: Sequence[str]) -> dict[str, int]:
    """``["1:lactose_monohydrate", ...]`` -> ``{"lactose_monohydrate": 1, ...}``; ConfigError if malformed."""
    heads: dict[str, int] = {}
    addresses: dict[int, str] = {}
    for entry in entries:
        match = _ENTRY.match(entry)
        if match is None:
            raise ConfigError(
                f"heads entry {entry!r} is not ADDRESS:POWDER; write e.g. '1:lactose_monohydrate'."
            )
        address, powder = int(match[1]), match[2]
        if not 1 <= address <= MAX_ADDRESS:
            raise ConfigError(f"heads entry {entry!r}: address {address} must be 1 to {MAX_ADDRESS}.")
        if address in addresses:
            raise ConfigError(
                f"heads entries give address {address} twice ({addresses[address]} and {powder}); "
                "each head has its own address."
            )
        if powder in heads:
            raise ConfigError(
                f"heads entries put {powder} on heads {heads[powder]} and {address}; "
                "name each powder once (one head per powder)."
            )
        heads[powder], addresses[address] = address, powder
    if not heads:
        raise ConfigError(
            "heads is empty; list the dosing heads as ADDRESS:POWDER, e.g. '1:lactose_monohydrate'."
        )
    return heads


def plan_recipe(
    targets: Sequence[tuple[str, float]], heads: Mapping[str, int], max_total_kg: float
) -> list[DoseTarget]:
    """The doses to make, in order; RecipeError for an unknown powder, a bad mass or too much in all."""
    if not targets:
        raise RecipeError("the recipe has no components; give at least one name and target mass.")
    plan: list[DoseTarget] = []
    for name, target_kg in targets:
        if name not in heads:
            known = ", ".join(sorted(heads)) or "none"
            raise RecipeError(f"no dosing head holds {name!r}; this station doses {known}.")
        if not (math.isfinite(target_kg) and target_kg > 0.0):
            raise RecipeError(f"{name}: target mass {target_kg!r} kg must be a positive number of kg.")
        if any(dose.name == name for dose in plan):
            raise RecipeError(f"{name} appears twice in the recipe; give each component once with its total.")
        plan.append(DoseTarget(name, target_kg, heads[name]))
    total = sum(dose.target_kg for dose in plan)
    if total > max_total_kg:
        raise RecipeError(
            f"the recipe totals {total * 1e6:.3f} mg, more than the {max_total_kg * 1e6:.3f} mg this station "
            "doses at once (max_recipe_mass_kg); check the units of the targets (kg)."
        )
    return plan


def check_tolerance(tolerance_kg: float) -> None:
    """0 means the station's default tolerance; anything else must be a positive number of kg."""
    if not (math.isfinite(tolerance_kg) and tolerance_kg >= 0.0):
        raise RecipeError(
            f"tolerance {tolerance_kg!r} kg must be 0 (station default) or a positive number of kg."
        )
