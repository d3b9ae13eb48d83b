"""A droplet request in SI units -> what the pump is told (no ROS)."""

from __future__ import annotations

import math

import pytest

from tablet_workcell.devices.errors import DeviceOutOfRangeError
from tablet_workcell.devices.syringe_pump.droplet import plan_droplet
from tablet_workcell.devices.syringe_pump.node_parameters import SYRINGE_PUMP_PARAMETERS

DEFAULTS = {
    "default_volume_m3": 5e-9,
    "default_flow_rate_m3_per_s": 100e-9 / 60.0,
    "max_volume_m3": 50e-9,
    "timeout_margin_s": 5.0,
}


def test_si_units_become_microlitres_and_microlitres_per_minute() -> None:
    plan = plan_droplet(10e-9, 200e-9 / 60.0, **DEFAULTS)
    assert plan.volume_ul == pytest.approx(10.0)
    assert plan.rate_ul_per_min == pytest.approx(200.0)
    assert plan.expected_s == pytest.approx(3.0)
    assert plan.timeout_s == pytest.approx(2 * 3.0 + 5.0)
    assert plan.volume_m3 == pytest.approx(10e-9)


def test_zero_means_the_default() -> None:
    plan = plan_droplet(0.0, 0.0, **DEFAULTS)
    assert plan.volume_ul == pytest.approx(5.0) and plan.rate_ul_per_min == pytest.approx(100.0)


@pytest.mark.parametrize(
    ("volume_m3", "rate_m3_per_s", "expected"),
    [
        (5e-6, 0.0, "5000 µL is above the 50 µL allowed"),
        (-1e-9, 0.0, "must be a positive number"),
        (math.nan, 0.0, "must be a positive number"),
        (0.0, -1e-9, "flow rate .* must be a positive number"),
        (0.0, math.inf, "flow rate .* must be a positive number"),
    ],
)
def test_bad_requests_are_refused_before_the_pump_moves(
    volume_m3: float, rate_m3_per_s: float, expected: str
) -> None:
    with pytest.raises(DeviceOutOfRangeError, match=expected):
        plan_droplet(volume_m3, rate_m3_per_s, **DEFAULTS)


def test_the_catalog_parameters_include_the_shared_instrument_ones() -> None:
    names = [spec.name for spec in SYRINGE_PUMP_PARAMETERS]
    assert len(names) == len(set(names))
    assert {"simulated", "port", "syringe_diameter_mm", "max_volume_m3"} <= set(names)
