"""Node parameters declared once, with types, ranges and descriptions.

The same declarations serve three readers: the launcher validates the YAML graph
description against them before starting any process (so a typo fails fast with one
clear sentence), the ROS adapters declare them on the node with a
``ParameterDescriptor`` carrying the ranges (so ``ros2 param`` tools and the node
enforce them at run time), and the docs list them. This mirrors
generate_parameter_library without a code generator.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from tablet_workcell.errors import ConfigError

ParamKind = Literal["bool", "int", "float", "str", "float_array", "str_array"]
ParamValue = bool | int | float | str | list[float] | list[str]


@dataclass(frozen=True)
class ParamSpec:
    """One typed, bounded parameter of a node."""

    name: str
    kind: ParamKind
    default: ParamValue
    description: str
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    read_only: bool = False
    is_path: bool = False  # a file the node needs (model, calibration); checked before launch

    def __post_init__(self) -> None:
        # A declaration whose default breaks its own bounds is a programming error.
        check_value(self, self.default, where=f"default of parameter '{self.name}'")

    @property
    def range_text(self) -> str:
        if self.choices:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        if self.minimum is not None and self.maximum is not None:
            return f"between {self.minimum:g} and {self.maximum:g}"
        if self.minimum is not None:
            return f"at least {self.minimum:g}"
        if self.maximum is not None:
            return f"at most {self.maximum:g}"
        return "any value"


def _type_ok(kind: ParamKind, value: object) -> bool:
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "float":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "str":
        return isinstance(value, str)
    if kind == "float_array":
        return isinstance(value, list) and all(_type_ok("float", v) for v in value)
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def check_value(spec: ParamSpec, value: object, where: str) -> ParamValue:
    """Return ``value`` coerced to the spec's type, or raise ConfigError saying why not."""
    given = value  # quoted in messages as the user wrote it
    if not _type_ok(spec.kind, value):
        raise ConfigError(
            f"{where}: {value!r} is not a {spec.kind.replace('_', ' ')}; "
            f"give a {spec.kind.replace('_', ' ')} ({spec.description})."
        )
    if spec.kind == "float":
        assert isinstance(value, int | float)
        value = float(value)
        if not math.isfinite(value):
            raise ConfigError(f"{where}: {given!r} is not finite; give a number {spec.range_text}.")
    if spec.kind in ("int", "float"):
        assert isinstance(value, int | float)
        if spec.minimum is not None and value < spec.minimum:
            raise ConfigError(
                f"{where}: {given!r} is below the minimum {spec.minimum:g}; use a value {spec.range_text}."
            )
        if spec.maximum is not None and value > spec.maximum:
            raise ConfigError(
                f"{where}: {given!r} is above the maximum {spec.maximum:g}; use a value {spec.range_text}."
            )
    if spec.choices and value not in spec.choices:
        raise ConfigError(f"{where}: {value!r} is not allowed; use {spec.range_text}.")
    if spec.kind == "float_array":
        assert isinstance(value, list)
        value = [float(v) for v in value]
    return value  # type: ignore[return-value]


def resolve_parameters(
    specs: Iterable[ParamSpec], values: Mapping[str, object], where: str
) -> dict[str, ParamValue]:
    """Validate ``values`` against ``specs`` and fill in defaults.

    Unknown names are errors (with the closest known name suggested), because a
    misspelt parameter otherwise silently keeps its default.
    """
    by_name = {spec.name: spec for spec in specs}
    resolved: dict[str, ParamValue] = {name: spec.default for name, spec in by_name.items()}
    for name, value in values.items():
        spec = by_name.get(name)
        if spec is None:
            close = difflib.get_close_matches(name, by_name, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            known = ", ".join(sorted(by_name)) or "none"
            raise ConfigError(f"{where}: unknown parameter '{name}'.{hint} Known parameters: {known}.")
        resolved[name] = check_value(spec, value, where=f"{where}: parameter '{name}'")
    return resolved
