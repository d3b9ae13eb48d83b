"""Marlin firmware of a desktop arm, as the host sees it over serial, with motion in time.

Like Marlin, the simulator runs commands from a queue one at a time: a move is taken
(``ok``) as soon as it is in the 16-block planner, while ``G28``, ``M400`` and ``G4``
hold the queue until the motion is done (printing ``echo:busy: processing`` every 2 s).
The tool moves along trapezoidal profiles in (scaled) time, so ``M114 R`` during a move
shows where it is; plain ``M114`` shows the projected position, the last target.
``M112`` and ``M410`` are acted on the moment their bytes arrive (Marlin's emergency
parser), even while the queue is held: ``M410`` stops the steppers at once and keeps
the position, ``M112`` kills the firmware, which then answers nothing until
:meth:`MarlinArmSimulator.reset` (the board's reset button). Soft endstops clip targets
to the machine's travel, silently, as Marlin does. Injected device errors are checksum
mismatches (``Error:checksum mismatch`` + ``Resend``), the error of a noisy line.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from tablet_workcell.devices.arm import codec, gcode
from tablet_workcell.devices.arm.gcode import GcodeLine, LineError
from tablet_workcell.devices.arm.motion import Move, Vec3, plan_move
from tablet_workcell.devices.faults import FaultSettings
from tablet_workcell.devices.simulated_instrument import SimulatedInstrument
from tablet_workcell.errors import ConfigError

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class ArmFirmwareConfig:
    """What would be compiled into the arm's Marlin (Configuration.h), in mm and mm/s."""

    min_mm: Vec3 = (-100.0, -350.0, 0.0)  # [XYZ]_MIN_POS: soft endstops
    max_mm: Vec3 = (450.0, 350.0, 320.0)  # [XYZ]_MAX_POS
    home_mm: Vec3 = (0.0, 0.0, 320.0)  # where G28 leaves the tool (endstops)
    power_on_mm: Vec3 = (150.0, 0.0, 150.0)  # where the tool physically is at power-on
    max_feed_mm_s: Vec3 = (250.0, 250.0, 120.0)  # DEFAULT_MAX_FEEDRATE
    accel_mm_s2: float = 1500.0  # DEFAULT_ACCELERATION
    homing_feed_mm_s: float = 80.0
    default_feed_mm_s: float = 25.0  # Marlin's feedrate before the first F word
    steps_per_mm: Vec3 = (80.0, 80.0, 400.0)
    keepalive_s: float = 2.0  # DEFAULT_KEEPALIVE_INTERVAL
    planner_blocks: int = 16  # BLOCK_BUFFER_SIZE
    firmware_name: str = "Marlin 2.1.2.1 (Jun 10 2023 12:00:00)"
    machine_type: str = "Tablet Cell Arm"
    uuid: str = "3f2b8c1e-5a7d-4c1b-9e2f-0d6a4b8c7e21"


@dataclass
class _Blocking:
    """A command holding the queue until ``done(now)``; then ``reply`` is sent."""

    done: Callable[[float], bool]
    reply: bytes
    on_done: Callable[[], None] | None = None


class _Corrupt:
    """A line that arrived damaged (injected): refused for its checksum, in queue order."""


