"""One serial transport for every driver: any pyserial URL, deadlines, traffic log.

``serial.serial_for_url`` opens a device path (``/dev/ttyUSB0``), a pseudo-terminal of a
simulator, ``socket://host:port`` (a serial-to-Ethernet adapter) or ``loop://``; drivers
never care which. Every read has a deadline, so a silent instrument raises
:class:`DeviceTimeoutError` instead of hanging a node. OS-level failures (unplugged
adapter, simulator gone) become :class:`DeviceDisconnectedError`.

A :class:`TrafficLog` records every byte written and read with its time; saved as JSON
lines it documents a session for debugging, and :class:`ReplayPort` plays it back to a
driver in a test, checking that the driver writes exactly what it wrote then.
"""

from __future__ import annotations

import json
import logging
import termios
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import serial

from tablet_workcell.devices.errors import DeviceDisconnectedError, DeviceProtocolError, DeviceTimeoutError

LOG = logging.getLogger(__name__)
POLL_S = 0.02  # granularity of reads while waiting for a deadline


class SerialLike(Protocol):
    """The part of ``serial.Serial`` a transport uses (a ReplayPort implements it too)."""

    timeout: float | None

    @property
    def in_waiting(self) -> int: ...

    def read(self, size: int = 1) -> bytes: ...

    def write(self, data: bytes, /) -> int | None: ...

    def flush(self) -> None: ...

    def reset_input_buffer(self) -> None: ...

    def close(self) -> None: ...


Direction = Literal["tx", "rx"]


@dataclass
class TrafficLog:
    """Every write (``tx``) and read (``rx``) with its monotonic time, in order."""

    entries: list[tuple[float, Direction, bytes]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, direction: Direction, data: bytes) -> None:
        if data:
            with self._lock:
                self.entries.append((time.monotonic(), direction, bytes(data)))

    def save(self, path: Path) -> None:
        """JSON lines: ``{"t": seconds, "dir": "tx"|"rx", "hex": ..., "text": ...}``."""
        with self._lock:
            rows = list(self.entries)
        start = rows[0][0] if rows else 0.0
        with path.open("w", encoding="utf-8") as handle:
            for stamp, direction, data in rows:
                text = data.decode("ascii", errors="backslashreplace")
                handle.write(
                    json.dumps(
                        {"t": round(stamp - start, 6), "dir": direction, "hex": data.hex(), "text": text}
                    )
                    + "\n"
                )

    @classmethod
    def load(cls, path: Path) -> TrafficLog:
        log = cls()
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                log.entries.append((float(row["t"]), row["dir"], bytes.fromhex(row["hex"])))
        return log

    def text(self) -> str:
        """A readable transcript (for failure messages and debugging)."""
        with self._lock:
            rows = list(self.entries)
        merged: list[tuple[str, bytes]] = []  # consecutive reads of one reply shown as one
        for _, direction, data in rows:
            if merged and merged[-1][0] == direction:
                merged[-1] = (direction, merged[-1][1] + data)
            else:
                merged.append((direction, data))
        return "\n".join(f"{'>>' if d == 'tx' else '<<'} {data!r}" for d, data in merged)


class ReplayPort:
    """A serial-like port that answers from a recorded :class:`TrafficLog`.

    Each write must equal the next recorded ``tx`` (else :class:`DeviceProtocolError`,
    so a test sees that the driver's bytes changed); the ``rx`` that followed it in the
    recording then becomes readable.
    """

    def __init__(self, log: TrafficLog) -> None:
        self.timeout: float | None = 0.0
        self._script = list(log.entries)
        self._index = 0
        self._readable = bytearray()
        self._release_replies()

    def _release_replies(self) -> None:
        while self._index < len(self._script) and self._script[self._index][1] == "rx":
            self._readable += self._script[self._index][2]
            self._index += 1

    @property
    def in_waiting(self) -> int:
        return len(self._readable)

    def read(self, size: int = 1) -> bytes:
        data = bytes(self._readable[:size])
        del self._readable[:size]
        return data

    def write(self, data: bytes, /) -> int:
        expected = b""
        while (
            self._index < len(self._script)
            and self._script[self._index][1] == "tx"
            and len(expected) < len(data)
        ):
            expected += self._script[self._index][2]
            self._index += 1
        if expected != bytes(data):
            raise DeviceProtocolError(
                "replay", f"driver wrote {bytes(data)!r}, the recording has {expected!r}"
            )
        self._release_replies()
        return len(data)

    def flush(self) -> None:
        return None

    def reset_input_buffer(self) -> None:
        self._readable.clear()

    def close(self) -> None:
        return None


def open_serial(url: str, baudrate: int, **options: Any) -> SerialLike:
    """``serial.serial_for_url`` with a short poll timeout (the transport keeps the deadlines)."""
    port: SerialLike = serial.serial_for_url(
        url, baudrate=baudrate, timeout=POLL_S, write_timeout=1.0, **options
    )
    return port


