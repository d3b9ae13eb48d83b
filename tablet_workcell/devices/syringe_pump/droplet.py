"""A droplet request in SI units turned into what the pump is told, checked before it moves.

The action speaks m^3 and m^3/s; the NE-1000 speaks µL and µL/min (the driver picks the
units that keep four significant digits). Zero means the node's default, and a volume
above ``max_volume_m3`` is refused, because a volume given in the wrong unit (5e-6 m^3
for 5 µL) would flood the tablet.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tablet_workcell.devices.errors import DeviceOutOfRangeError
from tablet_workcell.devices.syringe_pump.codec import DEVICE

UL_PER_M3 = 1e9
S_PER_MIN = 60.0


@dataclass(frozen=True)
class DropletPlan:
    volume_ul: float
    rate_ul_per_min: float
    timeout_s: float  # wall seconds the driver waits before it stops the pump and fails

    @property
    def volume_m3(self) -> float:
        return self.volume_ul / UL_PER_M3

    @property
    def expected_s(self) -> float:
        return self.volume_ul / self.rate_ul_per_min * S_PER_MIN


def plan_droplet(
    volume_m3: float,
    flow_rate_m3_per_s: float,
    *,
    default_volume_m3: float,
    default_flow_rate_m3_per_s: float,
    max_volume_m3: float,
    timeout_margin_s: float,
) -> DropletPlan:
    """The droplet to dispense; DeviceOutOfRangeError names the value and the limit."""
    volume = volume_m3 or default_volume_m3
    rate = flow_rate_m3_per_s or default_flow_rate_m3_per_s
    if not (math.isfinite(volume) and volume > 0.0):
        raise DeviceOutOfRangeError(DEVICE, f"droplet volume {volume_m3!r} m^3 must be a positive number.")
    if volume > max_volume_m3:
        raise DeviceOutOfRangeError(
            DEVICE,
            f"droplet volume {volume * UL_PER_M3:g} µL is above the {max_volume_m3 * UL_PER_M3:g} µL allowed "
            "(max_volume_m3); check that the volume is in m^3 (5 µL = 5e-9 m^3).",
        )
    if not (math.isfinite(rate) and rate > 0.0):
        raise DeviceOutOfRangeError(
            DEVICE, f"flow rate {flow_rate_m3_per_s!r} m^3/s must be a positive number."
        )
    volume_ul = volume * UL_PER_M3
    rate_ul_per_min = rate * UL_PER_M3 * S_PER_MIN
    expected_s = volume_ul / rate_ul_per_min * S_PER_MIN
    return DropletPlan(volume_ul, rate_ul_per_min, 2.0 * expected_s + timeout_margin_s)
