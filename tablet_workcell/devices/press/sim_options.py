"""Options of the simulated press, from the command line's ``name=value`` strings.

``python -m tablet_workcell.devices.serve press --option recipe=mcc:0.69,lactose:0.3,mgst:0.01
--option fill_mass_mg=100 --option time_scale=10`` — every option has a default; unknown
names and unparsable values are refused with a :class:`ConfigError` that names them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from tablet_workcell.errors import ConfigError, WorkcellError
from tablet_workcell.twin.blend import Formulation


@dataclass(frozen=True)
class PressSimConfig:
    """The simulated instrument: identity, powder, timing and process faults."""

    model: str = "TWC-MP20"
    serial: str = "MP20-0417"
    firmware: str = "1.3.0"
    max_force_n: float = 20e3
    punch_diameter_m: float = 8e-3
    recipe: Mapping[str, float] = field(default_factory=dict)  # mass fractions; empty: die starts empty
    fill_mass_mg: float = 100.0
    auto_fill: bool = True  # an empty die is refilled with the recipe before CMP
    time_scale: float = 1.0  # instrument seconds per server second
    seed: int = 0
    door_open: bool = False  # guard door open at start (interlock)
    overload_at_s: float = 0.0  # > 0: every compaction overloads this long after punch contact
    motion_fault_at_s: float = 0.0  # > 0: every compaction has a motion fault this long after contact

    def __post_init__(self) -> None:
        for name in ("max_force_n", "punch_diameter_m", "fill_mass_mg", "time_scale"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0.0):
                raise ConfigError(f"press option {name}={value!r} must be a positive number.")
        for name in ("overload_at_s", "motion_fault_at_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0.0):
                raise ConfigError(f"press option {name}={value!r} must be 0 (off) or more seconds.")
        for text in (self.model, self.serial, self.firmware):
            if not text or any(not "!" <= ch <= "~" or ch == "*" for ch in text):
                raise ConfigError(f"press identity field {text!r} must be printable ASCII without spaces.")
        if self.recipe:
            try:
                Formulation.of(dict(self.recipe))
            except WorkcellError as error:
                raise ConfigError(f"press option recipe: {error}") from error


def parse_recipe(text: str) -> dict[str, float]:
    """``"mcc:0.69,lactose:0.3,mgst:0.01"`` as mass fractions by material name."""
    recipe: dict[str, float] = {}
    for part in text.split(","):
        name, sep, value = part.partition(":")
        try:
            recipe[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep or not name.strip():
            raise ConfigError(
                f"press option recipe item {part!r} must look like material:fraction "
                "(e.g. recipe=mcc:0.69,lactose:0.3,mgst:0.01)."
            )
    return recipe


def _bool(name: str, text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"press option {name}={text!r} must be true or false (1/0).")


def config_from_options(options: Mapping[str, Any]) -> PressSimConfig:
    """A :class:`PressSimConfig` from string (or typed) options; ``punch_diameter_mm`` in mm."""
    known = {f.name for f in fields(PressSimConfig)} - {"punch_diameter_m"} | {"punch_diameter_mm"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ConfigError(f"unknown press option(s) {unknown}; known: {sorted(known)}.")
    values: dict[str, Any] = {}
    for name, raw in options.items():
        text = str(raw)
        try:
            if name == "recipe":
                values[name] = dict(raw) if isinstance(raw, Mapping) else parse_recipe(text)
            elif name in ("auto_fill", "door_open"):
                values[name] = raw if isinstance(raw, bool) else _bool(name, text)
            elif name == "seed":
                values[name] = int(text)
            elif name == "punch_diameter_mm":
                values["punch_diameter_m"] = float(text) / 1e3
            elif name in ("model", "serial", "firmware"):
                values[name] = text
            else:
                values[name] = float(text)
        except ValueError as error:
            raise ConfigError(f"press option {name}={text!r} is not a valid number: {error}.") from error
    return PressSimConfig(**values)
