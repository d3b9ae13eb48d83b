"""Typed errors of instrument communication.

Every error names the instrument, carries the device's own code where it sent one, and
reads as a sentence a technician can act on. Drivers raise them; nodes turn them into
failed action results and diagnostics.
"""

from __future__ import annotations

from tablet_workcell.errors import WorkcellError


class DeviceError(WorkcellError):
    """Base of every instrument communication error."""

    def __init__(self, device: str, message: str, code: str = "") -> None:
        self.device = device
        self.code = code
        prefix = f"{device}: " if device else ""
        suffix = f" (device code {code})" if code else ""
        super().__init__(f"{prefix}{message}{suffix}")


class DeviceTimeoutError(DeviceError):
    """The instrument did not answer within the time allowed."""


class DeviceProtocolError(DeviceError):
    """A reply that does not parse: garbled, truncated, bad checksum or unexpected."""


class DeviceReportedError(DeviceError):
    """The instrument answered with one of its own error codes."""


class DeviceBusyError(DeviceReportedError):
    """The instrument cannot execute the command now (e.g. still moving, unstable)."""


class DeviceOutOfRangeError(DeviceError):
    """A request outside the instrument's range: refused before it is sent, or by the device."""


class DeviceDisconnectedError(DeviceError):
    """The port is gone or could not be opened (unplugged, simulator stopped, wrong path)."""


class DeviceStoppedError(DeviceError):
    """An operation was stopped on purpose (e-stop, cancel) before it finished."""