class MarlinArmSimulator(SimulatedInstrument):
    command_terminator = b"\n"
    name = "arm"

    def __init__(self, faults: FaultSettings | None = None, config: ArmFirmwareConfig | None = None) -> None:
        super().__init__(faults)
        self.config = config or ArmFirmwareConfig()
        self.killed = False
        self._boot()
        self._output = bytearray()

    def _boot(self) -> None:
        self.homed = False
        self.position_mm: Vec3 = (0.0, 0.0, 0.0)  # projected (logical) position, M114
        self.physical_mm: Vec3 = self.config.power_on_mm
        self.relative = False
        self.feed_mm_s = self.config.default_feed_mm_s
        self.suction_pwm = 0
        self.soft_endstops = True
        self.last_line = 0
        self._planner: collections.deque[Move] = collections.deque()
        self._move_started_s = 0.0
        self._queue: collections.deque[GcodeLine | _Corrupt] = collections.deque()
        self._pending: _Blocking | None = None
        self._last_busy_s = 0.0
        self._homing_interrupted = False
        self._now = 0.0

    @property
    def suction_on(self) -> bool:
        return self.suction_pwm > 0

    @property
    def moving(self) -> bool:
        return bool(self._planner)

    def reset(self) -> None:
        """The reset button (or a power cycle): the firmware boots and says so."""
        LOG.info("arm simulator: reset")
        self.killed = False
        self._boot()
        self._output += codec.write("start") + codec.write(f"echo:{self.config.firmware_name}")

    # ------------------------------------------------------------------ motion
    def _advance(self, now_s: float) -> None:
        self._now = max(self._now, now_s)
        while self._planner:
            move = self._planner[0]
            finish = self._move_started_s + move.duration_s
            if now_s < finish:
                self.physical_mm = move.position_at(now_s - self._move_started_s)
                return
            self.physical_mm = move.end_mm
            self._planner.popleft()
            self._move_started_s = finish

    def _planned_end(self) -> Vec3:
        return self._planner[-1].end_mm if self._planner else self.physical_mm

    def _plan(self, target_mm: Vec3, speed_mm_s: float, now_s: float) -> None:
        move = plan_move(
            self._planned_end(), target_mm, speed_mm_s, self.config.max_feed_mm_s, self.config.accel_mm_s2
        )
        if not self._planner:
            self._move_started_s = now_s
        self._planner.append(move)

    def _quickstop(self, now_s: float) -> None:
        """M410: steppers stop where they are; the position is kept (homed axes stay homed)."""
        self._advance(now_s)
        if self._planner and not self.homed:
            self._homing_interrupted = True
        self._planner.clear()
        if self.homed:
            self.position_mm = self.physical_mm

    def stop_all(self) -> None:
        self._quickstop(self._now)

    def _counts(self, position_mm: Vec3) -> tuple[int, int, int]:
        s = self.config.steps_per_mm
        return (round(position_mm[0] * s[0]), round(position_mm[1] * s[1]), round(position_mm[2] * s[2]))

    # ------------------------------------------------------------------ serial
    def handle_line(self, line: bytes, now_s: float) -> bytes:
        self._advance(now_s)
        if self.killed:
            return b""
        parsed = gcode.parse_line(line)
        if parsed.command == "M112":  # emergency parser: at once, whatever the queue holds
            LOG.warning("arm simulator: M112, firmware killed")
            self.killed = True
            self._planner.clear()
            self._queue.clear()
            self._pending = None
            return codec.KILLED
        if parsed.command == "M410":
            self._quickstop(now_s)  # and queued as usual for its ok
        self._queue.append(parsed)
        return self._run_queue(now_s)

    def error_reply(self, line: bytes) -> bytes:
        if self.killed:
            return b""
        self._queue.append(_Corrupt())
        return self._run_queue(self._now)

    def tick(self, now_s: float) -> bytes:
        self._advance(now_s)
        out, self._output = self._output, bytearray()
        if self._pending is not None and not self.killed:
            if self._pending.done(now_s):
                pending, self._pending = self._pending, None
                if pending.on_done is not None:
                    pending.on_done()
                out += pending.reply
            elif now_s - self._last_busy_s >= self.config.keepalive_s:
                self._last_busy_s = now_s
                out += codec.BUSY
        out += self._run_queue(now_s)
        return bytes(out)

    def _run_queue(self, now_s: float) -> bytes:
        out = bytearray()
        while self._queue and self._pending is None and not self.killed:
            out += self._execute(self._queue.popleft(), now_s)
        return bytes(out)

    def _block(
        self, done: Callable[[float], bool], reply: bytes, on_done: Callable[[], None] | None = None
    ) -> bytes:
        self._pending = _Blocking(done, reply, on_done)
        self._last_busy_s = self._now
        return b""

    def _execute(self, item: GcodeLine | _Corrupt, now_s: float) -> bytes:
        if isinstance(item, _Corrupt):
            return codec.format_line_error(LineError.CHECKSUM_MISMATCH, self.last_line)
        if item.line_number is not None and item.command != "M110" and item.line_number != self.last_line + 1:
            return codec.format_line_error(LineError.LINE_NUMBER, self.last_line)
        if item.error is not None:
            return codec.format_line_error(item.error, self.last_line)
        if item.line_number is not None:
            self.last_line = item.line_number
        if not item.text:
            return b""  # blank lines and comments get no ok
        handler = _HANDLERS.get(item.command)
        if handler is None:
            return codec.format_unknown_command(item.text) + codec.OK
        return handler(self, item, now_s)

    # ------------------------------------------------------------------ commands
    def _move(self, item: GcodeLine, now_s: float) -> bytes:
        if not self.homed:
            return codec.write("echo:Home XYZ First") + codec.OK
        if item.has("F") and (item.value("F") or 0.0) > 0.0:
            self.feed_mm_s = (item.value("F") or 0.0) / 60.0
        target = list(self.position_mm)
        for axis, letter in enumerate("XYZ"):
            value = item.value(letter)
            if value is not None:
                target[axis] = target[axis] + value if self.relative else value
        if self.soft_endstops:
            target = [
                min(max(v, lo), hi)
                for v, lo, hi in zip(target, self.config.min_mm, self.config.max_mm, strict=True)
            ]
        goal: Vec3 = (target[0], target[1], target[2])
        self.position_mm = goal

        def plan() -> None:
            self._plan(goal, self.feed_mm_s, self._now)

        if len(self._planner) < self.config.planner_blocks:
            plan()
            return codec.OK
        return self._block(lambda now: len(self._planner) < self.config.planner_blocks, codec.OK, plan)

    def _home(self, item: GcodeLine, now_s: float) -> bytes:
        self._homing_interrupted = False
        self.homed = False
        self._plan(self.config.home_mm, self.config.homing_feed_mm_s, now_s)

        def finish() -> None:
            self.homed = not self._homing_interrupted
            self.position_mm = self.config.home_mm if self.homed else (0.0, 0.0, 0.0)

        return self._block(lambda now: not self._planner, codec.OK, finish)

    def _dwell(self, item: GcodeLine, now_s: float) -> bytes:
        dwell_s = (item.value("P") or 0.0) / 1000.0 + (item.value("S") or 0.0)
        started: list[float] = []

        def done(now: float) -> bool:
            if self._planner:
                return False
            if not started:
                started.append(now)
            return now - started[0] >= dwell_s

        return self._block(done, codec.OK)

    def _position(self, item: GcodeLine, now_s: float) -> bytes:
        realtime = item.has("R")
        where = (self.physical_mm if realtime else self.position_mm) if self.homed else (0.0, 0.0, 0.0)
        counts = self._counts(self.physical_mm if realtime else self._planned_end())
        return codec.format_position(where, counts) + codec.OK

    def _finish_moves(self, item: GcodeLine, now_s: float) -> bytes:
        return self._block(lambda now: not self._planner, codec.OK)

    def _suction(self, item: GcodeLine, now_s: float) -> bytes:
        if int(item.value("P") or 0) == 0:  # one fan output drives the vacuum pump
            on = item.command == "M106"
            self.suction_pwm = max(0, min(255, round(item.value("S", 255.0) or 0.0))) if on else 0
        return codec.OK

    def _report(self, item: GcodeLine, now_s: float) -> bytes:
        c = self.config
        info = (
            f"FIRMWARE_NAME:{c.firmware_name} SOURCE_CODE_URL:github.com/MarlinFirmware/Marlin "
            f"PROTOCOL_VERSION:1.0 MACHINE_TYPE:{c.machine_type} KINEMATICS:Cartesian EXTRUDER_COUNT:0 "
            f"UUID:{c.uuid}"
        )
        caps = ("EMERGENCY_PARSER:1", "AUTOREPORT_POS:0", "SOFTWARE_POWER:0", "EEPROM:1")
        return codec.write(info) + b"".join(codec.write("Cap:" + cap) for cap in caps) + codec.OK

    def _endstops(self, item: GcodeLine, now_s: float) -> bytes:
        if item.has("S"):
            self.soft_endstops = bool(item.value("S"))
        return (
            codec.format_soft_endstops(self.soft_endstops, self.config.min_mm, self.config.max_mm) + codec.OK
        )

    def _mode(self, item: GcodeLine, now_s: float) -> bytes:
        self.relative = item.command == "G91"
        return codec.OK

    def _simple(self, item: GcodeLine, now_s: float) -> bytes:
        if item.command == "M110":
            self.last_line = int(item.value("N", float(self.last_line)) or 0)
        return codec.OK  # G21 (mm), M410 (already stopped by the emergency parser)

    def _echo(self, item: GcodeLine, now_s: float) -> bytes:
        text = gcode.command_text(item)
        prefix = "echo:" if text.startswith(("E1 ", "e1 ")) else ""
        return codec.write(prefix + (text[3:] if prefix else text)) + codec.OK


