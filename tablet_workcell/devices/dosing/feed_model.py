"""What the balance will show of the powder a head was told to feed: the controller's model.

Powder commanded at rate r(t) leaves the head, falls for ``fall_s`` and lands; the balance
shows the landed mass through a first-order filter with time constant ``tau_s``. Between
command changes the rate is constant, so every quantity has a closed form:

* in flight at t: the commanded mass of the last ``fall_s``;
* landed but not yet shown ("unshown"): U' = l - U / tau with l(t) = r(t - fall_s), i.e.
  the landing rate filtered, which is tau x l in steady flow;
* shown: landed - unshown.

When the head stops, what is still to show is in flight + unshown. The model is exact in
transients (a fast-to-slow switch), where a slope fitted to the readings lags; the
controller corrects it with the readings (see gravimetric.py). Times are instrument
seconds, masses kg, rates kg/s. Pure arithmetic: no I/O, no clock.
"""

from __future__ import annotations

import math
from collections.abc import Iterator


class FeedModel:
    """Piecewise-constant commanded rates and the masses they imply at any later time."""

    def __init__(self, fall_s: float, tau_s: float) -> None:
        if fall_s < 0 or tau_s <= 0:
            raise ValueError(f"fall time {fall_s} s must be >= 0 and filter tau {tau_s} s > 0")
        self.fall_s = fall_s
        self.tau_s = tau_s
        self.commands: list[tuple[float, float]] = [(0.0, 0.0)]  # (from time, rate)

    def command(self, at_s: float, rate_kg_per_s: float) -> None:
        """The head runs at ``rate_kg_per_s`` from ``at_s`` on (times must not go back)."""
        at_s = max(at_s, self.commands[-1][0])
        self.commands.append((at_s, max(0.0, rate_kg_per_s)))

    @property
    def rate_kg_per_s(self) -> float:
        return self.commands[-1][1]

    def _segments(self, until_s: float, delay_s: float) -> Iterator[tuple[float, float, float]]:
        """(start, end, rate) of the commands delayed by ``delay_s``, clipped to ``until_s``."""
        for index, (start, rate) in enumerate(self.commands):
            end = self.commands[index + 1][0] if index + 1 < len(self.commands) else math.inf
            lo, hi = start + delay_s, min(end + delay_s, until_s)
            if rate > 0 and hi > lo:
                yield lo, hi, rate

    def sent_kg(self, at_s: float) -> float:
        """Mass the head was told to feed up to ``at_s``."""
        return sum(rate * (hi - lo) for lo, hi, rate in self._segments(at_s, 0.0))

    def landed_kg(self, at_s: float) -> float:
        return sum(rate * (hi - lo) for lo, hi, rate in self._segments(at_s, self.fall_s))

    def in_flight_kg(self, at_s: float) -> float:
        return self.sent_kg(at_s) - self.landed_kg(at_s)

    def unshown_kg(self, at_s: float) -> float:
        """Landed but not yet shown by the balance's filter."""
        tau = self.tau_s
        return sum(
            rate * tau * (math.exp(-(at_s - hi) / tau) - math.exp(-(at_s - lo) / tau))
            for lo, hi, rate in self._segments(at_s, self.fall_s)
        )

    def shown_kg(self, at_s: float) -> float:
        """What a noise-free balance shows at ``at_s`` (relative to the start)."""
        return self.landed_kg(at_s) - self.unshown_kg(at_s)

    def pending_kg(self, at_s: float) -> float:
        """Still to show if the head stopped at ``at_s``: in flight + unshown."""
        return self.sent_kg(at_s) - self.shown_kg(at_s)
