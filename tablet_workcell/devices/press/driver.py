"""Driver of the microscale tablet press over its serial protocol (docs/devices/press.md).

Every command is one checksummed frame answered by one frame; a cycle (CMP, EJT, BRK) is
acknowledged, then streams samples and ends with exactly one END or ER line. The driver
reads the stream in slices of :data:`POLL_S`, so a stop event or :meth:`PressDriver.stop`
from another thread puts STP on the wire within a few tens of milliseconds; the press's
``ER 14 ABORTED`` then ends the stream and the call raises :class:`DeviceStoppedError`.

Values are refused before they are sent when they are outside the documented ranges
(and above the force limit once :meth:`PressDriver.identify` has read it); the press
checks them again and answers ``ER 03`` otherwise. When a cycle's stream goes wrong
(silence, garbage) the driver sends STP before raising, because the press may be moving.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from tablet_workcell.devices.errors import (
    DeviceBusyError,
    DeviceError,
    DeviceOutOfRangeError,
    DeviceProtocolError,
    DeviceStoppedError,
    DeviceTimeoutError,
)
from tablet_workcell.devices.press import codec, codes
from tablet_workcell.devices.press.codec import (
    Ack,
    BreakingSummary,
    CompactionSummary,
    DieState,
    EjectionSummary,
    ErrorReply,
    Identity,
    Message,
    PressStatus,
    Sample,
    Target,
)
from tablet_workcell.devices.press.results import (
    BreakingResult,
    CompactionResult,
    EjectionResult,
    StreamedRecord,
)
from tablet_workcell.devices.transport import SerialLike, SerialTransport, TrafficLog

LOG = logging.getLogger(__name__)
DEVICE = codec.DEVICE
BAUDRATE = 230400
POLL_S = 0.02  # stream read slice: the latency of a stop request
STOP_CONFIRM_S = 0.5  # how long to wait for ER 14 after STP
MAX_BAD_FRAMES = 20  # garbled stream lines tolerated (counted as missing) before giving up
MIN_PRESSURE_PA = 1e6
MIN_FORCE_N = 10.0
MAX_DWELL_S = 60.0
RATES_HZ = (50, 100, 250)
PLATEN_SPEED_RANGE_M_PER_S = (10e-6, 2000e-6)

SampleCallback = Callable[[Sample], None]
_S = TypeVar("_S", CompactionSummary, EjectionSummary, BreakingSummary)


@dataclass
class _Watch:
    """Book-keeping of one streamed cycle (monotonic seconds)."""

    started_at: float
    timeout_s: float | None
    last_line_at: float = 0.0
    stop_sent_at: float | None = None
    overran: bool = False  # the driver stopped the cycle because it took longer than timeout_s
    bad: int = 0  # garbled lines skipped

    def __post_init__(self) -> None:
        self.last_line_at = self.started_at

    @property
    def deadline(self) -> float:
        return math.inf if self.timeout_s is None else self.started_at + self.timeout_s


class PressDriver:
    """One press on one serial port. Operations are serialised; :meth:`stop` is not."""

    def __init__(
        self,
        url: str,
        *,
        baudrate: int = BAUDRATE,
        timeout_s: float = 1.0,
        stream_timeout_s: float = 2.0,
        log: TrafficLog | None = None,
        opener: Callable[[], SerialLike] | None = None,
    ) -> None:
        self.transport = SerialTransport(url, DEVICE, baudrate, timeout_s, log, opener)
        self.timeout_s = timeout_s
        self.stream_timeout_s = stream_timeout_s  # longest silence inside a cycle's stream
        self.identity: Identity | None = None
        self._op_lock = threading.Lock()
        self._stop_requested = threading.Event()

    # ------------------------------------------------------------ lifecycle
    def open(self) -> None:
        self.transport.open()

    def close(self) -> None:
        self.transport.close()

    def reconnect(self) -> None:
        """Close and reopen the port (after the adapter was unplugged, or a stale stream)."""
        self.transport.close()
        self.transport.open()
        self.transport.discard_input()

    def __enter__(self) -> PressDriver:
        self.open()
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        if not self._op_lock.acquire(timeout=self.timeout_s):
            raise DeviceBusyError(
                DEVICE, "another press operation is still running in this driver; wait for it or call stop()"
            )
        try:
            yield
        finally:
            self._op_lock.release()

    # ------------------------------------------------------------ simple commands
    def _read(self, timeout_s: float) -> Message:
        return codec.decode(self.transport.read_until(codec.TERMINATOR, max(timeout_s, 0.0)))

    def _exchange(self, request: bytes, command: str) -> Ack:
        """Write one command, return its acknowledgement (caller holds the lock).

        Acknowledgements of other commands and stream lines are leftovers (a reply that
        came after its command timed out, the ``OK STP`` of a concurrent :meth:`stop`)
        and are skipped; an ``ER`` line is this command's refusal.
        """
        self.transport.discard_input()
        self.transport.write(request)
        deadline = time.monotonic() + self.timeout_s
        while True:
            message = self._read(deadline - time.monotonic())
            if isinstance(message, ErrorReply) or (isinstance(message, Ack) and message.command == command):
                return codec.expect_ack(message, command)
            LOG.debug("press: stale %r skipped while waiting for %s", message, command)

    def _query(self, request: bytes, command: str) -> Ack:
        with self._exclusive():
            return self._exchange(request, command)

    def identify(self) -> Identity:
        """Model, serial number, firmware, force limit and punch diameter (kept for range checks)."""
        self.identity = codec.parse_identity(self._query(codec.encode_identify(), "IDN"))
        LOG.info("press: %s", self.identity)
        return self.identity

    def status(self) -> PressStatus:
        return codec.parse_status(self._query(codec.encode_status(), "STA"))

    def die_state(self) -> DieState:
        return codec.parse_die(self._query(codec.encode_die_query(), "DIE"))

    def target(self) -> Target:
        return codec.parse_target(self._query(codec.encode_target_query(), "TGT"))

    def set_target_pressure_pa(self, pressure_pa: float) -> Target:
        """Compact to this upper-punch pressure (sent in MPa, 0.01 MPa resolution)."""
        high = self.identity.max_pressure_pa if self.identity else math.inf
        _check_range("target pressure", pressure_pa, MIN_PRESSURE_PA, high, 1e-6, "MPa")
        return codec.parse_target(self._query(codec.encode_target_pressure(pressure_pa), "TGT"))

    def set_target_force_n(self, force_n: float) -> Target:
        """Compact to this upper-punch force (0.1 N resolution)."""
        high = self.identity.max_force_n if self.identity else math.inf
        _check_range("target force", force_n, MIN_FORCE_N, high, 1.0, "N")
        return codec.parse_target(self._query(codec.encode_target_force(force_n), "TGT"))

    def set_dwell_s(self, dwell_s: float) -> float:
        _check_range("dwell time", dwell_s, 0.0, MAX_DWELL_S, 1.0, "s")
        return codec.parse_dwell(self._query(codec.encode_dwell(dwell_s), "DWL"))

    def set_sample_rate_hz(self, rate_hz: int) -> int:
        """Streaming rate of cycles: 50, 100 or 250 Hz."""
        if rate_hz not in RATES_HZ:
            raise DeviceOutOfRangeError(
                DEVICE, f"sample rate {rate_hz!r} Hz is not one the press streams at; use 50, 100 or 250 Hz"
            )
        return codec.parse_rate(self._query(codec.encode_rate(rate_hz), "RATE"))

    def clear_error(self) -> None:
        """Clear a latched fault (the press refuses while the guard door is open: ER 10)."""
        self._query(codec.encode_clear(), "CLR")

    def stop(self) -> None:
        """Stop any motion now. Safe from any thread, also while a cycle is streaming."""
        if self._op_lock.acquire(blocking=False):
            try:
                self._exchange(codec.encode_stop(), "STP")
            finally:
                self._op_lock.release()
            return
        self._stop_requested.set()  # the running operation reads the press's answer
        self.transport.write(codec.encode_stop())
        LOG.info("press: STP sent during a running operation")

    # ------------------------------------------------------------ cycles
    def compact(
        self,
        on_sample: SampleCallback | None = None,
        stop_event: threading.Event | None = None,
        timeout_s: float | None = None,
    ) -> CompactionResult:
        """Run one compaction cycle (load, dwell, unload, eject) to the target set before.

        ``on_sample`` gets every sample as it arrives (for live publishing; an exception in
        it stops the press and propagates). Setting ``stop_event`` aborts the cycle.
        """
        ack, samples, summary, missing = self._cycle(
            codec.encode_compact(), "CMP", CompactionSummary, on_sample, stop_event, timeout_s
        )
        fields = ack.fields if len(ack.fields) == 3 and all(codec.is_number(f) for f in ack.fields) else None
        if fields is None:
            raise DeviceProtocolError(DEVICE, f"CMP acknowledgement {ack!r} lacks target, dwell and rate")
        return CompactionResult(
            StreamedRecord.from_samples(samples),
            summary,
            target_pressure_pa=float(fields[0]) * 1e6,
            dwell_s=float(fields[1]),
            sample_rate_hz=int(float(fields[2])),
            missing_samples=missing,
        )

    def eject(
        self,
        on_sample: SampleCallback | None = None,
        stop_event: threading.Event | None = None,
        timeout_s: float | None = None,
    ) -> EjectionResult:
        """Eject a compact left in the die (after STP or a fault) to the take-off position."""
        _, samples, summary, missing = self._cycle(
            codec.encode_eject(), "EJT", EjectionSummary, on_sample, stop_event, timeout_s
        )
        return EjectionResult(StreamedRecord.from_samples(samples), summary, missing)

    def breaking_test(
        self,
        platen_speed_m_per_s: float | None = None,
        on_sample: SampleCallback | None = None,
        stop_event: threading.Event | None = None,
        timeout_s: float | None = None,
    ) -> BreakingResult:
        """Diametral compression of the tablet at the take-off position until it breaks."""
        if platen_speed_m_per_s is not None:
            low, high = PLATEN_SPEED_RANGE_M_PER_S
            _check_range("platen speed", platen_speed_m_per_s, low, high, 1e6, "µm/s")
        ack, samples, summary, missing = self._cycle(
            codec.encode_breaking_test(platen_speed_m_per_s),
            "BRK",
            BreakingSummary,
            on_sample,
            stop_event,
            timeout_s,
        )
        if len(ack.fields) != 1 or not codec.is_number(ack.fields[0]):
            raise DeviceProtocolError(DEVICE, f"BRK acknowledgement {ack!r} lacks the platen speed")
        speed = float(ack.fields[0]) * 1e-6
        return BreakingResult(StreamedRecord.from_samples(samples), summary, speed, missing)

    def _cycle(
        self,
        request: bytes,
        command: str,
        summary_type: type[_S],
        on_sample: SampleCallback | None,
        stop_event: threading.Event | None,
        timeout_s: float | None,
    ) -> tuple[Ack, list[Sample], _S, int]:
        with self._exclusive():
            self._stop_requested.clear()
            try:
                ack = self._exchange(request, command)
            except (DeviceTimeoutError, DeviceProtocolError):
                self._stop_quietly()  # the press may have started without us hearing it
                raise
            try:
                samples, summary, bad = self._stream(summary_type, on_sample, stop_event, timeout_s)
            except DeviceError as error:
                if not error.code:  # not the press's own ending (ER line): it may still move
                    self._stop_quietly()
                raise
            except BaseException:  # e.g. the on_sample callback failed
                self._stop_quietly()
                raise
        missing = max(summary.sample_count - len(samples), 0)
        if missing or bad:
            LOG.warning("press: %s stream lost %d of %d samples", command, missing, summary.sample_count)
        return ack, samples, summary, missing

    def _stream(
        self,
        summary_type: type[_S],
        on_sample: SampleCallback | None,
        stop_event: threading.Event | None,
        timeout_s: float | None,
    ) -> tuple[list[Sample], _S, int]:
        samples: list[Sample] = []
        watch = _Watch(time.monotonic(), timeout_s)
        while True:
            self._watch_stop(watch, stop_event)
            try:
                raw = self.transport.read_until(codec.TERMINATOR, POLL_S)
            except DeviceTimeoutError:
                continue
            watch.last_line_at = time.monotonic()
            try:
                message = codec.decode(raw)
            except DeviceProtocolError as error:
                watch.bad += 1
                LOG.warning("press: bad stream line skipped: %s", error)
                if watch.bad > MAX_BAD_FRAMES:
                    raise DeviceProtocolError(
                        DEVICE, f"{watch.bad} garbled lines in one cycle: {error}"
                    ) from error
                continue
            if isinstance(message, Sample):
                samples.append(message)
                if on_sample is not None:
                    on_sample(message)
            elif isinstance(message, summary_type):
                return samples, message, watch.bad
            elif isinstance(message, ErrorReply):
                if watch.overran and message.code == codes.ABORTED:
                    raise DeviceTimeoutError(
                        DEVICE, f"the cycle took longer than {timeout_s} s, so the driver stopped it", "14"
                    )
                raise message.to_exception(DEVICE)
            elif not (isinstance(message, Ack) and message.command == "STP"):
                raise DeviceProtocolError(DEVICE, f"unexpected {message!r} inside a cycle's stream")

    def _watch_stop(self, watch: _Watch, stop_event: threading.Event | None) -> None:
        """Send STP when asked or overdue; raise when the press stays silent or unconfirmed."""
        now = time.monotonic()
        if watch.stop_sent_at is None:
            overran = now > watch.deadline
            if overran or self._stop_requested.is_set() or (stop_event is not None and stop_event.is_set()):
                # stop() wrote STP too, but maybe before our command: a second STP is harmless
                self.transport.write(codec.encode_stop())
                watch.stop_sent_at, watch.overran = now, overran
        elif now - watch.stop_sent_at > STOP_CONFIRM_S:
            raise DeviceStoppedError(DEVICE, "the cycle was stopped; the press did not confirm (ER 14)")
        if now - watch.last_line_at > self.stream_timeout_s:
            raise DeviceTimeoutError(
                DEVICE,
                f"the cycle's stream fell silent for {self.stream_timeout_s:.1f} s; check the cable, "
                "then STA and DIE before the next cycle",
            )

    def _stop_quietly(self) -> None:
        """Best-effort STP after a failure inside a cycle, then drain the stream's end.

        Draining leaves the line clean for the next command; a failure here is only logged
        (the caller is already raising the error that matters).
        """
        try:
            self.transport.write(codec.encode_stop())
            deadline = time.monotonic() + STOP_CONFIRM_S
            while time.monotonic() < deadline:
                try:
                    message = self._read(POLL_S)
                except (DeviceTimeoutError, DeviceProtocolError):
                    continue
                if isinstance(message, ErrorReply | CompactionSummary | EjectionSummary | BreakingSummary):
                    return
        except DeviceError as error:
            LOG.warning("press: could not send STP after a failed cycle: %s", error)


def _check_range(what: str, value: float, low: float, high: float, scale: float, unit: str) -> None:
    """Refuse a value before it is sent; the message names it, the limits and the fix."""
    if not (isinstance(value, int | float) and math.isfinite(value)):
        raise DeviceOutOfRangeError(DEVICE, f"{what} must be a finite number, got {value!r}")
    if not low <= value <= high:
        shown_high = "no upper limit known" if math.isinf(high) else f"{high * scale:.6g} {unit}"
        raise DeviceOutOfRangeError(
            DEVICE,
            f"{what} {value * scale:.6g} {unit} is outside the press's range "
            f"{low * scale:.6g} {unit} .. {shown_high}; choose a value inside it",
        )