_HANDLERS: dict[str, Callable[[MarlinArmSimulator, GcodeLine, float], bytes]] = {
    "G0": MarlinArmSimulator._move,
    "G1": MarlinArmSimulator._move,
    "G4": MarlinArmSimulator._dwell,
    "G21": MarlinArmSimulator._simple,
    "G28": MarlinArmSimulator._home,
    "G90": MarlinArmSimulator._mode,
    "G91": MarlinArmSimulator._mode,
    "M106": MarlinArmSimulator._suction,
    "M107": MarlinArmSimulator._suction,
    "M110": MarlinArmSimulator._simple,
    "M114": MarlinArmSimulator._position,
    "M115": MarlinArmSimulator._report,
    "M118": MarlinArmSimulator._echo,
    "M211": MarlinArmSimulator._endstops,
    "M400": MarlinArmSimulator._finish_moves,
    "M410": MarlinArmSimulator._simple,
}


def _vector(options: Mapping[str, Any], name: str, default: Vec3) -> Vec3:
    if name not in options:
        return default
    parts = str(options[name]).split(",")
    try:
        values = [float(p) for p in parts]
    except ValueError as error:
        raise ConfigError(
            f"arm simulator option {name}={options[name]!r} must be three numbers x,y,z in mm."
        ) from error
    if len(values) != 3:
        raise ConfigError(f"arm simulator option {name}={options[name]!r} must be three numbers x,y,z in mm.")
    return (values[0], values[1], values[2])


