"""Driver of an MT-SICS balance: masses in kilograms, typed errors, cancellable waits.

``S``, ``Z`` and ``T`` wait inside the balance for a stable reading (several seconds on a
draughty bench), so the driver waits for their replies in short slices, checking a cancel
event between slices: :meth:`MtSicsBalance.stop` (safe from any thread) or an event the
caller passes ends the wait within one slice by sending ``@``, which cancels the pending
command on the balance (its reply, the serial number as ``I4 A``, is consumed here).

Replies that are not for the command in flight (the ``I4 A`` of a stop sent from another
thread, a late reply after a timeout) are skipped, and stale input is dropped after a
timeout, so one lost reply never shifts every later answer by one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, TypeVar

from tablet_workcell.devices.balance import codec
from tablet_workcell.devices.errors import (
    DeviceProtocolError,
    DeviceReportedError,
    DeviceStoppedError,
    DeviceTimeoutError,
)
from tablet_workcell.devices.transport import SerialLike, SerialTransport, TrafficLog

LOG = logging.getLogger(__name__)
SLICE_S = 0.05  # longest a wait goes without looking at the cancel event
REPLY_IDS = ("S", "Z", "T", "I2", "I3", "I4")  # identifiers that start a reply
T = TypeVar("T")


@dataclass(frozen=True)
class BalanceIdentity:
    model: str
    serial: str
    firmware: str
    capacity_kg: float


@dataclass(frozen=True)
class BalanceReading:
    mass_kg: float
    stable: bool


class MtSicsBalance:
    """One MT-SICS balance on a serial port (device path, pty, ``socket://``)."""

    def __init__(
        self,
        url: str,
        device: str = "balance",
        baudrate: int = 9600,
        timeout_s: float = 1.0,
        stable_timeout_s: float = 30.0,
        retries: int = 1,
        log: TrafficLog | None = None,
        opener: Callable[[], SerialLike] | None = None,
    ) -> None:
        self.device = device
        self.timeout_s = timeout_s
        self.stable_timeout_s = stable_timeout_s  # longer than the balance's own stability timeout
        self.retries = retries
        self.transport = SerialTransport(url, device, baudrate, timeout_s, log=log, opener=opener)
        self._io = threading.RLock()  # one exchange at a time; stop() only writes
        self._stop = threading.Event()
        self._stale = False

    # ------------------------------------------------------------------ lifecycle
    def open(self) -> None:
        self.transport.open()

    def close(self) -> None:
        self.transport.close()

    def reconnect(self) -> None:
        """Close and reopen the port (after an unplugged adapter or a restarted simulator)."""
        with self._io:
            self.transport.close()
            self.transport.open()
            self._stale = True

    def __enter__(self) -> MtSicsBalance:
        self.open()
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # ------------------------------------------------------------------ operations
    def identify(self) -> BalanceIdentity:
        """Type and capacity (``I2``), firmware (``I3``), serial number (``I4``)."""
        data = codec.parse_balance_data(self._exchange("I2", "I2", self._text("I2")), self.device)
        firmware = self._exchange("I3", "I3", self._text("I3"))
        serial = self._exchange("I4", "I4", self._text("I4"))
        return BalanceIdentity(data.model, serial, firmware, data.capacity_kg)

    def reset(self) -> str:
        """``@``: cancel pending commands and clear the tare (no zeroing); returns the serial number."""
        return self._exchange("@", "I4", self._text("I4"))

    def read_immediate(self) -> BalanceReading:
        """``SI``: the current net mass at once, with the balance's stability flag."""
        reply = self._exchange("SI", "S", self._weight)
        return BalanceReading(reply.mass_kg, reply.stable)

    def stable_mass_kg(self, timeout_s: float | None = None, cancel: threading.Event | None = None) -> float:
        """``S``: the next stable net mass; DeviceBusyError (``S I``) if the balance gives up."""
        return self._exchange("S", "S", self._weight, timeout_s or self.stable_timeout_s, cancel).mass_kg

    def zero(self, timeout_s: float | None = None, cancel: threading.Event | None = None) -> None:
        """``Z``: set zero once the reading is stable (clears the tare)."""
        self._exchange("Z", "Z", self._zero, timeout_s or self.stable_timeout_s, cancel)

    def tare(self, timeout_s: float | None = None, cancel: threading.Event | None = None) -> float:
        """``T``: tare once stable; returns the tare weight in kg (the net reading is then zero)."""
        return self._exchange("T", "T", self._tare, timeout_s or self.stable_timeout_s, cancel).mass_kg

    def stop(self) -> None:
        """Cancel a waiting ``S``/``Z``/``T`` (from any thread): the wait ends with DeviceStoppedError."""
        self._stop.set()
        if self._io.acquire(blocking=False):  # nothing in flight: nothing to cancel
            try:
                self._stop.clear()
            finally:
                self._io.release()

    # ------------------------------------------------------------------ exchange
    def _weight(self, data: bytes) -> codec.WeightReply:
        return codec.parse_weight(data, self.device)

    def _tare(self, data: bytes) -> codec.WeightReply:
        return codec.parse_tare(data, self.device)

    def _zero(self, data: bytes) -> None:
        codec.parse_zero(data, self.device)

    def _text(self, identifier: Literal["I2", "I3", "I4"]) -> Callable[[bytes], str]:
        return lambda data: codec.parse_text(data, identifier, self.device)

    def _exchange(
        self,
        command: codec.Command,
        reply_id: str,
        parse: Callable[[bytes], T],
        timeout_s: float | None = None,
        cancel: threading.Event | None = None,
    ) -> T:
        """Send ``command``, parse its reply; a garbled reply or ``ET`` is retried ``retries`` times."""
        with self._io:
            self._stop.clear()
            attempt = 0
            while True:
                reply = self._once(command, reply_id, timeout_s or self.timeout_s, cancel)
                try:
                    return parse(reply)
                except (DeviceProtocolError, DeviceReportedError) as error:
                    retry = isinstance(error, DeviceProtocolError) or error.code == "ET"
                    if not retry or attempt >= self.retries:
                        raise
                    LOG.warning("%s: %s; resending %s", self.device, error, command)
                    attempt += 1

    def _once(
        self, command: codec.Command, reply_id: str, timeout_s: float, cancel: threading.Event | None
    ) -> bytes:
        if self._stale:
            self.transport.discard_input()
            self._stale = False
        self.transport.write(codec.encode_command(command))
        deadline = time.monotonic() + timeout_s
        while True:
            if self._stop.is_set() or (cancel is not None and cancel.is_set()):
                self._cancel_pending(command)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._stale = True
                raise DeviceTimeoutError(
                    self.device,
                    f"no reply to {command} within {timeout_s:.2f} s; check that the balance is on, "
                    "connected and set to MT-SICS at the expected baud rate",
                )
            try:
                line = self.transport.read_until(codec.TERMINATOR, min(SLICE_S, remaining))
            except DeviceTimeoutError:
                continue
            if self._belongs(line, reply_id):
                return line
            LOG.debug("%s: skipped %r while waiting for the reply to %s", self.device, line, command)

    @staticmethod
    def _belongs(line: bytes, reply_id: str) -> bool:
        """False for a well-formed reply to another command (a stop's ``I4 A``, a late reply)."""
        head = line.split(b" ", 1)[0].strip().decode("ascii", errors="replace")
        return head == reply_id or head not in REPLY_IDS

    def _cancel_pending(self, command: str) -> None:
        """Send ``@`` (cancels the command waiting in the balance), eat its reply, raise stopped."""
        self._stop.clear()
        self.transport.write(codec.encode_command("@"))
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            try:
                line = self.transport.read_until(codec.TERMINATOR, max(0.0, deadline - time.monotonic()))
            except DeviceTimeoutError:
                break
            if line.startswith(b"I4 A"):
                break
        else:
            self._stale = True
        raise DeviceStoppedError(self.device, f"{command} was cancelled before the balance answered")
