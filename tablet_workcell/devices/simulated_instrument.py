"""The instrument side of a protocol, as a simulator implements it.

A simulator is a state machine fed with the bytes the host writes and the current time;
it returns the bytes the instrument would send. ``tick`` lets it stream on its own
(force samples during a compaction, a dosing head reporting the end of a feed). The
:mod:`~tablet_workcell.devices.pty_server` puts one on a pseudo-terminal, where the real
driver talks to it through the operating system's serial layer.
"""

from __future__ import annotations

import abc

from tablet_workcell.devices.faults import FaultInjector, FaultSettings


class SimulatedInstrument(abc.ABC):
    """Base of the simulators: line framing, fault injection, time."""

    #: bytes that end a host command
    command_terminator: bytes = b"\r\n"
    name: str = "instrument"

    def __init__(self, faults: FaultSettings | None = None) -> None:
        self.faults = FaultInjector(faults or FaultSettings())
        self._buffer = bytearray()

    def receive(self, data: bytes, now_s: float) -> bytes:
        """Bytes from the host in, reply bytes out (after fault injection)."""
        self._buffer += data
        out = bytearray()
        while True:
            index = self._buffer.find(self.command_terminator)
            if index < 0:
                break
            line = bytes(self._buffer[:index])
            del self._buffer[: index + len(self.command_terminator)]
            reply = self.error_reply(line) if self.faults.device_error() else self.handle_line(line, now_s)
            distorted = self.faults.distort(reply)
            if distorted:
                out += distorted
        if len(self._buffer) > 4096:  # a host that never sends a terminator
            self._buffer.clear()
        return bytes(out)

    def tick(self, now_s: float) -> bytes:
        """Unsolicited output at ``now_s`` (streams, completions). Default: none."""
        return b""

    def stop_all(self) -> None:  # noqa: B027  (optional hook; most instruments have nothing to stop)
        """Called when the port goes away: stop any motion."""

    @abc.abstractmethod
    def handle_line(self, line: bytes, now_s: float) -> bytes:
        """One complete command (without terminator) in, the reply out."""

    @abc.abstractmethod
    def error_reply(self, line: bytes) -> bytes:
        """The instrument's own error reply, used for injected device errors."""
