"""Sessile-drop disintegration test: a water droplet on a porous, swelling tablet.

Model (SI), after the stages of a drop on a porous substrate (Starov, Colloids
Interfaces 3:38, 2019) and tablet water uptake (Markl and Zeitler, PMC5382187):

1. Spreading (milliseconds): the base radius relaxes to the spherical cap of the
   dispensed volume at the advancing contact angle.
2. Pinned base: liquid is imbibed, the volume falls, the contact angle falls.
3. Receding: once the angle reaches the receding angle (half the advancing one) the
   base shrinks at constant angle until the droplet is gone.

Imbibition: the front depth L obeys dL/dt = C/(2L) + v_s, where C is the Washburn
coefficient gamma * r_eff * cos(theta) / (2 eta) (L^2 = C t for a rigid tablet) and v_s
a swelling-driven uptake velocity (swelling opens the structure, so MCC-like tablets
take water up nearly linearly in time, Chem Pharm Bull 29:205, 1981). The closed form
t(L) = L/v_s - C/(2 v_s^2) ln(1 + 2 v_s L / C) is inverted by interpolation, so a
whole test costs no time stepping. The effective pore radius shrinks with porosity as
(eps/0.15)^2 (calibrated). Absorbed volume = porosity x wetted volume, the wetted
region growing down and sideways under the base, bounded by the tablet.

Regimes (ground truth for the analysis): absorption-dominated while the capillary term
C/(2L) exceeds v_s, swelling-dominated after; complete when the droplet is gone.

Swelling: tablet height h0 (1 + S (1 - exp(-k_s t)) min(1, L/h0)), S the blend's
capacity scaled down at low porosity (17 % at 5 % vs 33 % at 10-15 % for MCC,
J Pharm Sci 2015, PMID 26073446).

Disintegration time (figure of merit): time for water to reach the full thickness plus
a bond-breaking time (tensile strength / 0.1 MPa) / (k_s S + dissolution rate),
calibrated to land immediate-release blends in 2.5-10 min and to leave swelling-free,
insoluble compacts (pure DCPA) undisintegrated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tablet_workcell.errors import WorkcellError
from tablet_workcell.twin.blend import BlendProperties
from tablet_workcell.twin.records import DropletScene, FloatArray

WATER_SURFACE_TENSION_N_PER_M = 0.072
WATER_VISCOSITY_PA_S = 0.89e-3
REFERENCE_POROSITY = 0.15
SPREADING_TIME_CONSTANT_S = 0.01
RECEDING_TO_ADVANCING = 0.5
LATERAL_SPREAD = 0.5
BOND_STRESS_SCALE_PA = 0.1e6
DISSOLUTION_RATE_PER_S = 0.004
MAX_DISINTEGRATION_S = 3600.0


class DisintegrationError(WorkcellError):
    """A sessile-drop test request outside what the model or the stage can do."""


class Regime:
    """Mirrors tablet_workcell/msg/RegimeSegment REGIME_* constants."""

    SPREADING = 0
    ABSORPTION = 1
    SWELLING = 2
    COMPLETE = 3


@dataclass(frozen=True)
class DropletSeries:
    """Time series and scalar truths of one sessile-drop test."""

    time_s: FloatArray
    volume_m3: FloatArray
    base_radius_m: FloatArray
    contact_angle_rad: FloatArray
    side_area_m2: FloatArray
    tablet_height_m: FloatArray
    penetration_m: FloatArray
    regime: np.ndarray
    tablet_diameter_m: float
    washburn_coefficient_m2_per_s: float
    swelling_velocity_m_per_s: float
    swelling_rate_per_s: float
    swelling_strain: float
    absorption_time_s: float  # NaN when the droplet is never fully absorbed
    disintegration_time_s: float  # capped at MAX_DISINTEGRATION_S

    def segments(self) -> list[tuple[int, float, float]]:
        """Contiguous (regime, start, end) intervals of the sampled regimes."""
        result: list[tuple[int, float, float]] = []
        for index, regime in enumerate(self.regime.tolist()):
            if result and result[-1][0] == regime:
                result[-1] = (regime, result[-1][1], float(self.time_s[index]))
            else:
                result.append((regime, float(self.time_s[index]), float(self.time_s[index])))
        return result

    def scene(self, index: int, needle_retract_s: float = 0.3) -> DropletScene:
        """The camera's view at sample ``index`` (needle just above the apex, then retracted)."""
        base = float(self.base_radius_m[index])
        angle = float(self.contact_angle_rad[index])
        height = float(self.tablet_height_m[index])
        needle = None
        if self.time_s[index] < needle_retract_s and base > 0:
            needle = height + base * math.tan(angle / 2.0) + 0.4e-3
        return DropletScene(self.tablet_diameter_m, height, base, angle, needle)


