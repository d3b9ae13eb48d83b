"""The simulated press: the TWC-MP20 protocol's instrument side, driven by the physics twin.

State machine (docs/devices/press.md): IDLE, a running cycle (COMPACT, EJECT, BREAK) that
streams samples in instrument time, and FAULT (latched by overload, motion fault or the
guard door opening mid-cycle, cleared by CLR). The die holds nothing, loose powder
(a blend loaded by option or by :meth:`PressSimulator.load_die`), or a compact; the
ejected tablet waits at the take-off position for the robot or the breaking test.

Instrument time runs ``time_scale`` times faster than the server's clock so tests run
a 4 s cycle in a fraction of a second; the sample timestamps stay instrument seconds.
Faults beyond :class:`FaultSettings`: ``overload_at_s`` / ``motion_fault_at_s`` stop every
compaction that long after punch contact, ``door_open`` starts with the guard open.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from tablet_workcell.devices.errors import DeviceProtocolError
from tablet_workcell.devices.faults import FaultSettings
from tablet_workcell.devices.press import codec, codes
from tablet_workcell.devices.press.codec import Command, DieFill, PressState, Sample
from tablet_workcell.devices.press.sim_cycles import (
    CycleStream,
    partial_tablet,
    plan_breaking,
    plan_compaction,
    plan_ejection,
)
from tablet_workcell.devices.press.sim_options import PressSimConfig, config_from_options
from tablet_workcell.devices.simulated_instrument import SimulatedInstrument
from tablet_workcell.twin.blend import BlendProperties, Formulation
from tablet_workcell.twin.compaction import (
    CompactionError,
    CompactionOutcome,
    PressSettings,
    Tablet,
    breaking_test,
    compact,
)

LOG = logging.getLogger(__name__)
RATES_HZ = (50, 100, 250)
MIN_PRESSURE_PA = 1e6
MIN_FORCE_N = 10.0
MAX_DWELL_S = 60.0
PLATEN_SPEED_RANGE_UM_PER_S = (10.0, 2000.0)
OVERLOAD_READING = 1.06  # the load cell clips a little above its rated force
IDLE_COMMANDS = frozenset({"IDN", "STA", "DIE", "STP"})  # accepted while a cycle runs
MOTION_COMMANDS = frozenset({"CMP", "EJT", "BRK"})


@dataclass
class _Fill:
    blend: BlendProperties
    mass_kg: float


class PressSimulator(SimulatedInstrument):
    """A microscale single-punch press with an in-line diametral breaking tester."""

    name = "press"

    def __init__(self, config: PressSimConfig | None = None, faults: FaultSettings | None = None) -> None:
        super().__init__(faults)
        self.config = config or PressSimConfig()
        self.time_scale = self.config.time_scale
        self.overload_at_s = self.config.overload_at_s
        self.motion_fault_at_s = self.config.motion_fault_at_s
        self.door_closed = not self.config.door_open
        self._lock = threading.RLock()
        self._rng = np.random.default_rng(self.config.seed)
        self.state = PressState.IDLE
        self.last_error = "00"
        self.target_pressure_pa = 0.0
        self.dwell_s = 0.0
        self.rate_hz = 250
        self.die_present = True
        self._fill: _Fill | None = None
        self._compact: tuple[Tablet, _Fill, float] | None = None  # tablet, its powder, fill height
        self._takeoff: tuple[Tablet, BlendProperties] | None = None
        self._stream: CycleStream | None = None
        self.last_outcome: CompactionOutcome | None = None  # twin truth of the last compaction
        self.last_breaking_samples: list[Sample] = []
        if self.config.recipe:
            self.load_die(self.config.recipe, self.config.fill_mass_mg)

    # ------------------------------------------------------------ the cell's side
    @property
    def area_m2(self) -> float:
        return math.pi * self.config.punch_diameter_m**2 / 4.0

    def load_die(self, fractions: Mapping[str, float], mass_mg: float) -> None:
        """Fill the die with ``mass_mg`` of a blend (what the dispensing station does)."""
        blend = Formulation.of(dict(fractions)).properties
        with self._lock:
            self.die_present = True
            self._fill = _Fill(blend, mass_mg * 1e-6)
            self._compact = None

    def remove_die(self) -> None:
        with self._lock:
            self.die_present, self._fill, self._compact = False, None, None

    def take_tablet(self) -> Tablet | None:
        """The robot picks the tablet at the take-off position (the twin's truth of it)."""
        with self._lock:
            taken, self._takeoff = self._takeoff, None
            return taken[0] if taken else None

    def open_door(self) -> None:
        with self._lock:
            self.door_closed = False

    def close_door(self) -> None:
        with self._lock:
            self.door_closed = True

    def stop_all(self) -> None:
        with self._lock:
            self._stream = None
            if self.state is not PressState.FAULT:
                self.state = PressState.IDLE

    # ------------------------------------------------------------ protocol
    def error_reply(self, line: bytes) -> bytes:
        return codec.reply_error(codes.BUSY)

    def handle_line(self, line: bytes, now_s: float) -> bytes:
        if not line.strip():
            return b""
        try:
            command = codec.parse_command(line)
        except DeviceProtocolError as error:
            return codec.reply_error(error.code or codes.CHECKSUM)
        handler = getattr(self, f"_cmd_{command.name.lower()}", None)
        with self._lock:
            if handler is None:
                return codec.reply_error(codes.UNKNOWN_COMMAND, command.name[:20])
            if self._stream is not None and command.name not in IDLE_COMMANDS:
                return codec.reply_error(codes.BUSY)
            if command.name in MOTION_COMMANDS:
                refusal = self._motion_refusal()
                if refusal:
                    return refusal
            reply: bytes = handler(command, now_s)
            return reply

    def tick(self, now_s: float) -> bytes:
        with self._lock:
            stream = self._stream
            if stream is None:
                return b""
            if not self.door_closed:
                return self._cut(stream, codes.INTERLOCK, "door opened")
            due, fault = stream.due((now_s - stream.start_s) * self.time_scale)
            out = b"".join(codec.reply_sample(sample) for sample in due)
            if fault is not None:
                return out + self._cut(stream, *fault)
            if stream.finished:
                self._stream = None
                self.state = PressState.IDLE
                stream.on_end()
                out += stream.end
            return out

    def _cut(self, stream: CycleStream, code: str, detail: str) -> bytes:
        """End the running cycle with an error line; latch the fault where the code does."""
        out = b""
        if code == codes.OVERLOAD:
            last = stream.sent[-1] if stream.sent else Sample(0.0, 0.0, 0.0, codec.Phase.LOADING)
            spike = replace(last, time_s=last.time_s + 1.0 / self.rate_hz)
            spike = replace(spike, force_n=round(self.config.max_force_n * OVERLOAD_READING, 2))
            stream.sent.append(spike)
            out = codec.reply_sample(spike)
        self._stream = None
        stream.on_stop(stream.sent)
        latched = codes.ERRORS[code].latches
        self.state = PressState.FAULT if latched else PressState.IDLE
        if latched or code == codes.ABORTED:
            self.last_error = code
        LOG.info("press simulator: cycle stopped (%s %s)", code, codes.ERRORS[code].mnemonic)
        return out + codec.reply_error(code, detail)

    def _motion_refusal(self) -> bytes:
        if self.state is PressState.FAULT:
            return codec.reply_error(codes.LATCHED, f"last {self.last_error}")
        if not self.door_closed:
            return codec.reply_error(codes.INTERLOCK)
        return b""

    # ------------------------------------------------------------ commands
    @staticmethod
    def _no_args(command: Command) -> bytes:
        return codec.reply_error(codes.SYNTAX, f"{command.name} takes no arguments") if command.args else b""

    def _cmd_idn(self, command: Command, now_s: float) -> bytes:
        c = self.config
        return self._no_args(command) or codec.reply_ack(
            "IDN", c.model, c.serial, c.firmware, f"{c.max_force_n:.0f}", f"{c.punch_diameter_m * 1e3:.2f}"
        )

    def _die_fields(self) -> tuple[str, str]:
        if not self.die_present:
            die = DieFill.NONE
        elif self._compact is not None:
            die = DieFill.PRESSED
        elif self._fill is not None:
            die = DieFill.FILLED
        else:
            die = DieFill.EMPTY
        return die.value, "TABLET" if self._takeoff else "CLEAR"

    def _cmd_sta(self, command: Command, now_s: float) -> bytes:
        die, takeoff = self._die_fields()
        door = "CLOSED" if self.door_closed else "OPEN"
        return self._no_args(command) or codec.reply_ack(
            "STA", self.state.value, die, takeoff, door, self.last_error
        )

    def _cmd_die(self, command: Command, now_s: float) -> bytes:
        return self._no_args(command) or codec.reply_ack("DIE", *self._die_fields())

    def _target_reply(self) -> bytes:
        force = self.target_pressure_pa * self.area_m2
        return codec.reply_ack("TGT", f"{self.target_pressure_pa / 1e6:.2f}", f"{force:.1f}")

    def _cmd_tgt(self, command: Command, now_s: float) -> bytes:
        if not command.args:
            return self._target_reply()
        kind, value_text = (*command.args, "", "")[:2]
        if len(command.args) != 2 or kind not in ("P", "F") or not codec.is_number(value_text):
            return codec.reply_error(codes.SYNTAX, "TGT P <MPa> or TGT F <N>")
        value = float(value_text)
        max_force = self.config.max_force_n
        if kind == "P":
            low, high = MIN_PRESSURE_PA / 1e6, max_force / self.area_m2 / 1e6
            if not low <= value <= high:
                return codec.reply_error(codes.RANGE, f"P {low:.2f}..{high:.2f}")
            self.target_pressure_pa = value * 1e6
        else:
            if not MIN_FORCE_N <= value <= max_force:
                return codec.reply_error(codes.RANGE, f"F {MIN_FORCE_N:.1f}..{max_force:.1f}")
            self.target_pressure_pa = value / self.area_m2
        return self._target_reply()

    def _cmd_dwl(self, command: Command, now_s: float) -> bytes:
        if command.args:
            if len(command.args) != 1 or not codec.is_number(command.args[0]):
                return codec.reply_error(codes.SYNTAX, "DWL <s>")
            value = float(command.args[0])
            if not 0.0 <= value <= MAX_DWELL_S:
                return codec.reply_error(codes.RANGE, f"0.000..{MAX_DWELL_S:.3f}")
            self.dwell_s = value
        return codec.reply_ack("DWL", f"{self.dwell_s:.3f}")

    def _cmd_rate(self, command: Command, now_s: float) -> bytes:
        if command.args:
            if len(command.args) != 1 or not command.args[0].isdigit():
                return codec.reply_error(codes.SYNTAX, "RATE <Hz>")
            if int(command.args[0]) not in RATES_HZ:
                return codec.reply_error(codes.RANGE, "|".join(str(r) for r in RATES_HZ))
            self.rate_hz = int(command.args[0])
        return codec.reply_ack("RATE", str(self.rate_hz))

    def _cmd_stp(self, command: Command, now_s: float) -> bytes:
        stream = self._stream
        if stream is None:
            return codec.reply_ack("STP")
        return codec.reply_ack("STP") + self._cut(stream, codes.ABORTED, "")

    def _cmd_clr(self, command: Command, now_s: float) -> bytes:
        if not self.door_closed:
            return codec.reply_error(codes.INTERLOCK)
        self.state, self.last_error = PressState.IDLE, "00"
        return self._no_args(command) or codec.reply_ack("CLR")

    def _cmd_cmp(self, command: Command, now_s: float) -> bytes:
        refusal = self._no_args(command) or self._die_refusal(need_fill=True)
        if refusal:
            return refusal
        if self.target_pressure_pa <= 0.0:
            return codec.reply_error(codes.NO_TARGET)
        fill = self._fill
        if fill is None:  # _die_refusal has answered this already; kept for the type checker
            return codec.reply_error(codes.DIE_EMPTY)
        settings = PressSettings(sample_rate_hz=float(self.rate_hz), max_force_n=self.config.max_force_n)
        try:
            outcome = compact(
                fill.blend,
                fill.mass_kg,
                self.config.punch_diameter_m,
                self.target_pressure_pa,
                self.dwell_s,
                self._rng,
                settings,
            )
        except CompactionError as error:
            LOG.warning("press simulator: the twin refused the cycle: %s", error)
            return codec.reply_error(codes.RANGE)
        self.last_outcome = outcome
        samples, summary = plan_compaction(outcome, self.dwell_s, self.rate_hz, self._rng)
        fill_height = outcome.record.fill_height_m
        target_force = self.target_pressure_pa * self.area_m2

        def on_end() -> None:
            self._fill = None
            self._takeoff = (outcome.tablet, fill.blend)

        def on_stop(sent: list[Sample]) -> None:
            if any(s.phase is codec.Phase.EJECTION for s in sent):
                tablet: Tablet | None = outcome.tablet  # stopped while ejecting: still in the die
            else:
                tablet = partial_tablet(outcome.tablet, fill_height, sent, target_force)
            if tablet is not None:  # else the powder was hardly touched and stays a loose fill
                self._fill, self._compact = None, (tablet, fill, fill_height)

        fault = None
        if self.overload_at_s > 0.0:
            fault = (
                self.overload_at_s,
                codes.OVERLOAD,
                f"{self.config.max_force_n * OVERLOAD_READING:.0f} N",
            )
        if self.motion_fault_at_s > 0.0 and (fault is None or self.motion_fault_at_s < fault[0]):
            fault = (self.motion_fault_at_s, codes.MOTION, "following error")
        end = codec.reply_summary(summary)
        self._start(PressState.COMPACT, now_s, samples, end, on_end, on_stop, fault)
        return codec.reply_ack(
            "CMP", f"{self.target_pressure_pa / 1e6:.2f}", f"{self.dwell_s:.3f}", str(self.rate_hz)
        )

    def _cmd_ejt(self, command: Command, now_s: float) -> bytes:
        refusal = self._no_args(command) or self._die_refusal(need_fill=False)
        if refusal:
            return refusal
        if self._compact is None:
            return codec.reply_error(codes.NO_TABLET, "die not pressed")
        tablet, fill, fill_height = self._compact
        samples, summary = plan_ejection(tablet, fill_height, self.rate_hz, self._rng)

        def on_end() -> None:
            self._compact = None
            self._takeoff = (tablet, fill.blend)

        self._start(PressState.EJECT, now_s, samples, codec.reply_summary(summary), on_end, lambda _: None)
        return codec.reply_ack("EJT")

    def _cmd_brk(self, command: Command, now_s: float) -> bytes:
        low, high = PLATEN_SPEED_RANGE_UM_PER_S
        speed_um = 200.0
        if command.args:
            if len(command.args) != 1 or not codec.is_number(command.args[0]):
                return codec.reply_error(codes.SYNTAX, "BRK [<um/s>]")
            speed_um = float(command.args[0])
            if not low <= speed_um <= high:
                return codec.reply_error(codes.RANGE, f"{low:.0f}..{high:.0f}")
        if self._takeoff is None:
            return codec.reply_error(codes.NO_TABLET, "take-off empty")
        tablet, blend = self._takeoff
        speed = speed_um * 1e-6
        settings = PressSettings(sample_rate_hz=float(self.rate_hz), platen_speed_m_per_s=speed)
        record = None if tablet.capped else breaking_test(tablet, blend, self._rng, settings)
        samples, summary = plan_breaking(record, speed, self.rate_hz, self._rng)
        self.last_breaking_samples = list(samples)

        def on_end() -> None:
            self._takeoff = None  # the fragments are swept into the waste bin

        self._start(PressState.BREAK, now_s, samples, codec.reply_summary(summary), on_end, lambda _: None)
        return codec.reply_ack("BRK", f"{speed_um:.0f}")

    def _die_refusal(self, need_fill: bool) -> bytes:
        if not self.die_present:
            return codec.reply_error(codes.NO_DIE)
        if self._takeoff is not None:
            return codec.reply_error(codes.TAKEOFF_OCCUPIED)
        if need_fill and self._compact is not None:
            return codec.reply_error(codes.DIE_EMPTY, "die holds a compact; eject it")
        if need_fill and self._fill is None and self.config.auto_fill and self.config.recipe:
            self.load_die(self.config.recipe, self.config.fill_mass_mg)
        if need_fill and self._fill is None:
            return codec.reply_error(codes.DIE_EMPTY)
        return b""

    def _start(
        self,
        state: PressState,
        now_s: float,
        samples: list[Sample],
        end: bytes,
        on_end: Callable[[], None],
        on_stop: Callable[[list[Sample]], None],
        fault: tuple[float, str, str] | None = None,
    ) -> None:
        self.state = state
        self._stream = CycleStream(now_s, deque(samples), end, on_end, on_stop, fault)


def make_simulators(options: Mapping[str, Any], faults: FaultSettings) -> dict[str, SimulatedInstrument]:
    """``python -m tablet_workcell.devices.serve press --option recipe=mcc:0.99,mgst:0.01``."""
    return {"press": PressSimulator(config_from_options(options), faults)}


__all__ = ["PressSimConfig", "PressSimulator", "config_from_options", "make_simulators"]
