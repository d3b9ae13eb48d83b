"""Driver of the NE-1000 syringe pump over RS-232 basic mode.

Every command gets exactly one reply packet, so one lock around write-and-read keeps the
exchanges paired even when :meth:`SyringePumpDriver.stop` comes from another thread in
the middle of :meth:`~SyringePumpDriver.dispense_droplet` (it waits for at most the one
exchange in flight, a few milliseconds). Basic mode has no sequence numbers: after a
timeout the late reply may still arrive, so the next exchange first drains the line until
it is quiet. Alarms (a stalled motor, a power reset) are reported by the pump once in
place of a reply and become :class:`DeviceReportedError` with the alarm as the code.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from tablet_workcell.devices.errors import (
    DeviceError,
    DeviceOutOfRangeError,
    DeviceProtocolError,
    DeviceReportedError,
    DeviceStoppedError,
    DeviceTimeoutError,
)
from tablet_workcell.devices.syringe_pump import codec
from tablet_workcell.devices.syringe_pump.codec import (
    Direction,
    Dispensed,
    PumpAlarm,
    PumpStatus,
    Rate,
    RateUnit,
    Reply,
    Volume,
    VolumeUnit,
)
from tablet_workcell.devices.transport import SerialLike, SerialTransport, TrafficLog

LOG = logging.getLogger(__name__)
DEVICE = codec.DEVICE
QUIET_S = 0.05  # silence that ends the drain after a timeout


@dataclass(frozen=True)
class PumpIdentity:
    model: str  # "NE-1000"
    serial: str  # basic mode has no serial-number query: ""
    firmware: str  # "3.928"


@dataclass(frozen=True)
class PumpState:
    status: PumpStatus | None
    alarm: PumpAlarm | None  # reported (and thereby cleared) by this query


@dataclass(frozen=True)
class DropletProgress:
    dispensed_ul: float
    target_ul: float
    elapsed_s: float


def _rate_for(rate_ul_per_min: float) -> Rate:
    """The unit that writes the rate with the most significant digits (4 when >= 1)."""
    best: Rate | None = None
    for unit in (RateUnit.UL_PER_MIN, RateUnit.UL_PER_HOUR, RateUnit.ML_PER_MIN, RateUnit.ML_PER_HOUR):
        value = rate_ul_per_min / unit.ul_per_min
        if 1.0 <= value < 9999.5:
            return Rate(value, unit)
        if value < 9999.5 and (best is None or value > best.value):
            best = Rate(value, unit)
    if best is None or float(codec.format_number(best.value)) == 0.0:
        raise DeviceOutOfRangeError(
            DEVICE, f"rate {rate_ul_per_min:g} µL/min cannot be written in any of the pump's units."
        )
    return best


class SyringePumpDriver:
    """``with SyringePumpDriver("/dev/ttyUSB0") as pump: pump.dispense_droplet(5.0, 100.0, 10.0)``."""

    def __init__(
        self,
        url: str,
        address: int = 0,
        baudrate: int = 19200,
        timeout_s: float = 0.5,
        poll_period_s: float = 0.05,
        log: TrafficLog | None = None,
        opener: Callable[[], SerialLike] | None = None,
    ) -> None:
        if not 0 <= address <= codec.MAX_ADDRESS:
            raise DeviceOutOfRangeError(DEVICE, f"pump address {address} must be between 0 and 99.")
        self.address = address
        self.poll_period_s = poll_period_s
        self.transport = SerialTransport(url, DEVICE, baudrate, timeout_s, log, opener)
        self._lock = threading.Lock()
        self._stop_requested = threading.Event()
        self._resync = False

    # ------------------------------------------------------------------ lifecycle
    def open(self) -> None:
        """Open the port and check the pump answers; a reset alarm after power-up is expected."""
        self.transport.open()
        state = self.status()
        if state.alarm is not None:
            LOG.warning("%s: alarm on connect acknowledged: %s", DEVICE, state.alarm.sentence)

    def close(self) -> None:
        self.transport.close()

    def reconnect(self) -> None:
        self.close()
        self.open()

    def __enter__(self) -> SyringePumpDriver:
        self.open()
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # ------------------------------------------------------------------ exchange
    def _drain(self) -> None:
        """Wait for a late reply to a timed-out command and drop it (bounded by the timeout)."""
        deadline = time.monotonic() + self.transport.timeout_s
        while time.monotonic() < deadline and self.transport.read_available(QUIET_S):
            pass
        self._resync = False

    def _exchange(self, request: bytes) -> Reply:
        with self._lock:
            if self._resync:
                self._drain()
            self.transport.discard_input()
            try:
                frame = self.transport.transact(request, codec.ETX)
            except DeviceTimeoutError:
                self._resync = True
                raise
            reply = codec.parse_reply(frame)
        if reply.address != self.address:
            raise DeviceProtocolError(
                DEVICE, f"pump {reply.address} answered a command for pump {self.address}."
            )
        return reply

    def _command(self, request: bytes) -> Reply:
        """An exchange whose alarm reply is an error (the command was not executed)."""
        reply = self._exchange(request)
        if reply.alarm is not None:
            raise DeviceReportedError(
                DEVICE,
                f"{reply.alarm.sentence}; the command {request.strip()!r} was not executed, send it again",
                "A?" + reply.alarm.value,
            )
        return reply

    # ------------------------------------------------------------------ queries
    def identify(self) -> PumpIdentity:
        version = codec.parse_version(self._command(codec.encode_query("VER", self.address)).data)
        return PumpIdentity(f"NE-{version.model}", "", version.firmware)

    def status(self) -> PumpState:
        reply = self._exchange(codec.encode_query("", self.address))
        return PumpState(reply.status, reply.alarm)

    def diameter_mm(self) -> float:
        return codec.parse_diameter_mm(self._command(codec.encode_query("DIA", self.address)).data)

    def rate(self) -> Rate:
        return codec.parse_rate(self._command(codec.encode_query("RAT", self.address)).data)

    def volume(self) -> Volume:
        return codec.parse_volume(self._command(codec.encode_query("VOL", self.address)).data)

    def direction(self) -> Direction:
        return codec.parse_direction(self._command(codec.encode_query("DIR", self.address)).data)

    def dispensed(self) -> Dispensed:
        """Infused and withdrawn volumes since last cleared (``infused_ul``, ``withdrawn_ul``)."""
        return codec.parse_dispensed(self._command(codec.encode_query("DIS", self.address)).data)

    def dispensed_ul(self) -> float:
        """Net volume pushed out since last cleared (infused minus withdrawn), µL."""
        dispensed = self.dispensed()
        return dispensed.infused_ul - dispensed.withdrawn_ul

    # ------------------------------------------------------------------ settings
    def set_diameter_mm(self, diameter_mm: float) -> None:
        """Syringe inner diameter; it sets the rate limits and the default volume units."""
        self._command(codec.encode_set_diameter(diameter_mm, self.address))

    def set_rate(self, rate: Rate) -> None:
        self._command(codec.encode_set_rate(rate, self.address))

    def set_rate_ul_per_min(self, rate_ul_per_min: float) -> None:
        if rate_ul_per_min <= 0.0:
            raise DeviceOutOfRangeError(DEVICE, f"rate {rate_ul_per_min:g} µL/min must be above 0.")
        self.set_rate(_rate_for(rate_ul_per_min))

    def set_volume(self, volume: Volume) -> None:
        """Volume to dispense (0: pump until stopped), with its units set first."""
        self._command(codec.encode_set_volume_unit(volume.unit, self.address))
        self._command(codec.encode_set_volume(volume.value, self.address))

    def set_volume_ul(self, volume_ul: float) -> None:
        if volume_ul < 0.0:
            raise DeviceOutOfRangeError(DEVICE, f"volume {volume_ul:g} µL must be 0 or more.")
        unit = VolumeUnit.UL if volume_ul < 9999.5 else VolumeUnit.ML
        value = volume_ul / unit.ul
        if volume_ul > 0.0 and float(codec.format_number(value, "volume")) == 0.0:
            raise DeviceOutOfRangeError(
                DEVICE, f"volume {volume_ul:g} µL is below the pump's resolution of 0.001 µL."
            )
        self.set_volume(Volume(value, unit))

    def set_direction(self, direction: Direction) -> None:
        self._command(codec.encode_set_direction(direction, self.address))

    def clear_dispensed(self) -> None:
        self._command(codec.encode_clear_dispensed(Direction.INFUSE, self.address))
        self._command(codec.encode_clear_dispensed(Direction.WITHDRAW, self.address))

    # ------------------------------------------------------------------ motion
    def run(self) -> PumpStatus | None:
        return self._command(codec.encode_run(self.address)).status

    def stop(self) -> None:
        """Halt the plunger now; safe from any thread (an ongoing dispense raises DeviceStoppedError).

        ``STP`` pauses a running program; a second ``STP`` resets it, so a later ``RUN``
        does not finish the interrupted volume.
        """
        self._stop_requested.set()
        reply = self._command(codec.encode_stop(self.address))
        if reply.status is PumpStatus.PAUSED:
            self._command(codec.encode_stop(self.address))
        LOG.info("%s: stopped", DEVICE)

    def dispense_droplet(
        self,
        volume_ul: float,
        rate_ul_per_min: float,
        timeout_s: float,
        stop_event: threading.Event | None = None,
        progress: Callable[[DropletProgress], None] | None = None,
    ) -> float:
        """Infuse one droplet and wait until the pump finishes it; returns the µL infused.

        Programs direction, rate and volume, clears the counter, runs, and polls ``DIS``
        every ``poll_period_s``. ``stop_event`` (or :meth:`stop` from another thread)
        halts the plunger and raises :class:`DeviceStoppedError`; past ``timeout_s`` the
        pump is stopped and :class:`DeviceTimeoutError` raised; an alarm (stall) raises
        :class:`DeviceReportedError`.
        """
        if volume_ul <= 0.0:
            raise DeviceOutOfRangeError(DEVICE, f"droplet volume {volume_ul:g} µL must be above 0.")
        self._stop_requested.clear()
        self.set_direction(Direction.INFUSE)
        self.set_rate_ul_per_min(rate_ul_per_min)
        self.set_volume_ul(volume_ul)
        self.clear_dispensed()
        started = time.monotonic()
        self.run()
        try:
            return self._follow_droplet(volume_ul, timeout_s, started, stop_event, progress)
        except DeviceStoppedError:
            raise
        except BaseException:
            self._safe_stop()  # whatever went wrong (a progress callback, Ctrl-C), the plunger stops
            raise

    def _follow_droplet(
        self,
        volume_ul: float,
        timeout_s: float,
        started: float,
        stop_event: threading.Event | None,
        progress: Callable[[DropletProgress], None] | None,
    ) -> float:
        """Poll the running droplet until the pump stops at the volume (see dispense_droplet)."""
        while True:
            halted = self._wait_for_stop(stop_event)
            if halted:
                self.stop()  # again if stop() already ran: it may have come before RUN
                done = self.dispensed().infused_ul
                raise DeviceStoppedError(
                    DEVICE, f"droplet stopped on request after {done:.3f} of {volume_ul:.3f} µL."
                )
            reply = self._exchange(codec.encode_query("DIS", self.address))
            elapsed = time.monotonic() - started
            if reply.alarm is not None:
                raise DeviceReportedError(
                    DEVICE, f"{reply.alarm.sentence} while dispensing a droplet", "A?" + reply.alarm.value
                )
            done = codec.parse_dispensed(reply.data).infused_ul
            if progress is not None:
                progress(DropletProgress(done, volume_ul, elapsed))
            if reply.status is not None and not reply.status.moving:
                if self._stop_requested.is_set():
                    continue  # stop() came between the wait and the query
                if done < volume_ul * 0.999 - 0.001:
                    raise DeviceStoppedError(
                        DEVICE,
                        f"the pump stopped ({reply.status.name.lower()}) after {done:.3f} of "
                        f"{volume_ul:.3f} µL; was it stopped at its keypad?",
                    )
                LOG.info("%s: droplet of %.3f µL in %.2f s", DEVICE, done, elapsed)
                return done
            if elapsed > timeout_s:
                self._safe_stop()
                raise DeviceTimeoutError(
                    DEVICE,
                    f"droplet of {volume_ul:.3f} µL not finished within {timeout_s:.1f} s "
                    f"({done:.3f} µL so far); the pump was stopped. Check the rate and the line.",
                )

    def _wait_for_stop(self, stop_event: threading.Event | None) -> bool:
        """Sleep one poll period, waking at once on a stop request; True when stopped."""
        if stop_event is None:
            return self._stop_requested.wait(self.poll_period_s)
        deadline = time.monotonic() + self.poll_period_s
        while True:
            if stop_event.is_set() or self._stop_requested.is_set():
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0.0:
                return False
            self._stop_requested.wait(min(remaining, 0.005))

    def _safe_stop(self) -> None:
        try:
            self.stop()
        except DeviceError as error:
            LOG.error("%s: could not stop the pump: %s", DEVICE, error)