def cap_height_for_volume(volume_m3: FloatArray, base_radius_m: FloatArray) -> FloatArray:
    """Apex height h of a spherical cap of volume V on base radius a: h^3 + 3a^2 h = 6V/pi (Cardano)."""
    p = 3.0 * base_radius_m**2
    q = 6.0 * volume_m3 / math.pi
    root = np.sqrt(q**2 / 4.0 + p**3 / 27.0)
    return np.asarray(np.cbrt(q / 2.0 + root) + np.cbrt(q / 2.0 - root), dtype=np.float64)


def base_radius_for_volume(volume_m3: FloatArray, angle_rad: float) -> FloatArray:
    """Base radius of a spherical cap of volume V at contact angle theta."""
    tan_half = math.tan(angle_rad / 2.0)
    return np.asarray(np.cbrt(6.0 * volume_m3 / (math.pi * tan_half * (3.0 + tan_half**2))), dtype=np.float64)


def washburn_coefficient(blend: BlendProperties, porosity: float) -> float:
    """C = gamma r_eff cos(theta) / (2 eta) [m^2/s]; zero for non-wetting tablets."""
    radius = blend.pore_radius_scale_m * (porosity / REFERENCE_POROSITY) ** 2
    cos_theta = math.cos(blend.contact_angle_rad)
    return max(0.0, WATER_SURFACE_TENSION_N_PER_M * radius * cos_theta / (2.0 * WATER_VISCOSITY_PA_S))


def sessile_drop(
    blend: BlendProperties,
    tablet_diameter_m: float,
    tablet_thickness_m: float,
    porosity: float,
    tensile_strength_pa: float,
    droplet_volume_m3: float,
    duration_s: float,
    frame_interval_s: float,
    soluble_fraction: float = 0.0,
) -> DropletSeries:
    """Simulate the test and sample it every ``frame_interval_s`` up to ``duration_s``."""
    _check(tablet_diameter_m, tablet_thickness_m, porosity, droplet_volume_m3, duration_s, frame_interval_s)
    c = washburn_coefficient(blend, porosity)
    strain = blend.swelling_capacity * min(1.0, porosity / 0.10) ** 0.7
    k_s = blend.swelling_rate_per_s
    v_s = strain * k_s * tablet_thickness_m
    tablet_radius = tablet_diameter_m / 2.0
    theta_adv = blend.contact_angle_rad
    theta_rec = RECEDING_TO_ADVANCING * theta_adv
    base_eq = float(base_radius_for_volume(np.array([droplet_volume_m3]), theta_adv)[0])
    if base_eq > tablet_radius:
        raise DisintegrationError(
            f"a {droplet_volume_m3 * 1e9:.1f} uL droplet spreads to {2e3 * base_eq:.1f} mm, wider than the "
            f"{tablet_diameter_m * 1e3:.1f} mm tablet; use a smaller droplet."
        )

    time = np.arange(0.0, duration_s + frame_interval_s / 2.0, frame_interval_s)
    depth = _front_depth(time, c, v_s)
    wetted = _wetted_volume(depth, base_eq, tablet_radius, tablet_thickness_m)
    volume = np.maximum(droplet_volume_m3 - porosity * wetted, 0.0)

    spread = base_eq * (1.0 - np.exp(-np.maximum(time, 1e-6) / SPREADING_TIME_CONSTANT_S))
    height = cap_height_for_volume(volume, spread)
    angle = 2.0 * np.arctan2(height, spread)
    receding = (angle <= theta_rec) & (time > 5 * SPREADING_TIME_CONSTANT_S)
    base = np.where(receding, base_radius_for_volume(volume, theta_rec), spread)
    angle = np.where(receding, theta_rec, angle)
    gone = volume <= 0.0
    base = np.where(gone, 0.0, base)
    angle = np.where(gone, 0.0, angle)

    scene_area = np.where(
        gone, 0.0, (base / np.sin(np.maximum(angle, 1e-9))) ** 2 * (angle - np.sin(angle) * np.cos(angle))
    )
    swelling = strain * (1.0 - np.exp(-k_s * time)) * np.minimum(1.0, depth / tablet_thickness_m)
    regime = np.where(c / (2.0 * np.maximum(depth, 1e-12)) >= v_s, Regime.ABSORPTION, Regime.SWELLING)
    regime = np.where(time < 5 * SPREADING_TIME_CONSTANT_S, Regime.SPREADING, regime)
    regime = np.where(gone, Regime.COMPLETE, regime).astype(np.uint8)

    absorption_time = _absorption_time(
        droplet_volume_m3, porosity, base_eq, tablet_radius, tablet_thickness_m, c, v_s
    )
    full_depth_time = _time_at_depth(tablet_thickness_m, c, v_s)
    breaking_rate = k_s * strain + DISSOLUTION_RATE_PER_S * soluble_fraction + 1e-6
    disintegration = min(
        MAX_DISINTEGRATION_S, full_depth_time + (tensile_strength_pa / BOND_STRESS_SCALE_PA) / breaking_rate
    )
    return DropletSeries(
        time_s=time,
        volume_m3=volume,
        base_radius_m=base,
        contact_angle_rad=angle,
        side_area_m2=np.asarray(scene_area, dtype=np.float64),
        tablet_height_m=tablet_thickness_m * (1.0 + swelling),
        penetration_m=depth,
        regime=regime,
        tablet_diameter_m=tablet_diameter_m,
        washburn_coefficient_m2_per_s=c,
        swelling_velocity_m_per_s=v_s,
        swelling_rate_per_s=k_s,
        swelling_strain=strain,
        absorption_time_s=absorption_time,
        disintegration_time_s=disintegration,
    )


