"""Driver of the dosing heads on one addressed bus (protocol: docs/devices/dosing_head.md).

:class:`DosingBus` owns the serial port; :meth:`DosingBus.head` hands out a
:class:`DosingHead` per address (one head per powder). Exchanges are serialised by one
lock. A stop must not wait for that lock: :meth:`DosingHead.stop` writes its ``STP``
frame at once (the transport serialises writes, so a frame is never interleaved) and, if
another thread is in an exchange, leaves the ``STP A`` acknowledgement to that thread,
which skips replies that answer another command. :meth:`DosingBus.stop_all` broadcasts
``STP`` to address 00, which no head answers, for an emergency stop.

A damaged reply (CRC) or the head's own "damaged frame" error (E04) is retried; a reply
that never comes leaves the input marked stale, so a late answer is dropped before the
next exchange instead of being taken for the next reply.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Literal

from tablet_workcell.devices.dosing import codec
from tablet_workcell.devices.dosing.codec import HeadIdentity, HeadStatus
from tablet_workcell.devices.errors import (
    DeviceOutOfRangeError,
    DeviceProtocolError,
    DeviceReportedError,
    DeviceTimeoutError,
)
from tablet_workcell.devices.transport import SerialLike, SerialTransport, TrafficLog

LOG = logging.getLogger(__name__)


class DosingBus:
    """The serial bus of the dosing heads (RS-485 two-wire, or one head on RS-232)."""

    def __init__(
        self,
        url: str,
        device: str = "dosing",
        baudrate: int = 9600,
        timeout_s: float = 0.5,
        retries: int = 1,
        log: TrafficLog | None = None,
        opener: Callable[[], SerialLike] | None = None,
    ) -> None:
        self.device = device
        self.timeout_s = timeout_s
        self.retries = retries
        self.transport = SerialTransport(url, device, baudrate, timeout_s, log=log, opener=opener)
        self.lock = threading.RLock()  # one exchange at a time on the bus
        self._stale = False
        self._heads: dict[int, DosingHead] = {}

    # ------------------------------------------------------------------ lifecycle
    def open(self) -> None:
        self.transport.open()

    def close(self) -> None:
        self.transport.close()

    def reconnect(self) -> None:
        """Close and reopen the port (after an unplugged adapter or a restarted simulator)."""
        with self.lock:
            self.transport.close()
            self.transport.open()
            self._stale = True

    def __enter__(self) -> DosingBus:
        self.open()
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def head(self, address: int) -> DosingHead:
        if not 1 <= address <= codec.MAX_ADDRESS:
            raise DeviceOutOfRangeError(
                self.device, f"head address {address} must be 1 to {codec.MAX_ADDRESS}"
            )
        return self._heads.setdefault(address, DosingHead(self, address))

    def stop_all(self) -> None:
        """Broadcast ``STP`` (address 00): every head stops; none answers. Safe from any thread."""
        self.transport.write(codec.encode_request(codec.BROADCAST, "STP"))

    # ------------------------------------------------------------------ exchange
    def exchange(self, address: int, command: str, *args: str) -> codec.Reply:
        """One request, its reply (errors raised typed); damaged frames are resent ``retries`` times."""
        request = codec.encode_request(address, command, *args)
        with self.lock:
            attempt = 0
            while True:
                try:
                    reply = self._once(request, address, command)
                    return codec.raise_for_error(reply, self.device)
                except (DeviceProtocolError, DeviceReportedError) as error:
                    damaged = isinstance(error, DeviceProtocolError) or error.code == "E04"
                    if not damaged or attempt >= self.retries:
                        raise
                    LOG.warning("%s: %s; resending %s to head %02d", self.device, error, command, address)
                    attempt += 1

    def _once(self, request: bytes, address: int, command: str) -> codec.Reply:
        if self._stale:
            self.transport.discard_input()
            self._stale = False
        self.transport.write(request)
        deadline = time.monotonic() + self.timeout_s
        while True:
            remaining = deadline - time.monotonic()
            try:
                if remaining <= 0:
                    raise DeviceTimeoutError(self.device, "deadline passed")
                line = self.transport.read_until(codec.TERMINATOR, remaining)
            except DeviceTimeoutError:
                self._stale = True
                raise DeviceTimeoutError(
                    self.device,
                    f"head {address:02d} did not answer {command} within {self.timeout_s:.2f} s; check its "
                    "address, power, the bus wiring and the baud rate",
                ) from None
            reply = codec.parse_reply(line, self.device)
            if reply.address == address and reply.command == command:
                return reply
            LOG.debug(
                "%s: skipped %r while waiting for %s from head %02d", self.device, line, command, address
            )

    def write_stop(self, address: int) -> None:
        """Write ``STP`` to one head without waiting for the bus (its reply is skipped by the reader)."""
        self.transport.write(codec.encode_request(address, "STP"))


class DosingHead:
    """One dosing head (one powder) on a :class:`DosingBus`."""

    def __init__(self, bus: DosingBus, address: int) -> None:
        self.bus = bus
        self.address = address
        self.max_rate_mg_per_s: float | None = None  # known after identify()

    @property
    def device(self) -> str:
        return f"{self.bus.device}[{self.address:02d}]"

    def identify(self) -> HeadIdentity:
        """Model, serial, firmware, the powder it holds and its maximum rate."""
        identity = codec.parse_identity(self.bus.exchange(self.address, "IDN"), self.device)
        self.max_rate_mg_per_s = identity.max_rate_mg_per_s
        return identity

    def start(self, rate_mg_per_s: float) -> float:
        """Feed at ``rate_mg_per_s``; returns the accepted rate (out of range: refused before sending)."""
        limit = self.max_rate_mg_per_s
        if not rate_mg_per_s >= 0.0 or (limit is not None and rate_mg_per_s > limit):
            most = f"{limit:.2f}" if limit is not None else "the maximum"
            raise DeviceOutOfRangeError(
                self.device,
                f"rate {rate_mg_per_s!r} mg/s is outside 0 to {most} mg/s of this head; lower the rate",
            )
        return self._run(rate_mg_per_s, "MGS")

    def start_fraction(self, fraction: float) -> float:
        """Feed at ``fraction`` (0..1) of the head's maximum rate; returns the rate in mg/s."""
        if not 0.0 <= fraction <= 1.0:
            raise DeviceOutOfRangeError(
                self.device, f"fraction {fraction!r} of the maximum rate must be 0 to 1"
            )
        return self._run(100.0 * fraction, "PCT")

    def _run(self, rate: float, unit: Literal["MGS", "PCT"]) -> float:
        value = f"{rate:.2f}"
        return codec.parse_rate(self.bus.exchange(self.address, "RUN", value, unit), self.device)

    def stop(self) -> None:
        """Stop feeding now; safe from any thread, also while another thread is in an exchange."""
        if self.bus.lock.acquire(blocking=False):
            try:  # no exchange in flight: a full exchange, acknowledgement checked
                self.bus.exchange(self.address, "STP")
            finally:
                self.bus.lock.release()
        else:  # another thread is reading the bus: write now, it skips the acknowledgement
            self.bus.write_stop(self.address)

    def status(self) -> HeadStatus:
        """State (idle/feeding/error), commanded rate, hopper mass, total fed, error code."""
        return codec.parse_status(self.bus.exchange(self.address, "STA"), self.device)

    def clear_error(self) -> None:
        """Leave the error state (the cause, e.g. an empty hopper, must be gone)."""
        self.bus.exchange(self.address, "CLR")

    def raise_if_error(self, status: HeadStatus | None = None) -> HeadStatus:
        """The status, or the head's error as its typed exception (HopperEmptyError, FeederJamError...)."""
        status = status or self.status()
        if status.state == "error":
            raise codec.error_for_code(status.error_code, self.device, "head in error state")
        return status
