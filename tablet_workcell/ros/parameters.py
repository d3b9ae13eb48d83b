"""Declare a node's parameters on a ROS 2 node from the library's ParamSpec list.

Ranges go into the ParameterDescriptor, so rclpy itself rejects out-of-range values
(at start-up and on later ``set_parameters``) with the range in the message.
"""

from __future__ import annotations

from collections.abc import Iterable

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType
from rclpy.node import Node

from tablet_workcell.parameters import ParamSpec, ParamValue

_TYPES = {
    "bool": ParameterType.PARAMETER_BOOL,
    "int": ParameterType.PARAMETER_INTEGER,
    "float": ParameterType.PARAMETER_DOUBLE,
    "str": ParameterType.PARAMETER_STRING,
    "float_array": ParameterType.PARAMETER_DOUBLE_ARRAY,
    "str_array": ParameterType.PARAMETER_STRING_ARRAY,
}


def descriptor(spec: ParamSpec) -> ParameterDescriptor:
    desc = ParameterDescriptor(
        name=spec.name,
        type=_TYPES[spec.kind],
        description=spec.description,
        read_only=spec.read_only,
        additional_constraints=spec.range_text,
    )
    low = spec.minimum if spec.minimum is not None else None
    high = spec.maximum if spec.maximum is not None else None
    if spec.kind == "float" and (low is not None or high is not None):
        desc.floating_point_range = [
            FloatingPointRange(
                from_value=float(low if low is not None else -1e308),
                to_value=float(high if high is not None else 1e308),
                step=0.0,
            )
        ]
    if spec.kind == "int" and (low is not None or high is not None):
        desc.integer_range = [
            IntegerRange(
                from_value=int(low if low is not None else -(2**63)),
                to_value=int(high if high is not None else 2**63 - 1),
                step=1,
            )
        ]
    return desc


class ParameterValues:
    """Typed read access to the values a node started with."""

    def __init__(self, values: dict[str, ParamValue]) -> None:
        self._values = values

    def get_float(self, name: str) -> float:
        value = self._values[name]
        if not isinstance(value, int | float):
            raise TypeError(f"parameter {name} is {type(value).__name__}, not a number")
        return float(value)

    def get_int(self, name: str) -> int:
        value = self._values[name]
        if not isinstance(value, int):
            raise TypeError(f"parameter {name} is {type(value).__name__}, not an integer")
        return value

    def get_bool(self, name: str) -> bool:
        return bool(self._values[name])

    def get_str(self, name: str) -> str:
        return str(self._values[name])

    def get_str_list(self, name: str) -> list[str]:
        value = self._values[name]
        if not isinstance(value, list):
            raise TypeError(f"parameter {name} is {type(value).__name__}, not a list")
        return [str(v) for v in value]


def declare_parameters(node: Node, specs: Iterable[ParamSpec]) -> ParameterValues:
    """Declare every spec on ``node`` and return the values in effect."""
    values: dict[str, ParamValue] = {}
    for spec in specs:
        default = spec.default
        if spec.kind == "str_array" and not default:
            # rclpy cannot infer the type of an empty list; the descriptor's type decides.
            node.declare_parameter(spec.name, [""], descriptor(spec))
            parameter = node.get_parameter(spec.name)
            values[spec.name] = [v for v in parameter.value if v]
            continue
        node.declare_parameter(spec.name, default, descriptor(spec))
        values[spec.name] = node.get_parameter(spec.name).value
    return ParameterValues(values)
