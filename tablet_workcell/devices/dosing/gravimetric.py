"""Closed-loop gravimetric dosing over the balance and dosing-head drivers, in real time.

The loop of :func:`tablet_workcell.twin.dosing.gravimetric_dose`, but over the wire: tare,
feed fast, then slow, stop early by the mass still to show on the balance, wait for a
stable reading, top up if short. What is still to show when the head stops has two
parts: powder falling (the commanded rate over the last fall time) and the balance's
lag (a first-order filter with time constant tau lags by exactly tau x its slope), so

    predicted final = reading + k x (tau x observed slope + mass commanded in the last fall time)

with ``k`` learned per powder from the overshoot each dose leaves (it absorbs flow
calibration, filter shape and command latency). Between readings the controller times
the stop inside the cycle: it sleeps until the prediction reaches the target, then stops.

Time: readings are stamped with the host clock times ``time_scale`` (instrument seconds
per wall second: 1 on hardware, the simulator's speed-up in simulation), so rates and
lags are in the instrument's seconds. The cancel event is checked every cycle (a few
milliseconds) and the head is told to stop at once; every error path stops the head.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import threading
import time
from collections.abc import Mapping

import numpy as np

from tablet_workcell.devices.balance.driver import MtSicsBalance
from tablet_workcell.devices.dosing.codec import FeederJamError, HopperEmptyError
from tablet_workcell.devices.dosing.dose import (
    DoseOutOfToleranceError,
    DoseProgress,
    DoseResult,
    DoseSettings,
    DoseTimeoutError,
    OvershootError,
    ProgressCallback,
    UnderdoseError,
)
from tablet_workcell.devices.dosing.driver import DosingHead
from tablet_workcell.devices.dosing.feed_model import FeedModel
from tablet_workcell.devices.errors import (
    DeviceBusyError,
    DeviceError,
    DeviceStoppedError,
)

LOG = logging.getLogger(__name__)
__all__ = [
    "DoseOutOfToleranceError",
    "DoseProgress",
    "DoseResult",
    "DoseSettings",
    "DoseTimeoutError",
    "FeederJamError",
    "GravimetricDoser",
    "HopperEmptyError",
    "OvershootError",
    "UnderdoseError",
]


class GravimetricDoser:
    """Doses powders from dosing heads onto one balance; learns each powder's stop correction."""

    def __init__(self, balance: MtSicsBalance, settings: DoseSettings | None = None) -> None:
        self.balance = balance
        self.settings = settings or DoseSettings()
        self.correction: dict[str, float] = {}  # powder -> learned k
        self._stop = threading.Event()
        self._active: DosingHead | None = None

    def stop(self) -> None:
        """Stop the dose in progress from any thread: the head is told at once, the dose raises."""
        self._stop.set()
        head = self._active
        if head is not None:
            with contextlib.suppress(DeviceError):
                head.bus.write_stop(head.address)
        self.balance.stop()

    def dose_recipe(
        self,
        plan: Mapping[str, tuple[DosingHead, float]],
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> tuple[DoseResult, ...]:
        """Dose each component ``{name: (head, target_kg)}`` in order, taring before each."""
        return tuple(self.dose(h, t, name, progress, cancel) for name, (h, t) in plan.items())

    def dose(
        self,
        head: DosingHead,
        target_kg: float,
        component: str = "",
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> DoseResult:
        """One gravimetric dose; raises HopperEmptyError, FeederJamError, DoseTimeoutError,
        OvershootError, DeviceStoppedError (cancelled) or another DeviceError."""
        self._stop.clear()
        run = _Run(self, head, target_kg, component, progress, cancel)
        self._active = head
        try:
            return run.execute()
        finally:
            self._active = None


class _Run:
    """The state of one dose (a fresh one per call, so a doser is reusable)."""

    def __init__(
        self,
        doser: GravimetricDoser,
        head: DosingHead,
        target_kg: float,
        component: str,
        progress: ProgressCallback | None,
        cancel: threading.Event | None,
    ) -> None:
        if not target_kg > 0.0:
            raise DeviceError(head.device, f"dose target {target_kg!r} kg must be positive.")
        self.doser, self.s, self.head, self.target = doser, doser.settings, head, target_kg
        self.component = component or f"head {head.address:02d}"
        self.progress, self.cancel = progress, cancel or threading.Event()
        self.tolerance = max(self.s.abs_tolerance_kg, self.s.rel_tolerance * target_kg)
        self.started = time.monotonic()
        self.readings: collections.deque[tuple[float, float, float]] = collections.deque(maxlen=5000)
        self.model = FeedModel(self.s.fall_time_s, self.s.tau_s)  # (time, reading, model's shown mass)
        self.phase, self.last_report, self.last_status = "taring", -1.0, 0.0
        self.feeding_since: float | None = None
        self.top_ups, self.first_pending = 0, float("nan")
        self.stop_reading: float | None = None  # reading, raw prediction and extra mass fed at the last stop
        self.stop_raw = self.stop_extra = 0.0

    # ------------------------------------------------------------------ time and cancel
    def now(self) -> float:
        """Instrument seconds since the dose began."""
        return (time.monotonic() - self.started) * self.s.time_scale

    def cancelled(self) -> bool:
        return self.cancel.is_set() or self.doser._stop.is_set()

    def sleep(self, instrument_s: float) -> None:
        """Wait (cancel-aware: wakes at once when the cancel event is set)."""
        if instrument_s > 0:
            self.cancel.wait(instrument_s / self.s.time_scale)
        if self.cancelled():
            self.abort()

    def abort(self) -> None:
        self.stop_head()
        raise DeviceStoppedError(
            self.head.device, f"dose of {self.component} cancelled after {self.reading() * 1e6:.2f} mg"
        )

    def stop_head(self) -> None:
        before = self.now()
        self.feeding_since = None
        try:
            self.head.stop()
        except DeviceError as error:
            LOG.warning("%s: stop not acknowledged: %s", self.component, error)
        self.model.command(0.5 * (before + self.now()), 0.0)

    def start_head(self, fraction: float) -> None:
        before = self.now()
        rate_mg = self.head.start_fraction(fraction)
        self.model.command(0.5 * (before + self.now()), rate_mg * 1e-6)  # the head took it in between
        if self.feeding_since is None:
            self.feeding_since = self.now()

    # ------------------------------------------------------------------ readings and prediction
    def reading(self) -> float:
        return self.readings[-1][1] if self.readings else 0.0

    def read(self) -> float:
        mass = self.doser.balance.read_immediate().mass_kg
        now = self.now()
        self.readings.append((now, mass, self.model.shown_kg(now)))
        return mass

    def rate_now(self) -> float:
        return self.model.rate_kg_per_s

    def residual_slope(self) -> float:
        """Least-squares slope of (reading - model) over the last window: the flow the model misses."""
        t_end = self.readings[-1][0]
        window = []
        for t, mass, shown in reversed(self.readings):
            if t < t_end - self.s.slope_window_s:
                break
            window.append((t - t_end, mass - shown))
        if len(window) < 3:
            return 0.0
        times, residuals = np.array(window).T
        return float(np.polyfit(times, residuals, 1)[0])

    def pending(self) -> float:
        """Mass still to show if the head stopped now (before the learned correction)."""
        return max(0.0, self.model.pending_kg(self.now()) + self.s.tau_s * self.residual_slope())

    # ------------------------------------------------------------------ the dose
    def execute(self) -> DoseResult:
        s, head, balance = self.s, self.head, self.doser.balance
        if head.max_rate_mg_per_s is None:
            head.identify()
        status = head.raise_if_error()
        if s.check_hopper and status.hopper_mass_kg < self.target:
            raise HopperEmptyError(
                head.device,
                f"hopper holds {status.hopper_mass_kg * 1e6:.2f} mg, not enough for "
                f"{self.target * 1e6:.2f} mg of {self.component}; refill the hopper",
                "E10",
            )
        self.report(force=True)
        balance.tare(cancel=self.cancel)
        self.read()
        max_rate = (head.max_rate_mg_per_s or 0.0) * 1e-6
        slow = max(s.min_fraction, min(s.slow_fraction, 0.1 * self.target / (max_rate * s.lag_s)))
        slow_mass = 2.0 * slow * max_rate * s.lag_s  # the slow phase runs ~2 lags to settle its slope
        k = self.doser.correction.get(self.component, 1.0)
        if self.target - slow_mass > s.fast_fraction * max_rate * s.lag_s:
            self.phase = "fast"
            self.feed(s.fast_fraction, self.target - slow_mass, k, stop=False)
        self.phase = "slow"
        self.first_pending = self.feed(slow, self.target, k, stop=True)
        dosed = self.settle()
        while self.target - dosed > self.tolerance and self.top_ups < s.max_top_ups:
            self.top_ups += 1
            self.phase = "top-up"
            fraction = max(s.min_fraction, min(slow, 0.5 * (self.target - dosed) / (max_rate * s.lag_s)))
            self.feed(fraction, self.target, self.doser.correction.get(self.component, k), stop=True)
            dosed = self.settle()
        result = DoseResult(
            self.component,
            self.target,
            dosed,
            dosed - self.target,
            self.tolerance,
            time.monotonic() - self.started,
            self.top_ups,
            k * self.first_pending,
        )
        LOG.info(
            "%s: dosed %.3f mg of %.3f mg (error %+.3f mg, %d top-ups, %.2f s)",
            self.component,
            dosed * 1e6,
            self.target * 1e6,
            result.error_kg * 1e6,
            self.top_ups,
            result.duration_s,
        )
        if result.error_kg > self.tolerance:
            raise OvershootError(
                head.device,
                f"{self.component}: {dosed * 1e6:.3f} mg dosed for {self.target * 1e6:.3f} mg, "
                f"{result.error_kg * 1e6:.3f} mg over the {self.tolerance * 1e6:.3f} mg tolerance; "
                "discard the dose or accept it",
                result,
            )
        if -result.error_kg > self.tolerance:
            raise UnderdoseError(
                head.device,
                f"{self.component}: still {-result.error_kg * 1e6:.3f} mg short of "
                f"{self.target * 1e6:.3f} mg after {self.top_ups} top-ups; top up by hand or discard it",
                result,
            )
        return result

    def feed(self, fraction: float, goal_kg: float, k: float, stop: bool) -> float:
        """Feed at ``fraction`` until the predicted final mass reaches ``goal_kg``; returns the
        raw pending prediction at that moment. ``stop=False`` leaves the head running (a phase switch)."""
        self.start_head(fraction)
        cycle = self.s.cycle_s * self.s.time_scale
        while True:
            self.sleep(0.0)
            reading = self.read()
            self.check_head()
            raw = self.pending()
            predicted = reading + k * raw
            self.report()
            rate = self.rate_now()
            time_left = (goal_kg - predicted) / rate if rate > 0 else 0.0
            if time_left <= 1.5 * cycle:
                self.sleep(max(0.0, time_left))
                if stop:
                    self.stop_head()
                    self.stop_reading, self.stop_raw = reading, raw
                    self.stop_extra = rate * max(0.0, time_left)
                return raw
            self.sleep(cycle)

    def check_head(self) -> None:
        now = self.now()
        if now > self.s.timeout_s:
            self.stop_head()
            raise DoseTimeoutError(
                self.head.device,
                f"{self.component}: {self.reading() * 1e6:.2f} mg of {self.target * 1e6:.2f} mg after "
                f"{self.s.timeout_s:.0f} s; check the powder flow",
            )
        if time.monotonic() - self.last_status >= self.s.status_period_s:
            self.last_status = time.monotonic()
            try:
                self.head.raise_if_error()
            except (HopperEmptyError, FeederJamError) as error:
                self.stop_head()
                raise type(error)(
                    self.head.device,
                    f"{self.component}: {error} after {self.reading() * 1e6:.2f} mg "
                    f"of {self.target * 1e6:.2f} mg",
                    error.code,
                ) from error
        since = self.feeding_since
        if since is not None and now - since > self.s.no_flow_s + self.s.lag_s:
            window = [m for t, m, _ in self.readings if t >= now - self.s.no_flow_s]
            expected = self.rate_now() * self.s.no_flow_s
            if window and max(window) - window[0] < 0.1 * expected:
                self.stop_head()
                raise FeederJamError(
                    self.head.device,
                    f"{self.component}: no powder reached the balance in {self.s.no_flow_s:.1f} s of feeding "
                    f"(bridging or a blocked outlet); clear the head",
                    "no-flow",
                )

    def settle(self) -> float:
        """Wait for the pending mass to land and the balance to settle; learn the stop correction."""
        self.phase = "settling"
        self.report(force=True)
        self.sleep(self.s.fall_time_s + 3.0 * self.s.tau_s)
        while True:
            if self.now() > self.s.timeout_s:
                raise DoseTimeoutError(self.head.device, f"{self.component}: the balance never became stable")
            try:
                dosed = self.doser.balance.stable_mass_kg(cancel=self.cancel)
                break
            except DeviceBusyError:  # S I: no stability within the balance's own timeout
                self.sleep(0.0)
            except DeviceStoppedError:
                self.abort()
        self.readings.append((self.now(), dosed, self.model.shown_kg(self.now())))
        stop_reading, raw = self.stop_reading, self.stop_raw
        if stop_reading is not None and raw > 0.2e-6:  # learn k from what landed after the stop
            observed_k = (dosed - stop_reading - self.stop_extra) / raw
            old = self.doser.correction.get(self.component, 1.0)
            new = float(np.clip((1 - self.s.learn_rate) * old + self.s.learn_rate * observed_k, 0.3, 3.0))
            self.doser.correction[self.component] = new
            LOG.debug("%s: stop correction %.3f -> %.3f", self.component, old, new)
        self.stop_reading = None
        return dosed

    def report(self, force: bool = False) -> None:
        if self.progress is None:
            return
        wall = time.monotonic() - self.started
        if force or wall - self.last_report >= 0.1:
            self.last_report = wall
            rate = self.rate_now() * 1e6
            self.progress(DoseProgress(self.component, self.phase, self.target, self.reading(), rate, wall))
