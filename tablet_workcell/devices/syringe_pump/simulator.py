"""The NE-1000's side of basic mode, with the plunger moving in time.

The volume moved is rate x time, up to the programmed volume (``VOL 0`` pumps until
stopped); accumulated infused and withdrawn volumes are what ``DIS`` reports. Rates are
refused with ``?OOR`` outside the plunger speeds the drive can make for the syringe
diameter, settings that cannot change while pumping answer ``?NA``, and an alarm is
reported once in place of the next command's reply (which is then not executed), as the
manual describes. A stall can be injected (``stall_after_ul``): the motor stops after that
volume of a run and the pump raises the stall alarm, as when a line is blocked.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from typing import Any

from tablet_workcell.devices.faults import FaultSettings
from tablet_workcell.devices.simulated_instrument import SimulatedInstrument
from tablet_workcell.devices.syringe_pump import codec
from tablet_workcell.devices.syringe_pump.codec import (
    Command,
    Direction,
    PumpAlarm,
    PumpStatus,
    Rate,
    RateUnit,
    Volume,
    VolumeUnit,
)
from tablet_workcell.errors import ConfigError

LOG = logging.getLogger(__name__)

# Plunger speeds of the drive (assumed; docs/devices/syringe_pump.md): 0.73 µm/min at the
# slowest, about 51 mm/min at the fastest (1699 mL/h in a 26.59 mm, 60 mL syringe).
MIN_PLUNGER_SPEED_MM_PER_MIN = 0.73e-3
MAX_PLUNGER_SPEED_MM_PER_MIN = 51.0
MIN_DIAMETER_MM = 0.1
MAX_DIAMETER_MM = 50.0
UL_UNITS_MAX_DIAMETER_MM = 14.0  # at or below: volumes in µL, above: mL (manual, quick start)


class SyringePumpSimulator(SimulatedInstrument):
    """One NE-1000 on the RS-232 line."""

    command_terminator = codec.CR
    name = "syringe_pump"

    def __init__(
        self,
        faults: FaultSettings | None = None,
        address: int = 0,
        diameter_mm: float = 4.699,
        stall_after_ul: float | None = None,
        alarm_at_power_on: bool = False,
        model: str = "1000",
        firmware: str = "3.928",
    ) -> None:
        super().__init__(faults)
        self.address = address
        self.diameter_mm = diameter_mm
        self.rate = Rate(10.0, RateUnit.UL_PER_MIN)
        self.volume_unit = self._default_volume_unit()
        self.target = Volume(0.0, self.volume_unit)
        self.direction = Direction.INFUSE
        self.status = PumpStatus.STOPPED
        self.infused_ul = 0.0
        self.withdrawn_ul = 0.0
        self.stall_after_ul = stall_after_ul
        self.alarm: PumpAlarm | None = PumpAlarm.RESET if alarm_at_power_on else None
        self.model = model
        self.firmware = firmware
        self._remaining_ul = 0.0  # of the current run; inf when VOL is 0
        self._run_moved_ul = 0.0
        self._last_s = 0.0
        self.stopped_at_s: float | None = None  # instrument time the plunger last stopped
        # Called as listener(now_s, volume_ul) when an infusion run completes its programmed
        # volume (a droplet left the needle): the disintegration station's camera films it.
        self.dispense_listeners: list[Callable[[float, float], None]] = []

    # ------------------------------------------------------------------ physics
    @property
    def area_mm2(self) -> float:
        return math.pi * self.diameter_mm**2 / 4.0

    def rate_limits_ul_per_min(self) -> tuple[float, float]:
        """Slowest and fastest rate for the syringe (µL/min = mm³/min)."""
        return self.area_mm2 * MIN_PLUNGER_SPEED_MM_PER_MIN, self.area_mm2 * MAX_PLUNGER_SPEED_MM_PER_MIN

    def _default_volume_unit(self) -> VolumeUnit:
        return VolumeUnit.UL if self.diameter_mm <= UL_UNITS_MAX_DIAMETER_MM else VolumeUnit.ML

    def advance(self, now_s: float) -> None:
        """Move the plunger from the last update to ``now_s``."""
        dt = max(0.0, now_s - self._last_s)
        self._last_s = now_s
        if not self.status.moving or dt == 0.0:
            return
        moved = min(self.rate.ul_per_min / 60.0 * dt, self._remaining_ul)
        if self.stall_after_ul is not None:
            moved = min(moved, max(0.0, self.stall_after_ul - self._run_moved_ul))
        self._run_moved_ul += moved
        self._remaining_ul -= moved
        if self.direction is Direction.INFUSE:
            self.infused_ul += moved
        else:
            self.withdrawn_ul += moved
        if self.stall_after_ul is not None and self._run_moved_ul >= self.stall_after_ul:
            LOG.warning("syringe pump simulator: motor stalled (injected)")
            self.alarm = PumpAlarm.STALLED
            self._halt(PumpStatus.STOPPED, now_s)
        elif self._remaining_ul <= 1e-9:
            self._halt(PumpStatus.STOPPED, now_s)
            if self.direction is Direction.INFUSE:
                for listener in self.dispense_listeners:
                    listener(now_s, self._run_moved_ul)

    def _halt(self, status: PumpStatus, now_s: float) -> None:
        self.status = status
        self.stopped_at_s = now_s

    def tick(self, now_s: float) -> bytes:
        self.advance(now_s)
        return b""

    def stop_all(self) -> None:
        if self.status.moving:
            self.status = PumpStatus.PAUSED

    # ------------------------------------------------------------------ protocol
    def error_reply(self, line: bytes) -> bytes:
        return codec.encode_error_reply(self.address, self.status, "")

    def handle_line(self, line: bytes, now_s: float) -> bytes:
        self.advance(now_s)
        command = codec.parse_command(line)
        if command.address is not None and command.address not in (self.address, -1):
            return b""  # addressed to another pump on the network
        handler = _HANDLERS.get(command.name)
        if handler is None:
            return codec.encode_error_reply(self.address, self.status, "")
        if self.alarm is not None:  # reported once instead of executing the command
            alarm, self.alarm = self.alarm, None
            return codec.encode_reply(self.address, alarm)
        result = handler(self, command, now_s)
        if isinstance(result, tuple):  # a refusal: (error code,)
            return codec.encode_error_reply(self.address, self.status, result[0])
        return codec.encode_reply(self.address, self.status, result)

    # Each handler returns the reply data, or a 1-tuple with the error code.
    def _status(self, command: Command, now_s: float) -> str | tuple[str]:
        return ""

    def _version(self, command: Command, now_s: float) -> str | tuple[str]:
        return f"NE{self.model}V{self.firmware}" if not command.argument else ("",)

    def _diameter(self, command: Command, now_s: float) -> str | tuple[str]:
        if not command.argument:
            return codec.format_number(self.diameter_mm)
        if self.status.moving:
            return ("NA",)
        value = _number(command.argument)
        if value is None or not MIN_DIAMETER_MM <= value <= MAX_DIAMETER_MM:
            return ("OOR",)
        self.diameter_mm = value
        self.volume_unit = self._default_volume_unit()
        self.target = Volume(self.target.value, self.volume_unit)
        return ""

    def _rate(self, command: Command, now_s: float) -> str | tuple[str]:
        if not command.argument:
            return codec.format_number(self.rate.value) + self.rate.unit.value
        value, unit_text = _number(command.argument[:-2]), command.argument[-2:]
        unit = {u.value: u for u in RateUnit}.get(unit_text)
        if unit is None and command.argument[-2:].replace(".", "").isdigit():
            value, unit = _number(command.argument), self.rate.unit  # no unit: keep the current one
        if value is None or unit is None:
            return ("OOR",)
        if self.status.moving and unit is not self.rate.unit:
            return ("NA",)  # units cannot change while pumping (manual 5.4.1)
        low, high = self.rate_limits_ul_per_min()
        if not low <= value * unit.ul_per_min <= high:
            return ("OOR",)
        self.rate = Rate(value, unit)
        return ""

    def _volume(self, command: Command, now_s: float) -> str | tuple[str]:
        if not command.argument:
            return codec.format_number(self.target.value) + self.volume_unit.value
        if self.status.moving:
            return ("NA",)
        if command.argument in ("UL", "ML"):
            self.volume_unit = VolumeUnit(command.argument)
            self.target = Volume(self.target.value, self.volume_unit)
            return ""
        value = _number(command.argument)
        if value is None:
            return ("OOR",)
        self.target = Volume(value, self.volume_unit)
        return ""

    def _direction(self, command: Command, now_s: float) -> str | tuple[str]:
        if not command.argument:
            return self.direction.value
        if command.argument == "REV":
            wanted = Direction.WITHDRAW if self.direction is Direction.INFUSE else Direction.INFUSE
        elif command.argument in ("INF", "WDR"):
            wanted = Direction(command.argument)
        else:
            return ("OOR",)
        if self.status.moving and self.target.value != 0.0:
            return ("NA",)  # only continuous pumping may reverse while running (manual 5.4.1)
        self.direction = wanted
        if self.status.moving:
            self.status = PumpStatus.INFUSING if wanted is Direction.INFUSE else PumpStatus.WITHDRAWING
        return ""

    def _dispensed(self, command: Command, now_s: float) -> str | tuple[str]:
        unit = self.volume_unit.ul
        return (
            f"I{codec.format_number(self.infused_ul / unit)}"
            f"W{codec.format_number(self.withdrawn_ul / unit)}{self.volume_unit.value}"
        )

    def _clear(self, command: Command, now_s: float) -> str | tuple[str]:
        if command.argument == "INF":
            self.infused_ul = 0.0
        elif command.argument == "WDR":
            self.withdrawn_ul = 0.0
        else:
            return ("OOR",)
        return ""

    def _run(self, command: Command, now_s: float) -> str | tuple[str]:
        if self.status.moving:
            return ""
        low, high = self.rate_limits_ul_per_min()
        if not low <= self.rate.ul_per_min <= high:
            return ("OOR",)  # the diameter changed under a rate it cannot make
        if self.status is not PumpStatus.PAUSED:  # a new run; a paused one resumes
            self._remaining_ul = self.target.ul if self.target.value > 0.0 else math.inf
            self._run_moved_ul = 0.0
        self.status = PumpStatus.INFUSING if self.direction is Direction.INFUSE else PumpStatus.WITHDRAWING
        return ""

    def _stop(self, command: Command, now_s: float) -> str | tuple[str]:
        # Running -> paused (RUN resumes the rest); paused -> stopped (program reset).
        self._halt(PumpStatus.PAUSED if self.status.moving else PumpStatus.STOPPED, now_s)
        return ""


def _number(text: str) -> float | None:
    try:
        return codec.parse_number(text)
    except codec.DeviceProtocolError:
        return None


_HANDLERS = {
    "": SyringePumpSimulator._status,
    "VER": SyringePumpSimulator._version,
    "DIA": SyringePumpSimulator._diameter,
    "RAT": SyringePumpSimulator._rate,
    "VOL": SyringePumpSimulator._volume,
    "DIR": SyringePumpSimulator._direction,
    "DIS": SyringePumpSimulator._dispensed,
    "CLD": SyringePumpSimulator._clear,
    "RUN": SyringePumpSimulator._run,
    "STP": SyringePumpSimulator._stop,
}


def _option(options: Mapping[str, Any], name: str, kind: type, default: Any) -> Any:
    if name not in options:
        return default
    try:
        return kind(options[name])
    except (TypeError, ValueError) as error:
        raise ConfigError(
            f"syringe pump simulator option {name}={options[name]!r} must be a {kind.__name__}."
        ) from error


def make_simulators(options: Mapping[str, Any], faults: FaultSettings) -> dict[str, SimulatedInstrument]:
    """Factory for ``python -m tablet_workcell.devices.serve syringe_pump``.

    Options: ``address`` (0-99), ``diameter_mm``, ``stall_after_ul`` (inject a stall),
    ``alarm_at_power_on`` (true: the first reply is the reset alarm).
    """
    known = {"address", "diameter_mm", "stall_after_ul", "alarm_at_power_on"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ConfigError(f"unknown syringe pump simulator option(s) {unknown}; known: {sorted(known)}.")
    address = _option(options, "address", int, 0)
    if not 0 <= address <= codec.MAX_ADDRESS:
        raise ConfigError(f"syringe pump simulator option address={address} must be between 0 and 99.")
    diameter = _option(options, "diameter_mm", float, 4.699)
    if not MIN_DIAMETER_MM <= diameter <= MAX_DIAMETER_MM:
        raise ConfigError(
            f"syringe pump simulator option diameter_mm={diameter} must be between "
            f"{MIN_DIAMETER_MM} and {MAX_DIAMETER_MM} mm."
        )
    stall = _option(options, "stall_after_ul", float, None)
    alarm = str(options.get("alarm_at_power_on", "false")).strip().lower() in ("1", "true", "yes")
    sim = SyringePumpSimulator(faults, address, diameter, stall, alarm)
    return {"syringe_pump": sim}
