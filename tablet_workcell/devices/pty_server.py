"""Serve a simulated instrument on a pseudo-terminal, as a real port would appear.

The driver opens the pty's path with ``serial.serial_for_url`` exactly as it opens
``/dev/ttyUSB0``: same termios layer, same byte stream, about 0.2 ms round trip. The
server holds the pty's slave end open too, so a driver that disconnects and reconnects
finds the port alive; ``disconnect_after_s`` (a fault) closes both ends and removes the
link, as an unplugged USB adapter does.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import os
import select
import threading
import time
import tty
from pathlib import Path

from tablet_workcell.devices.simulated_instrument import SimulatedInstrument

LOG = logging.getLogger(__name__)


class PtyServer:
    """Runs one simulator on a pty in a background thread."""

    def __init__(
        self,
        instrument: SimulatedInstrument,
        link: Path | None = None,
        time_scale: float = 1.0,
        tick_period_s: float = 0.002,
        wire_log: Path | None = None,
    ) -> None:
        self.instrument = instrument
        # Host bytes with their CLOCK_MONOTONIC time (comparable across processes on
        # one machine): the e-stop benchmark reads when each stop command arrived.
        self.wire_log = wire_log
        self.link = link
        self.time_scale = time_scale
        self.tick_period_s = tick_period_s
        self._master = -1
        self._slave = -1
        self.port = ""
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._started = 0.0
        self._outbox: list[tuple[float, int, bytes]] = []
        self._order = itertools.count()
        self.disconnected = threading.Event()

    def now_s(self) -> float:
        """Instrument time: seconds since start, scaled (a simulated clock may run faster)."""
        return (time.monotonic() - self._started) * self.time_scale

    def start(self) -> str:
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        tty.setraw(self._master)
        self.port = os.ttyname(self._slave)
        if self.link is not None:
            with contextlib.suppress(FileNotFoundError):
                self.link.unlink()
            self.link.symlink_to(self.port)
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._serve, name=f"pty-{self.instrument.name}", daemon=True)
        self._thread.start()
        LOG.info(
            "%s simulator on %s%s", self.instrument.name, self.port, f" ({self.link})" if self.link else ""
        )
        return str(self.link) if self.link is not None else self.port

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        self._close()

    def __enter__(self) -> PtyServer:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _close(self) -> None:
        if self._master < 0 and self._slave < 0:
            return  # already closed: our pts number may now be another simulator's
        # The link goes first, while our pty is still open: its /dev/pts number cannot be
        # handed to a new simulator yet, so a link that points at it is certainly ours.
        # (Closing first let a replacement reuse the number and lose its fresh link.)
        if self.link is not None and self.port:
            with contextlib.suppress(OSError):
                if os.readlink(self.link) == self.port:
                    self.link.unlink()
        for fd in (self._master, self._slave):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._master = self._slave = -1

    def _queue(self, data: bytes, now: float) -> None:
        if data:
            delay = self.instrument.faults.settings.reply_delay_s
            heapq.heappush(self._outbox, (now + delay, next(self._order), data))

    def _log_received(self, data: bytes) -> None:
        if self.wire_log is not None:
            with self.wire_log.open("a", encoding="ascii") as handle:
                handle.write(f"{time.monotonic():.6f} {self.instrument.name} {data.hex()}\n")

    def _serve(self) -> None:
        disconnect_after = self.instrument.faults.settings.disconnect_after_s
        try:
            while not self._stopping.is_set():
                wall = time.monotonic() - self._started
                if disconnect_after > 0.0 and wall >= disconnect_after:
                    LOG.warning("%s simulator: port disappears (injected fault)", self.instrument.name)
                    self.instrument.stop_all()
                    self._close()
                    self.disconnected.set()
                    return
                readable, _, _ = select.select([self._master], [], [], self.tick_period_s)
                if readable:
                    try:
                        data = os.read(self._master, 4096)
                    except OSError:
                        data = b""
                    if data:
                        self._log_received(data)
                        self._queue(self.instrument.receive(data, self.now_s()), wall)
                self._queue(self.instrument.tick(self.now_s()), wall)
                while self._outbox and self._outbox[0][0] <= time.monotonic() - self._started:
                    _, _, chunk = heapq.heappop(self._outbox)
                    os.write(self._master, chunk)
        except OSError as error:
            if not self._stopping.is_set():
                LOG.error("%s simulator stopped: %s", self.instrument.name, error)
