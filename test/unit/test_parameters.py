from __future__ import annotations

import pytest

from tablet_workcell.errors import ConfigError
from tablet_workcell.parameters import ParamSpec, resolve_parameters

SPECS = (
    ParamSpec("rate_hz", "float", 10.0, "a rate", minimum=1.0, maximum=100.0),
    ParamSpec("count", "int", 3, "a count", minimum=0),
    ParamSpec("mode", "str", "fast", "a mode", choices=("fast", "slow")),
    ParamSpec("enabled", "bool", True, "a switch"),
    ParamSpec("names", "str_array", [], "names"),
)


def test_defaults_filled_and_ints_accepted_as_floats() -> None:
    values = resolve_parameters(SPECS, {"rate_hz": 20}, "cfg")
    assert values == {"rate_hz": 20.0, "count": 3, "mode": "fast", "enabled": True, "names": []}
    assert isinstance(values["rate_hz"], float)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"rate_hz": 0.5}, "0.5 is below the minimum 1; use a value between 1 and 100"),
        ({"rate_hz": 1000}, "1000 is above the maximum 100"),
        ({"rate_hz": float("nan")}, "is not finite"),
        ({"rate_hz": "fast"}, "'fast' is not a float"),
        ({"count": 2.5}, "2.5 is not a int"),
        ({"count": True}, "True is not a int"),
        ({"mode": "medium"}, "use one of 'fast', 'slow'"),
        ({"enabled": "yes"}, "'yes' is not a bool"),
        ({"names": "a"}, "'a' is not a str array"),
        ({"rat_hz": 3.0}, "unknown parameter 'rat_hz'. Did you mean 'rate_hz'?"),
    ],
)
def test_bad_values_are_explained(values: dict[str, object], expected: str) -> None:
    with pytest.raises(ConfigError, match=r"^cfg: ") as error:
        resolve_parameters(SPECS, values, "cfg")
    assert expected in str(error.value)


def test_declaration_with_default_out_of_range_is_rejected() -> None:
    with pytest.raises(ConfigError, match="default of parameter 'x'"):
        ParamSpec("x", "float", -1.0, "x", minimum=0.0)