def _check(
    diameter: float, thickness: float, porosity: float, volume: float, duration: float, interval: float
) -> None:
    if not (diameter > 0 and thickness > 0):
        raise DisintegrationError(
            f"tablet diameter {diameter!r} m and thickness {thickness!r} m must be positive."
        )
    if not 0.0 < porosity < 1.0:
        raise DisintegrationError(f"tablet porosity {porosity!r} must lie strictly between 0 and 1.")
    if not 0.2e-9 <= volume <= 50e-9:
        raise DisintegrationError(
            f"droplet volume {volume!r} m^3 is outside 0.2-50 uL (2e-10..5e-8 m^3); a sessile-drop test "
            "uses a few microlitres, e.g. 5e-9."
        )
    if not (duration > 0 and 0 < interval <= duration):
        raise DisintegrationError(
            f"duration {duration!r} s and frame interval {interval!r} s must be positive, "
            "with the interval no longer than the duration."
        )


def _time_at_depth(depth: float | FloatArray, c: float, v_s: float) -> FloatArray | float:
    """Closed-form t(L) of dL/dt = C/(2L) + v_s."""
    if v_s <= 0.0:
        return np.inf if c <= 0.0 else np.asarray(depth) ** 2 / c
    if c <= 0.0:
        return np.asarray(depth) / v_s
    return np.asarray(depth) / v_s - c / (2.0 * v_s**2) * np.log1p(2.0 * v_s * np.asarray(depth) / c)


def _front_depth(time: FloatArray, c: float, v_s: float) -> FloatArray:
    if c <= 0.0 and v_s <= 0.0:
        return np.zeros_like(time)
    if v_s <= 0.0:
        return np.asarray(np.sqrt(c * time), dtype=np.float64)
    top = max(float(np.sqrt(c * time[-1]) + v_s * time[-1]), 1e-9) * 1.01
    depths = np.concatenate([[0.0], np.geomspace(top * 1e-9, top, 4000)])
    times = np.asarray(_time_at_depth(depths, c, v_s), dtype=np.float64)
    return np.asarray(np.interp(time, times, depths), dtype=np.float64)


def _wetted_volume(depth: FloatArray, base: float, tablet_radius: float, thickness: float) -> FloatArray:
    radius = np.minimum(base + LATERAL_SPREAD * depth, tablet_radius)
    return np.asarray(math.pi * radius**2 * np.minimum(depth, thickness), dtype=np.float64)


def _absorption_time(
    volume: float, porosity: float, base: float, tablet_radius: float, thickness: float, c: float, v_s: float
) -> float:
    if c <= 0.0 and v_s <= 0.0:
        return math.nan
    top = math.sqrt(c * 1e4) + v_s * 1e4 + thickness
    depths = np.linspace(0.0, top, 20000)
    absorbed = porosity * _wetted_volume(depths, base, tablet_radius, thickness)
    if absorbed[-1] < volume:
        return math.nan  # the tablet saturates before the droplet is gone
    depth = float(np.interp(volume, absorbed, depths))
    return float(_time_at_depth(depth, c, v_s))
