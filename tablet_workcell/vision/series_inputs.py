"""A measured sessile-drop series made ready for the fits and the regime models (prepare_series).

Both the fits and the learned regime model need the same preparation, so it lives in one
place: checked arrays; frames where the pipeline saw no droplet (volume NaN, area a few
pixels) read as volume 0 (gone), not as rejected; the start volume; the pinned base
radius (given, else half the median base width while pinned, else from the spherical
cap with the measured side area and volume); pinned frames' volumes recomputed from the
less noisy side area (refine_pinned_volume_m3); the wetting geometry; and the front
depth L(t) the absorbed volume implies (for the learned model's features).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tablet_workcell.vision import fits
from tablet_workcell.vision.imbibition import F64, WettingGeometry, depth_for_absorbed_volume_m
from tablet_workcell.vision.regimes import GONE_FRACTION
from tablet_workcell.vision.types import VisionError

PINNED_VOLUME_FRACTION = 0.6  # the base stays pinned until the angle halves, near half the volume
PINNED_WIDTH_TOLERANCE = 0.015  # about 3 px of a 4 mm base at 20 um/px: edge noise, not receding


class SeriesError(VisionError):
    """A series that cannot be analysed at all (wrong shapes, too short, impossible parameters)."""


@dataclass(frozen=True, eq=False)
class PreparedSeries:
    """Arrays (one per frame, NaN: rejected) and the derived scalars the analyses share."""

    time_s: F64
    volume_m3: F64  # gone frames 0, pinned frames from the side area
    raw_volume_m3: F64  # gone frames 0, otherwise as measured
    area_m2: F64
    tablet_height_m: F64
    start_volume_m3: float
    geometry: WettingGeometry

    def front_depth_m(self) -> F64:
        """Depth L the absorbed volume V0 - V implies (NaN where the volume was not measured)."""
        absorbed = np.maximum(self.start_volume_m3 - self.volume_m3, 0.0)
        return depth_for_absorbed_volume_m(absorbed, self.geometry)


def prepare_series(
    time_s: Sequence[float] | F64,
    droplet_volume_m3: Sequence[float] | F64,
    droplet_area_m2: Sequence[float] | F64,
    tablet_height_m: Sequence[float] | F64,
    *,
    porosity: float,
    tablet_thickness_m: float,
    base_radius_m: float | None = None,
    base_width_m: Sequence[float] | F64 | None = None,
    tablet_diameter_m: float | None = None,
) -> PreparedSeries:
    """Check and prepare one measured series; SeriesError with a sentence when it cannot be used."""
    t, volume, area, height = _check(time_s, droplet_volume_m3, droplet_area_m2, tablet_height_m)
    if not 0.0 < porosity < 1.0:
        raise SeriesError(f"tablet porosity {porosity!r} must lie strictly between 0 and 1 (e.g. 0.13).")
    if not tablet_thickness_m > 0:
        raise SeriesError(f"tablet thickness {tablet_thickness_m!r} m must be positive (e.g. 1.5e-3).")
    if tablet_diameter_m is not None and not tablet_diameter_m > 0:
        raise SeriesError(f"tablet diameter {tablet_diameter_m!r} m must be positive (e.g. 8e-3) or None.")
    volume = _gone_as_zero(t, volume, area)
    v0 = start_volume_m3(t, volume)
    if not math.isfinite(v0):
        raise SeriesError(
            "no frame after spreading has a measured droplet volume; check the segmentation (is the droplet "
            "in view?) and the frame statuses."
        )
    radius = (
        base_radius_m
        if base_radius_m is not None
        else pinned_base_radius_m(t, volume, area, base_width_m, v0)
    )
    if not (math.isfinite(radius) and radius > 0):
        raise SeriesError(f"base radius {radius!r} m must be positive; pass the measured base_radius_m.")
    geometry = WettingGeometry(
        porosity,
        radius,
        tablet_thickness_m,
        math.inf if tablet_diameter_m is None else tablet_diameter_m / 2.0,
    )
    refined = refine_pinned_volume_m3(volume, area, base_width_m, radius, v0)
    return PreparedSeries(t, refined, volume, area, height, v0, geometry)


def _check(*arrays: Sequence[float] | F64) -> tuple[F64, F64, F64, F64]:
    values = [np.asarray(a, dtype=np.float64) for a in arrays]
    shapes = {v.shape for v in values}
    if len(shapes) != 1 or values[0].ndim != 1:
        raise SeriesError(
            f"time, volume, area and height must be 1-D arrays of one length; got shapes {sorted(shapes)}."
        )
    t = values[0]
    if t.size < fits.MIN_POINTS or not np.all(np.isfinite(t)) or np.any(np.diff(t) <= 0):
        raise SeriesError(
            f"time must hold at least {fits.MIN_POINTS} finite, strictly increasing samples; got {t.size}."
        )
    return values[0], values[1], values[2], values[3]


def _gone_as_zero(t: F64, volume: F64, area: F64) -> F64:
    """Volume 0 where no volume was measured but the area says the droplet is (nearly) gone.

    The pipeline reports a frame without a droplet as NO_DROPLET: volume NaN, area the few
    droplet pixels left (or 0); that is a measurement of "gone", not a rejected frame.
    """
    start_area = start_volume_m3(t, area)
    if not math.isfinite(start_area):
        return volume
    gone = ~np.isfinite(volume) & np.isfinite(area) & (area <= GONE_FRACTION * start_area)
    return np.where(gone, 0.0, volume)


def start_volume_m3(time_s: F64, volume_m3: F64) -> float:
    """Median of the first ten valid volumes after spreading (NaN when there are none)."""
    keep = (time_s >= fits.SPREADING_END_S) & np.isfinite(volume_m3) & (volume_m3 > 0)
    return float(np.median(volume_m3[keep][:10])) if keep.any() else math.nan


def pinned_base_radius_m(
    time_s: F64, volume_m3: F64, area_m2: F64, base_width_m: Sequence[float] | F64 | None, v0_m3: float
) -> float:
    """Base radius while pinned: from base widths when given, else from the cap of area and volume."""
    pinned = (time_s >= fits.SPREADING_END_S) & (volume_m3 >= PINNED_VOLUME_FRACTION * v0_m3)
    if base_width_m is not None:
        width = np.asarray(base_width_m, dtype=np.float64)[pinned]
        if np.isfinite(width).sum() >= 3:
            return float(np.nanmedian(width)) / 2.0
    both = pinned & np.isfinite(area_m2) & (area_m2 > 0) & np.isfinite(volume_m3)
    if both.sum() < 3:
        raise SeriesError(
            "the base radius cannot be measured: fewer than 3 frames with both area and volume while the "
            "drop is pinned; pass base_radius_m or base widths."
        )
    pairs = zip(area_m2[both], volume_m3[both], strict=True)
    radii = [cap_base_radius_m(float(a), float(v)) for a, v in pairs]
    return float(np.median(radii))  # per frame, then the median: robust to a frame's noisy height


def refine_pinned_volume_m3(
    volume_m3: F64,
    area_m2: F64,
    base_width_m: Sequence[float] | F64 | None,
    base_radius_m: float,
    v0_m3: float,
) -> F64:
    """Volumes of pinned frames recomputed from the side area and the pinned base radius.

    Why: the pipeline's volume is the cap of a pixel-quantised base width and height
    (about 3 % noise per frame, mostly the height's one-pixel error), while the area counts
    every droplet pixel (about 1 %). With the base pinned at a known radius the area alone
    fixes the cap, so those frames give a volume three times less noisy, which is what the
    Washburn fit's C needs when the capillary stage lasts only a second. A frame counts as
    pinned while its base width is within PINNED_WIDTH_TOLERANCE of the pinned width and
    its volume above half the start volume; without base widths nothing is changed.
    """
    if base_width_m is None or not math.isfinite(v0_m3):
        return volume_m3
    width = np.asarray(base_width_m, dtype=np.float64)
    pinned = (
        np.isfinite(width)
        & (np.abs(width / (2.0 * base_radius_m) - 1.0) <= PINNED_WIDTH_TOLERANCE)
        & np.isfinite(area_m2)
        & (area_m2 > 0)
        & np.isfinite(volume_m3)
        & (volume_m3 >= 0.5 * v0_m3)
    )
    refined = volume_m3.copy()
    refined[pinned] = cap_volume_for_area_m3(area_m2[pinned], base_radius_m)
    return refined


def cap_volume_for_area_m3(side_area_m2: F64, base_radius_m: float) -> F64:
    """Volume of the spherical cap on base radius a whose side-view area is A (bisection on the angle)."""
    area = np.asarray(side_area_m2, dtype=np.float64)
    low = np.full(area.shape, 1e-4)
    high = np.full(area.shape, math.pi - 1e-4)
    for _ in range(60):  # the side area on a fixed base grows monotonically with the angle
        mid = 0.5 * (low + high)
        grows = (base_radius_m / np.sin(mid)) ** 2 * (mid - np.sin(mid) * np.cos(mid)) < area
        low = np.where(grows, mid, low)
        high = np.where(grows, high, mid)
    theta = 0.5 * (low + high)
    height = base_radius_m * np.tan(theta / 2.0)
    return np.asarray(math.pi * height * (3.0 * base_radius_m**2 + height**2) / 6.0, dtype=np.float64)


def cap_base_radius_m(side_area_m2: float, volume_m3: float) -> float:
    """Base radius of the spherical cap with this side-view area and volume (V^2/A^3 fixes the angle)."""
    target = volume_m3**2 / side_area_m2**3
    low, high = 1e-4, math.pi - 1e-4
    for _ in range(80):  # V^2/A^3 falls monotonically with the contact angle
        mid = 0.5 * (low + high)
        if _ratio(mid) > target:
            low = mid
        else:
            high = mid
    theta = 0.5 * (low + high)
    sphere = math.sqrt(side_area_m2 / (theta - math.sin(theta) * math.cos(theta)))
    return sphere * math.sin(theta)


def _ratio(theta: float) -> float:
    c = math.cos(theta)
    volume = math.pi * (2.0 - 3.0 * c + c**3) / 3.0
    area = theta - math.sin(theta) * c
    return volume**2 / area**3
