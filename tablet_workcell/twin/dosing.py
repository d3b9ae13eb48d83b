"""Powder dosing physics: a feeder with noisy flow and material in flight, and a balance.

* Feeder: commanded flow (fraction of the maximum rate) with a multiplicative
  fluctuation that is an Ornstein-Uhlenbeck process (powder flow pulsates with a
  correlation time of a fraction of a second); material leaves the feeder and lands on
  the balance a fall time later, so a stop command leaves mass "in flight". An empty
  hopper delivers nothing.
* Balance: the pan reading follows the true load with first-order settling, plus white
  noise, a slow drift, and quantisation to the readability (MT-SICS balances report
  stable readings when the recent spread is within a couple of digits).
* A reference gravimetric controller (fast feed, then slow, stop early by the predicted
  in-flight mass, wait for a stable reading) gives the ground-truth dosed masses of an
  experiment. The dispenser node closes the same loop over the real protocols.

Every process takes time steps of ``dt`` and draws from a Generator, so a seeded run is
reproducible.
"""

from __future__ import annotations

import collections
import math
from dataclasses import dataclass

import numpy as np

from tablet_workcell.errors import WorkcellError


class DosingError(WorkcellError):
    """A dose that cannot be delivered (empty hopper, timeout, impossible target)."""


@dataclass(frozen=True)
class FeederSettings:
    max_rate_kg_per_s: float = 20e-6  # 20 mg/s at full command
    flow_variation: float = 0.15  # coefficient of variation of the flow
    correlation_time_s: float = 0.2
    fall_time_s: float = 0.15
    hopper_mass_kg: float = 5e-3


@dataclass(frozen=True)
class BalanceSettings:
    readability_kg: float = 1e-8  # 0.01 mg
    noise_kg: float = 1.0e-8
    settling_time_s: float = 0.3
    drift_kg_per_s: float = 2e-11
    stable_window_s: float = 0.5
    stable_band_kg: float = 8e-8


class Feeder:
    """Stateful feeder process."""

    def __init__(self, settings: FeederSettings, rng: np.random.Generator, dt: float) -> None:
        self.settings = settings
        self._rng = rng
        self._dt = dt
        self._fluctuation = 0.0
        self._hopper = settings.hopper_mass_kg
        self._in_flight: collections.deque[float] = collections.deque(
            [0.0] * max(1, round(settings.fall_time_s / dt))
        )

    @property
    def hopper_mass_kg(self) -> float:
        return self._hopper

    @property
    def in_flight_kg(self) -> float:
        return sum(self._in_flight)

    def step(self, command: float) -> float:
        """Advance one step at ``command`` (0..1); returns the mass landing on the pan."""
        s = self.settings
        decay = math.exp(-self._dt / s.correlation_time_s)
        self._fluctuation = decay * self._fluctuation + math.sqrt(1 - decay**2) * s.flow_variation * float(
            self._rng.standard_normal()
        )
        rate = max(0.0, min(1.0, command)) * s.max_rate_kg_per_s * max(0.0, 1.0 + self._fluctuation)
        leaving = min(rate * self._dt, self._hopper)
        self._hopper -= leaving
        self._in_flight.append(leaving)
        return self._in_flight.popleft()


class Balance:
    """Stateful balance: settling, noise, drift, quantisation, stability."""

    def __init__(self, settings: BalanceSettings, rng: np.random.Generator, dt: float) -> None:
        self.settings = settings
        self._rng = rng
        self._dt = dt
        self._filtered = 0.0
        self._drift = 0.0
        self._tare = 0.0
        self._recent: collections.deque[float] = collections.deque(
            maxlen=max(2, round(settings.stable_window_s / dt))
        )

    def tare(self) -> None:
        self._tare = self._filtered + self._drift
        self._recent.clear()

    def step(self, true_load_kg: float) -> float:
        """Advance one step with the true load on the pan; returns the displayed net weight."""
        s = self.settings
        alpha = 1.0 - math.exp(-self._dt / s.settling_time_s)
        self._filtered += alpha * (true_load_kg - self._filtered)
        self._drift += s.drift_kg_per_s * self._dt
        raw = self._filtered + self._drift - self._tare + s.noise_kg * float(self._rng.standard_normal())
        reading = round(raw / s.readability_kg) * s.readability_kg
        self._recent.append(reading)
        return reading

    @property
    def stable(self) -> bool:
        full = len(self._recent) == self._recent.maxlen
        return full and (max(self._recent) - min(self._recent)) <= self.settings.stable_band_kg


@dataclass(frozen=True)
class DoseOutcome:
    target_kg: float
    dosed_kg: float  # true mass delivered
    reading_kg: float  # stable balance reading at the end
    duration_s: float


def gravimetric_dose(
    target_kg: float,
    feeder: Feeder,
    balance: Balance,
    dt: float,
    slow_command: float = 0.15,
    timeout_s: float = 60.0,
) -> DoseOutcome:
    """Reference controller: fast, then slow, stop early by the mass in flight and in the balance lag.

    The balance reading lags a steady flow by rate x settling time, and material already
    falling adds rate x fall time; the controller switches to slow feeding while the
    fast flow's lag still fits in the remaining mass, and stops when the slow flow's does.
    """
    if not target_kg > 0:
        raise DosingError(f"dose target {target_kg!r} kg must be positive.")
    if target_kg >= feeder.hopper_mass_kg:
        raise DosingError(
            f"hopper holds {feeder.hopper_mass_kg * 1e6:.2f} mg, not enough for a {target_kg * 1e6:.2f} mg "
            "dose; refill the hopper."
        )
    lag_s = feeder.settings.fall_time_s + balance.settings.settling_time_s
    rate = feeder.settings.max_rate_kg_per_s
    # Small doses (e.g. 1 mg of lubricant) need a slower final flow, or the lag alone overshoots.
    slow_command = min(slow_command, 0.1 * target_kg / (rate * lag_s))
    slow_window = 1.5 * rate * lag_s
    stop_window = slow_command * rate * lag_s
    balance.tare()
    delivered = 0.0
    elapsed = 0.0
    reading = 0.0
    feeding = True
    while elapsed < timeout_s:
        remaining = target_kg - reading
        if feeding and remaining <= stop_window:
            feeding = False
        command = (1.0 if remaining > slow_window else slow_command) if feeding else 0.0
        if feeding and feeder.hopper_mass_kg <= 0.0:
            raise DosingError(f"hopper empty after {delivered * 1e6:.2f} mg of {target_kg * 1e6:.2f} mg.")
        delivered += feeder.step(command)
        reading = balance.step(delivered)
        elapsed += dt
        if not feeding and feeder.in_flight_kg == 0.0 and balance.stable:
            return DoseOutcome(target_kg, delivered, reading, elapsed)
    raise DosingError(f"dose of {target_kg * 1e6:.2f} mg not finished within {timeout_s:.0f} s.")
