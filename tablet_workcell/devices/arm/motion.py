"""Trapezoidal straight-line moves: how long a move takes and where the tool is meanwhile.

Each move accelerates from rest at ``accel`` to the feed rate (capped so no axis exceeds
its own maximum speed, as Marlin's planner does), cruises, and decelerates to rest; a
move too short to reach the feed rate is triangular. Marlin blends consecutive moves
through junction speeds; moving from rest to rest is the simpler, slightly slower bound.
The simulator moves its tool with it and the driver uses it to size its waits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

Vec3 = tuple[float, float, float]


@dataclass(frozen=True)
class Move:
    start_mm: Vec3
    end_mm: Vec3
    speed_mm_s: float  # cruise speed actually used
    accel_mm_s2: float

    @property
    def distance_mm(self) -> float:
        return math.dist(self.start_mm, self.end_mm)

    @property
    def _ramp(self) -> tuple[float, float, float]:
        """(peak speed, ramp time, cruise time)."""
        distance = self.distance_mm
        peak = min(self.speed_mm_s, math.sqrt(distance * self.accel_mm_s2))
        ramp_s = peak / self.accel_mm_s2
        cruise_s = (distance - peak * ramp_s) / peak if peak > 0.0 else 0.0
        return peak, ramp_s, max(0.0, cruise_s)

    @property
    def duration_s(self) -> float:
        if self.distance_mm == 0.0:
            return 0.0
        _, ramp_s, cruise_s = self._ramp
        return 2.0 * ramp_s + cruise_s

    def travelled_mm(self, t_s: float) -> float:
        """Distance along the line ``t_s`` after the start."""
        distance = self.distance_mm
        if distance == 0.0 or t_s <= 0.0:
            return 0.0
        peak, ramp_s, cruise_s = self._ramp
        a = self.accel_mm_s2
        if t_s < ramp_s:
            return 0.5 * a * t_s**2
        if t_s < ramp_s + cruise_s:
            return 0.5 * peak * ramp_s + peak * (t_s - ramp_s)
        left = 2.0 * ramp_s + cruise_s - t_s
        return distance if left <= 0.0 else distance - 0.5 * a * left**2

    def position_at(self, t_s: float) -> Vec3:
        distance = self.distance_mm
        if distance == 0.0:
            return self.end_mm
        f = min(1.0, self.travelled_mm(t_s) / distance)
        s, e = self.start_mm, self.end_mm
        return (s[0] + (e[0] - s[0]) * f, s[1] + (e[1] - s[1]) * f, s[2] + (e[2] - s[2]) * f)


def plan_move(
    start_mm: Vec3, end_mm: Vec3, feed_mm_s: float, max_axis_mm_s: Vec3, accel_mm_s2: float
) -> Move:
    """The move at ``feed_mm_s``, slowed so that no axis runs faster than its maximum."""
    distance = math.dist(start_mm, end_mm)
    speed = feed_mm_s
    if distance > 0.0:
        for a, b, limit in zip(start_mm, end_mm, max_axis_mm_s, strict=True):
            share = abs(b - a) / distance
            if share > 0.0:
                speed = min(speed, limit / share)
    return Move(start_mm, end_mm, max(speed, 1e-6), accel_mm_s2)
