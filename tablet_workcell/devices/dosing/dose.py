"""What a gravimetric dose takes and gives: settings, result, progress and its typed errors.

Kept apart from the controller (gravimetric.py) so an action server or a recipe runner can
use the types without the loop. Masses in kg, times in instrument seconds unless named.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tablet_workcell.devices.dosing.codec import FeederJamError, HopperEmptyError
from tablet_workcell.devices.errors import DeviceError, DeviceTimeoutError

__all__ = [
    "DoseOutOfToleranceError",
    "DoseProgress",
    "DoseResult",
    "DoseSettings",
    "DoseTimeoutError",
    "FeederJamError",
    "HopperEmptyError",
    "OvershootError",
    "ProgressCallback",
    "UnderdoseError",
]


class DoseTimeoutError(DeviceTimeoutError):
    """A dose did not finish (stable reading within tolerance) within its time."""


class DoseOutOfToleranceError(DeviceError):
    """The dose ended outside its tolerance; ``result`` holds what was dosed."""

    code_name = "tolerance"

    def __init__(self, device: str, message: str, result: DoseResult) -> None:
        super().__init__(device, message, self.code_name)
        self.result = result


class OvershootError(DoseOutOfToleranceError):
    """More powder than the tolerance allows landed; the dose cannot be undone."""

    code_name = "overshoot"


class UnderdoseError(DoseOutOfToleranceError):
    """Still short of the target after the allowed top-ups."""

    code_name = "underdose"


@dataclass(frozen=True)
class DoseSettings:
    fast_fraction: float = 1.0  # of the head's maximum rate
    slow_fraction: float = 0.15
    min_fraction: float = 0.02
    fall_time_s: float = 0.15  # instrument seconds from the head to the pan
    tau_s: float = 0.3  # balance filter time constant, instrument seconds
    time_scale: float = 1.0  # instrument seconds per wall second
    abs_tolerance_kg: float = 0.5e-6
    rel_tolerance: float = 0.02
    cycle_s: float = 0.008  # wall seconds between readings
    status_period_s: float = 0.15  # wall seconds between head status polls
    slope_window_s: float = 0.25  # instrument seconds of readings the slope is fitted to
    no_flow_s: float = 3.0  # instrument seconds of feeding with no mass arriving = jam
    timeout_s: float = 120.0  # instrument seconds for one dose
    max_top_ups: int = 3
    learn_rate: float = 0.5
    check_hopper: bool = True  # refuse a dose the hopper cannot hold before feeding

    @property
    def lag_s(self) -> float:
        return self.fall_time_s + self.tau_s


@dataclass(frozen=True)
class DoseResult:
    component: str
    target_kg: float
    dosed_kg: float  # the stable net reading at the end
    error_kg: float  # dosed - target
    tolerance_kg: float
    duration_s: float  # wall seconds
    top_ups: int
    predicted_pending_kg: float  # mass predicted still to show when the head first stopped

    @property
    def within_tolerance(self) -> bool:
        return abs(self.error_kg) <= self.tolerance_kg


@dataclass(frozen=True)
class DoseProgress:
    component: str
    phase: str  # taring, fast, slow, settling, top-up
    target_kg: float
    reading_kg: float
    rate_mg_per_s: float
    elapsed_s: float


ProgressCallback = Callable[[DoseProgress], None]
