"""Connection health of one instrument, as the node reports it in diagnostics.

Counts what an operator asks first when a station misbehaves: is it connected, how many
errors of which kind, what was the last one and when, how often did we reconnect.
Pure bookkeeping; the node turns it into diagnostic_msgs.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from tablet_workcell.devices.errors import DeviceDisconnectedError, DeviceError, DeviceTimeoutError

OK, WARN, ERROR, STALE = 0, 1, 2, 3  # diagnostic_msgs/DiagnosticStatus levels


@dataclass
class DeviceHealth:
    device: str
    port: str = ""
    identity: str = ""
    connected: bool = False
    commands: int = 0
    errors: int = 0
    timeouts: int = 0
    disconnects: int = 0
    reconnects: int = 0
    last_error: str = ""
    last_error_code: str = ""
    last_error_time: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def connected_to(self, port: str, identity: str) -> None:
        with self._lock:
            if not self.connected and self.port:
                self.reconnects += 1
            self.port, self.identity, self.connected = port, identity, True

    def disconnected(self) -> None:
        with self._lock:
            self.connected = False

    def succeeded(self) -> None:
        with self._lock:
            self.commands += 1

    def failed(self, error: DeviceError) -> None:
        with self._lock:
            self.commands += 1
            self.errors += 1
            if isinstance(error, DeviceTimeoutError):
                self.timeouts += 1
            if isinstance(error, DeviceDisconnectedError):
                self.disconnects += 1
                self.connected = False
            self.last_error, self.last_error_code = str(error), error.code
            self.last_error_time = time.time()

    def level(self, recent_s: float = 30.0) -> int:
        """ERROR when disconnected, WARN after a recent error, OK otherwise."""
        with self._lock:
            if not self.connected:
                return ERROR
            if self.last_error and time.time() - self.last_error_time < recent_s:
                return WARN
            return OK

    def summary(self) -> str:
        level = self.level()
        if level == ERROR:
            return f"not connected{': ' + self.last_error if self.last_error else ''}"
        if level == WARN:
            return f"recent error: {self.last_error}"
        return f"connected to {self.identity or 'instrument'} on {self.port}"

    def values(self) -> dict[str, str]:
        with self._lock:
            return {
                "connected": str(self.connected).lower(),
                "port": self.port,
                "identity": self.identity,
                "commands": str(self.commands),
                "errors": str(self.errors),
                "timeouts": str(self.timeouts),
                "disconnects": str(self.disconnects),
                "reconnects": str(self.reconnects),
                "last_error": self.last_error,
                "last_error_code": self.last_error_code,
            }