def make_simulators(options: Mapping[str, Any], faults: FaultSettings) -> dict[str, SimulatedInstrument]:
    """Factory for ``python -m tablet_workcell.devices.serve arm``.

    Options (mm, mm/s): ``min_mm``/``max_mm`` (soft endstops, ``x,y,z``), ``home_mm``,
    ``power_on_mm``, ``max_feed_mm_s``, ``accel_mm_s2``, ``homing_feed_mm_s``. Use the
    server's ``--time-scale`` to run motion faster than real time.
    """
    vectors = {"min_mm", "max_mm", "home_mm", "power_on_mm", "max_feed_mm_s"}
    scalars = {"accel_mm_s2", "homing_feed_mm_s"}
    unknown = sorted(set(options) - vectors - scalars)
    if unknown:
        raise ConfigError(f"unknown arm simulator option(s) {unknown}; known: {sorted(vectors | scalars)}.")
    config = ArmFirmwareConfig()
    changes: dict[str, Any] = {name: _vector(options, name, getattr(config, name)) for name in vectors}
    for name in scalars:
        if name in options:
            try:
                changes[name] = float(options[name])
            except ValueError as error:
                raise ConfigError(
                    f"arm simulator option {name}={options[name]!r} must be a number."
                ) from error
            if changes[name] <= 0.0:
                raise ConfigError(f"arm simulator option {name}={options[name]!r} must be above 0.")
    config = replace(config, **changes)
    if any(lo >= hi for lo, hi in zip(config.min_mm, config.max_mm, strict=True)):
        raise ConfigError(
            f"arm simulator min_mm {config.min_mm} must be below max_mm {config.max_mm} on every axis."
        )
    return {"arm": MarlinArmSimulator(faults, config)}