class SerialTransport:
    """Bytes to and from one instrument, with deadlines and an optional traffic log.

    Thread safety: writes are serialised by a lock, so a stop command can be sent from
    another thread while an operation is reading a stream; reads belong to one thread.
    """

    def __init__(
        self,
        url: str,
        device: str,
        baudrate: int = 9600,
        timeout_s: float = 1.0,
        log: TrafficLog | None = None,
        opener: Callable[[], SerialLike] | None = None,
    ) -> None:
        self.url = url
        self.device = device
        self.baudrate = baudrate
        self.timeout_s = timeout_s
        self.log = log
        self._opener = opener or (lambda: open_serial(url, baudrate))
        self._port: SerialLike | None = None
        self._pending = bytearray()
        self._write_lock = threading.Lock()

    # ------------------------------------------------------------------ lifecycle
    def open(self) -> None:
        if self._port is not None:
            return
        try:
            self._port = self._opener()
        except (serial.SerialException, OSError, ValueError) as error:
            raise DeviceDisconnectedError(
                self.device,
                f"cannot open port {self.url!r}: {error}. Check the cable, the path and permissions.",
            ) from error
        self._pending.clear()
        LOG.debug("%s: opened %s", self.device, self.url)

    def close(self) -> None:
        port, self._port = self._port, None
        if port is not None:
            try:
                port.close()
            except (serial.SerialException, OSError):
                LOG.debug("%s: error while closing %s ignored", self.device, self.url)

    @property
    def is_open(self) -> bool:
        return self._port is not None

    def __enter__(self) -> SerialTransport:
        self.open()
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # ------------------------------------------------------------------ I/O
    def _require_port(self) -> SerialLike:
        if self._port is None:
            raise DeviceDisconnectedError(
                self.device, f"port {self.url!r} is not open; configure the device first."
            )
        return self._port

    def _lost(self, error: Exception) -> DeviceDisconnectedError:
        self.close()
        return DeviceDisconnectedError(
            self.device,
            f"port {self.url!r} was lost ({error}); the instrument was unplugged or switched off.",
        )

    def write(self, data: bytes) -> None:
        port = self._require_port()
        with self._write_lock:
            try:
                port.write(data)
                port.flush()
            except (serial.SerialException, OSError) as error:
                raise self._lost(error) from error
        if self.log is not None:
            self.log.add("tx", data)

    def _fill(self) -> bool:
        """Move what the port has into the pending buffer; False when nothing came in one poll."""
        port = self._require_port()
        try:
            waiting = port.in_waiting
            chunk = port.read(waiting or 1)
        except (serial.SerialException, OSError, TypeError) as error:
            # pyserial raises SerialException("device reports readiness to read but
            # returned no data") or OSError(EIO) when the other end of a pty closes.
            raise self._lost(error) from error
        if chunk:
            if self.log is not None:
                self.log.add("rx", chunk)
            self._pending += chunk
            return True
        if isinstance(port, ReplayPort):
            time.sleep(POLL_S)  # a replay has no blocking read to wait in
        return False

    def read_until(self, terminator: bytes, timeout_s: float | None = None) -> bytes:
        """Bytes up to and including ``terminator``; raises DeviceTimeoutError at the deadline."""
        deadline = time.monotonic() + (self.timeout_s if timeout_s is None else timeout_s)
        while True:
            index = self._pending.find(terminator)
            if index >= 0:
                end = index + len(terminator)
                frame = bytes(self._pending[:end])
                del self._pending[:end]
                return frame
            if time.monotonic() >= deadline:
                allowed = self.timeout_s if timeout_s is None else timeout_s
                partial = bytes(self._pending)
                detail = f" (received only {partial!r})" if partial else ""
                raise DeviceTimeoutError(
                    self.device,
                    f"no complete reply within {allowed:.2f} s{detail}; "
                    "check that the instrument is on, connected and set to the expected baud rate.",
                )
            self._fill()

    def read_available(self, wait_s: float = 0.0) -> bytes:
        """Whatever has arrived (waiting up to ``wait_s`` for the first byte)."""
        deadline = time.monotonic() + wait_s
        while not self._pending and time.monotonic() < deadline:
            self._fill()
        if not self._pending:
            self._fill()
        data = bytes(self._pending)
        self._pending.clear()
        return data

    def discard_input(self) -> None:
        """Drop stale bytes (a late reply to a timed-out command) before a new exchange."""
        self._pending.clear()
        port = self._require_port()
        try:
            port.reset_input_buffer()
        except (serial.SerialException, OSError, termios.error) as error:  # tcflush on a dead pty
            raise self._lost(error) from error

    def transact(self, request: bytes, terminator: bytes, timeout_s: float | None = None) -> bytes:
        """Write a request and read one terminated reply."""
        self.write(request)
        return self.read_until(terminator, timeout_s)
