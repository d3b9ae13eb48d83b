"""Driver of a desktop arm running Marlin, over G-code on a serial line.

Lines go out numbered with checksums (``N7 G1 X100.000*42``) so a damaged line is
refused and resent instead of executed wrongly. Marlin answers each line with one
``ok``, in order; the driver counts lines sent and ``ok`` s received, so an ``M410``
sent by :meth:`ArmDriver.stop` from another thread (Marlin acts on it the moment it
arrives) never confuses which ``ok`` belongs to which command. After a timeout or a
damaged reply the count may be off, so the next exchange first resynchronises with a
marker (``M118 E1 sync-...``) that comes back as ``echo:sync-...``.

Units: the API speaks metres and m/s; the wire speaks mm and mm/min. Every target is
checked against the cell's work envelope and the firmware's soft endstops (Marlin clips
targets to its endstops silently, so the driver refuses instead of letting a move end
somewhere else).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from tablet_workcell.devices.arm import codec, gcode
from tablet_workcell.devices.arm.codec import ReplyLine
from tablet_workcell.devices.arm.layout import Box
from tablet_workcell.devices.arm.motion import plan_move
from tablet_workcell.devices.errors import (
    DeviceOutOfRangeError,
    DeviceProtocolError,
    DeviceReportedError,
    DeviceStoppedError,
    DeviceTimeoutError,
)
from tablet_workcell.devices.transport import SerialLike, SerialTransport, TrafficLog

LOG = logging.getLogger(__name__)
DEVICE = "arm"
MAX_SPEED_M_PER_S = 1.0
ASSUMED_ACCEL_MM_S2 = 300.0  # for sizing waits only: lower than any real arm's, so waits are long enough
BUSY_GRACE_S = 5.0  # Marlin's keepalive comes every 2 s; a busy line extends a wait by this much


@dataclass(frozen=True)
class ArmIdentity:
    model: str  # MACHINE_TYPE
    serial: str  # UUID
    firmware: str  # FIRMWARE_NAME


@dataclass(frozen=True)
class ArmPosition:
    x_m: float
    y_m: float
    z_m: float

    @property
    def as_tuple(self) -> tuple[float, float, float]:
        return (self.x_m, self.y_m, self.z_m)


class ArmDriver:
    """``with ArmDriver("/dev/ttyACM0", envelope=layout.work_envelope) as arm: arm.home()``."""

    def __init__(
        self,
        url: str,
        baudrate: int = 250000,
        timeout_s: float = 2.0,
        envelope: Box | None = None,
        log: TrafficLog | None = None,
        opener: Callable[[], SerialLike] | None = None,
        max_resends: int = 3,
    ) -> None:
        self.transport = SerialTransport(url, DEVICE, baudrate, timeout_s, log, opener)
        self.envelope = envelope
        self.max_resends = max_resends
        self.firmware_limits: codec.SoftEndstops | None = None
        self._op_lock = threading.RLock()  # one operation at a time (stop() does not take it)
        self._send_lock = threading.Lock()  # line numbers and writes, shared with stop()
        self._stop_requested = threading.Event()
        self._line = 0
        self._sent = 0
        self._acked = 0
        self._resync_needed = False
        self._halted = False
        self._target_mm: tuple[float, float, float] | None = None
        self._syncs = 0

    # ------------------------------------------------------------------ lifecycle
    def open(self) -> None:
        """Open the port, reset line numbers (``M110 N0``) and read the soft endstops."""
        self.transport.open()
        with self._op_lock:
            self._halted = False
            self._stop_requested.clear()
            self.transport.discard_input()
            self._sent = self._acked = 0
            with self._send_lock:
                self._line = 0
            self._resync_needed = False
            self._collect(self._send("M110 N0", numbered=False), self.transport.timeout_s, opening=True)
            self._resync()
            self.firmware_limits = self.soft_endstops()

    def close(self) -> None:
        self.transport.close()

    def reconnect(self) -> None:
        self.close()
        self.open()

    def __enter__(self) -> ArmDriver:
        self.open()
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # ------------------------------------------------------------------ wire
    def _send(self, command: str, numbered: bool = True) -> int:
        with self._send_lock:
            if numbered:
                self._line += 1
            self.transport.write(gcode.encode_line(command, self._line if numbered else None))
            self._sent += 1
            return self._sent

    def _collect(self, seq: int, timeout_s: float, opening: bool = False) -> list[ReplyLine]:
        """Lines up to the ``ok`` of line ``seq``; those before an earlier ``ok`` are that line's."""
        deadline = time.monotonic() + timeout_s
        lines: list[ReplyLine] = []
        while self._acked < seq:
            remaining = deadline - time.monotonic()
            try:
                if remaining <= 0.0:
                    raise DeviceTimeoutError(
                        DEVICE, f"no ok within {timeout_s:.2f} s; is the arm powered and connected?"
                    )
                raw = self.transport.read_until(gcode.EOL, remaining)
            except DeviceTimeoutError:
                self._resync_needed = True
                raise
            line = codec.parse_reply_line(raw)
            if isinstance(line, codec.Busy):
                deadline = max(deadline, time.monotonic() + BUSY_GRACE_S)
            elif isinstance(line, codec.Ok):
                self._acked += 1
                if self._acked < seq:
                    lines.clear()
            elif isinstance(line, codec.Halted):
                self._halted = True
                raise DeviceStoppedError(
                    DEVICE,
                    f"the firmware halted ({line.text}); press the arm's reset button, then reconnect.",
                )
            elif isinstance(line, codec.Unrecognized):
                self._resync_needed = True
                raise DeviceProtocolError(
                    DEVICE, f"damaged reply line {line.text!r} (expected Marlin's replies)."
                )
            elif isinstance(line, codec.Start):
                if opening:  # a board that has just been reset (or resets when the port opens)
                    continue
                self._resync_needed = True
                raise DeviceReportedError(
                    DEVICE, "the arm firmware restarted; reconnect and home it again.", "start"
                )
            elif self._acked == seq - 1:
                lines.append(line)
        return lines

    def _resync(self) -> None:
        """Send a marker and read up to its ``ok``: afterwards every earlier ``ok`` is accounted for."""
        self._syncs += 1
        token = f"sync-{self._syncs}"  # deterministic, so a recorded session replays
        deadline = time.monotonic() + self.transport.timeout_s
        seq, seen = self._send(f"M118 E1 {token}"), False
        while True:  # read_until raises DeviceTimeoutError at the deadline
            line = codec.parse_reply_line(
                self.transport.read_until(gcode.EOL, max(0.0, deadline - time.monotonic()))
            )
            if isinstance(line, codec.Halted):
                self._halted = True
                raise DeviceStoppedError(
                    DEVICE, "the firmware halted; press the arm's reset button, then reconnect."
                )
            if isinstance(line, codec.Echo) and line.text == token:
                seen = True
            elif isinstance(line, codec.Resend) and not seen:  # the marker itself was refused: again
                with self._send_lock:
                    self._line = line.line_number - 1
                seq = self._send(f"M118 E1 {token}")
            elif isinstance(line, codec.Ok) and seen:
                self._acked = seq
                self._resync_needed = False
                return

    def _transact(self, command: str, timeout_s: float | None = None) -> list[ReplyLine]:
        """One command to its ``ok``: resends refused lines, raises the firmware's complaints."""
        if self._halted:
            raise DeviceStoppedError(
                DEVICE, "the firmware is halted (M112); press the arm's reset button, then reconnect."
            )
        if self._resync_needed:
            self._resync()
        rejected: codec.LineRejected | None = None
        for _ in range(self.max_resends + 1):
            lines = self._collect(
                self._send(command), self.transport.timeout_s if timeout_s is None else timeout_s
            )
            resend = next((line for line in lines if isinstance(line, codec.Resend)), None)
            if resend is None:
                break
            rejected = next((line for line in lines if isinstance(line, codec.LineRejected)), None)
            LOG.warning("%s: line refused (%s), resending %r", DEVICE, rejected, command)
            with self._send_lock:
                self._line = resend.line_number - 1
        else:
            reason = rejected.reason.value if rejected is not None else "resend requested"
            raise DeviceReportedError(
                DEVICE,
                f"the firmware refused {command!r} {self.max_resends + 1} times ({reason}); check the cable.",
                reason,
            )
        for line in lines:
            if isinstance(line, codec.UnknownCommand):
                raise DeviceReportedError(
                    DEVICE, f"the firmware does not know {line.command!r}.", "Unknown command"
                )
            if isinstance(line, codec.HomeFirst):
                raise DeviceReportedError(
                    DEVICE,
                    f"the arm must be homed before {command!r}; call home() first.",
                    f"Home {line.axes} First",
                )
            if isinstance(line, codec.FirmwareError):
                raise DeviceReportedError(
                    DEVICE, f"the firmware reported an error for {command!r}.", line.text
                )
        return lines

    def _raise_if_stopped(self) -> None:
        if self._stop_requested.is_set():
            self._stop_requested.clear()
            raise DeviceStoppedError(DEVICE, "the arm was stopped (M410) before the operation finished.")

    # ------------------------------------------------------------------ queries
    def identify(self) -> ArmIdentity:
        with self._op_lock:
            lines = self._transact("M115")
        info = next((line for line in lines if isinstance(line, codec.FirmwareInfo)), None)
        if info is None:
            raise DeviceProtocolError(DEVICE, f"the M115 reply has no FIRMWARE_NAME line (got {lines!r}).")
        return ArmIdentity(info.get("MACHINE_TYPE"), info.get("UUID"), info.get("FIRMWARE_NAME"))

    def soft_endstops(self) -> codec.SoftEndstops:
        with self._op_lock:
            lines = self._transact("M211")
        found = next((line for line in lines if isinstance(line, codec.SoftEndstops)), None)
        if found is None:
            raise DeviceProtocolError(DEVICE, f"the M211 reply has no soft endstop report (got {lines!r}).")
        return found

    def position(self) -> ArmPosition:
        """Where the tool is now, mid-move included (``M114 R``: Marlin's real-time position)."""
        with self._op_lock:
            where = codec.require_position(self._transact("M114 R"))
        return ArmPosition(where.x_mm / 1000.0, where.y_mm / 1000.0, where.z_mm / 1000.0)

    # ------------------------------------------------------------------ motion
    def home(self, timeout_s: float = 120.0) -> ArmPosition:
        """``G28``: find the endstops (Marlin holds the ``ok`` until homing is done)."""
        with self._op_lock:
            self._raise_if_stopped()
            self._transact("G28", timeout_s)
            self._raise_if_stopped()
            self._transact("G90")
            where = codec.require_position(self._transact("M114"))
        self._target_mm = (where.x_mm, where.y_mm, where.z_mm)
        return ArmPosition(where.x_mm / 1000.0, where.y_mm / 1000.0, where.z_mm / 1000.0)

    def _projected_mm(self) -> tuple[float, float, float]:
        """Where the last move ends (``M114``), to size the wait for the next one."""
        where = codec.require_position(self._transact("M114"))
        return (where.x_mm, where.y_mm, where.z_mm)

    def check_target(self, x_m: float, y_m: float, z_m: float) -> None:
        """Refuse a target outside the work envelope or the firmware's soft endstops."""
        target = (x_m, y_m, z_m)
        if not all(math.isfinite(v) for v in target):
            raise DeviceOutOfRangeError(DEVICE, f"target {target} m must be finite numbers.")
        limits: list[tuple[str, tuple[float, float, float], tuple[float, float, float]]] = []
        if self.envelope is not None:
            limits.append(("the cell's work envelope", self.envelope.min_m, self.envelope.max_m))
        if self.firmware_limits is not None and self.firmware_limits.enabled:
            low = tuple(v / 1000.0 for v in self.firmware_limits.min_mm)
            high = tuple(v / 1000.0 for v in self.firmware_limits.max_mm)
            limits.append(("the firmware's soft endstops", low, high))  # type: ignore[arg-type]
        for what, low, high in limits:
            for axis, value, lo, hi in zip("xyz", target, low, high, strict=True):
                if not lo - 1e-9 <= value <= hi + 1e-9:
                    raise DeviceOutOfRangeError(
                        DEVICE,
                        f"target {axis}={value:.4f} m is outside {what} ({lo:.4f} to {hi:.4f} m); "
                        "choose a reachable pose.",
                    )

    def move_to(
        self,
        x_m: float,
        y_m: float,
        z_m: float,
        speed_m_per_s: float,
        wait: bool = True,
        timeout_s: float | None = None,
    ) -> None:
        """Straight-line move of the tool to (x, y, z); with ``wait``, return when it has arrived."""
        self.check_target(x_m, y_m, z_m)
        if not 0.0 < speed_m_per_s <= MAX_SPEED_M_PER_S:
            raise DeviceOutOfRangeError(
                DEVICE, f"speed {speed_m_per_s!r} m/s must be above 0 and at most {MAX_SPEED_M_PER_S} m/s."
            )
        target_mm = (x_m * 1000.0, y_m * 1000.0, z_m * 1000.0)
        with self._op_lock:
            self._raise_if_stopped()
            start = self._target_mm or self._projected_mm()
            self._transact(gcode.format_move(*target_mm, feed_mm_per_min=speed_m_per_s * 60000.0))
            self._target_mm = target_mm
            if self._stop_requested.is_set():  # the stop may have overtaken a move still queued
                self._send("M410")
            if wait:
                if timeout_s is None:
                    move = plan_move(
                        start, target_mm, speed_m_per_s * 1000.0, (1e9, 1e9, 1e9), ASSUMED_ACCEL_MM_S2
                    )
                    timeout_s = 2.0 * move.duration_s + self.transport.timeout_s
                self.wait_idle(timeout_s)

    def wait_idle(self, timeout_s: float | None = None) -> None:
        """``M400``: return when every queued move has finished (or raise if stopped)."""
        with self._op_lock:
            self._transact("M400", timeout_s)
            self._raise_if_stopped()

    def grip(self, settle_s: float = 0.2) -> None:
        """Suction on (``M106 P0 S255``: the vacuum pump on the fan output) once moves are done."""
        self._suction("M106 P0 S255", settle_s)

    def release(self, settle_s: float = 0.2) -> None:
        """Suction off (``M107 P0``) once moves are done."""
        self._suction("M107 P0", settle_s)

    def _suction(self, command: str, settle_s: float) -> None:
        with self._op_lock:
            self._raise_if_stopped()
            self._transact("M400")  # M106/M107 act at once, not in step with queued moves
            self._transact(command)
            if settle_s > 0.0:
                self._transact(f"G4 P{round(settle_s * 1000)}", settle_s + self.transport.timeout_s)
            self._raise_if_stopped()

    def clear_stop(self) -> None:
        """Forget a :meth:`stop` that no operation has consumed yet.

        A stop sent while nothing runs makes the next operation raise, so that a stop
        racing with the start of an operation is never lost. A caller that tracks its own
        stop state (a node checks its e-stop and cancel flags before starting) clears it
        at the start of a new operation, so an old stop does not fail the new one.
        """
        self._stop_requested.clear()

    def stop(self) -> None:
        """``M410`` quickstop, from any thread: Marlin stops the steppers the moment it reads it.

        The operation in progress (or the next one, if none is) raises
        :class:`DeviceStoppedError`. The position is kept; the arm stays homed.
        """
        self._stop_requested.set()
        self._send("M410")
        self._target_mm = None
        LOG.info("%s: quickstop sent", DEVICE)

    def emergency_stop(self) -> None:
        """``M112``: Marlin kills itself and answers nothing until its reset button is pressed."""
        self._stop_requested.set()
        self._send("M112")
        self._halted = True
        LOG.warning("%s: M112 sent, the firmware is halted until reset", DEVICE)
