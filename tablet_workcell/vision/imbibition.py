"""Imbibition kinetics of a porous, swelling tablet under a sessile drop (the fit models' physics).

Front depth L(t) of the liquid in the tablet obeys dL/dt = C / (2 L) + v_s: the first
term is Washburn capillary imbibition (L^2 = C t in a rigid tablet, C = gamma r cos(theta)
/ (2 eta) in m^2/s), the second a swelling-driven uptake velocity v_s (m/s) as swelling
opens the structure (Markl and Zeitler, Pharm Res 34:890, 2017). The closed form
t(L) = L / v_s - C / (2 v_s^2) ln(1 + 2 v_s L / C) is inverted by Newton's method: t(L)
is convex and increasing, so Newton from the upper bound sqrt(C t) + v_s t converges
monotonically, exactly and fast, for every sample at once.

Geometry assumption (the same as the sessile-drop literature's cylindrical wetted
region): the liquid fills the pores (porosity eps) of a cylinder under the drop whose
radius is the drop's pinned base radius a plus half the depth (lateral spreading),
capped by the tablet radius, and whose depth is L capped by the tablet thickness h0:

    absorbed(t) = eps * pi * min(a + 0.5 L, R)^2 * min(L, h0)

Capillarity dominates while C / (2 L) >= v_s, swelling after: the boundary depth is
L* = C / (2 v_s).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

F64 = NDArray[np.float64]
LATERAL_SPREAD = 0.5
NEWTON_ITERATIONS = 60


@dataclass(frozen=True)
class WettingGeometry:
    """Tablet and drop geometry that turns a front depth into an absorbed volume (SI)."""

    porosity: float
    base_radius_m: float
    tablet_thickness_m: float
    tablet_radius_m: float = math.inf  # lateral cap; inf when the tablet diameter is unknown

    def absorbed_volume_m3(self, depth_m: F64) -> F64:
        radius = np.minimum(self.base_radius_m + LATERAL_SPREAD * depth_m, self.tablet_radius_m)
        return np.asarray(
            self.porosity * math.pi * radius**2 * np.minimum(depth_m, self.tablet_thickness_m),
            dtype=np.float64,
        )


def time_at_depth(depth_m: F64, c_m2_per_s: float, v_s_m_per_s: float) -> F64:
    """t(L) of dL/dt = C/(2L) + v_s, numerically stable for 2 v_s L / C from 0 to large."""
    depth = np.asarray(depth_m, dtype=np.float64)
    if v_s_m_per_s <= 0.0:
        return np.asarray(depth**2 / c_m2_per_s if c_m2_per_s > 0 else np.full_like(depth, np.inf))
    if c_m2_per_s <= 0.0:
        return depth / v_s_m_per_s
    x = 2.0 * v_s_m_per_s * depth / c_m2_per_s
    small = x < 1e-3
    result = np.empty_like(x)
    # t = C / (2 v_s^2) (x - ln(1 + x)); for small x its series times C / (2 v_s^2) is
    # L^2 / C (1 - 2x/3 + x^2/2), which never divides by v_s^2 (a v_s of 1e-170 m/s, which a
    # fit may try, would overflow it and turn inf * 0 into NaN).
    xs = x[small]
    result[small] = depth[small] ** 2 / c_m2_per_s * (1.0 - 2.0 * xs / 3.0 + xs**2 / 2.0)
    xl = x[~small]
    if xl.size:  # here 2 v_s L > 1e-3 C, so v_s^2 is far from underflow
        result[~small] = c_m2_per_s / (2.0 * v_s_m_per_s**2) * (xl - np.log1p(xl))
    return result


def front_depth_m(time_s: F64, c_m2_per_s: float, v_s_m_per_s: float) -> F64:
    """L(t) for each time (0 at t <= 0)."""
    t = np.maximum(np.asarray(time_s, dtype=np.float64), 0.0)
    c = max(c_m2_per_s, 0.0)
    v = max(v_s_m_per_s, 0.0)
    if v == 0.0:
        return np.sqrt(c * t)
    if c == 0.0:
        return v * t
    depth = np.sqrt(c * t) + v * t  # upper bound: Newton descends monotonically
    for _ in range(NEWTON_ITERATIONS):
        safe = np.maximum(depth, 1e-300)
        step = (time_at_depth(safe, c, v) - t) * (c + 2.0 * v * safe) / (2.0 * safe)
        depth = np.where(depth > 0.0, np.maximum(depth - step, 0.0), 0.0)
        if np.all(np.abs(step) <= 1e-12 * np.maximum(depth, 1e-12)):
            break
    return np.asarray(depth, dtype=np.float64)


def boundary_time_s(c_m2_per_s: float, v_s_m_per_s: float) -> float:
    """Time at which the swelling term overtakes capillarity (C/(2L) = v_s); inf without swelling."""
    if v_s_m_per_s <= 0.0:
        return math.inf
    if c_m2_per_s <= 0.0:
        return 0.0
    depth = c_m2_per_s / (2.0 * v_s_m_per_s)
    return float(time_at_depth(np.array([depth]), c_m2_per_s, v_s_m_per_s)[0])


def droplet_volume_m3(time_s: F64, v0_m3: float, c: float, v_s: float, geometry: WettingGeometry) -> F64:
    """Droplet volume left on the tablet: V0 - absorbed(L(t)), floored at zero."""
    absorbed = geometry.absorbed_volume_m3(front_depth_m(time_s, c, v_s))
    return np.asarray(np.maximum(v0_m3 - absorbed, 0.0), dtype=np.float64)


def depth_for_absorbed_volume_m(absorbed_m3: F64, geometry: WettingGeometry) -> F64:
    """Front depth L whose wetted region holds ``absorbed_m3`` (inverse of absorbed_volume_m3).

    Bisection on [0, L_max] (the absorbed volume grows monotonically with L); NaN stays NaN.
    """
    absorbed = np.asarray(absorbed_m3, dtype=np.float64)
    top = 4.0 * geometry.tablet_thickness_m + 4.0 * geometry.base_radius_m
    low = np.zeros_like(absorbed)
    high = np.full_like(absorbed, top)
    for _ in range(50):
        mid = 0.5 * (low + high)
        below = geometry.absorbed_volume_m3(mid) < absorbed
        low = np.where(below, mid, low)
        high = np.where(below, high, mid)
    return np.asarray(np.where(np.isfinite(absorbed), 0.5 * (low + high), np.nan), dtype=np.float64)
