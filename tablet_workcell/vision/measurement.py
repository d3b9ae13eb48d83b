"""Droplet and tablet geometry from a label map: area, base width, height, contact angle, swelling.

What is measured (side view of a backlit sessile drop, physics notes "sessile-drop
disintegration test"):

- droplet area: droplet pixel count x pixel area (the projected side area); when the
  droplet pixels fill less than half their bounding box (specks or a second blob from an
  imperfect segmentation) only the largest blob counts;
- the tablet's top and bottom edges as two parallel lines fitted to the tablet label's
  column tops and bottoms over the central part of the tablet. Their common slope is the
  scene's tilt (a camera is never perfectly level), the top line is the droplet's
  baseline, and their perpendicular distance is the tablet height above the stage (the
  bottom of the tablet label is the stage top). A label map holds each column's edge to a
  whole pixel, which with a level camera quantises the height: when the segmenter placed
  both edges on the frame as sub-pixel lines (Segmentation.tablet_top / tablet_bottom),
  ``tablet_edges`` hands them in and they are used instead;
- the droplet's outer edge, as sub-pixel edge points from row and column scans of the
  droplet label, in coordinates along (u) and above (v) the baseline;
- a circle fitted to those edge points (algebraic Kasa fit refined by a few geometric
  Gauss-Newton steps): a sessile drop small against the capillary length is a spherical
  cap, so the circle gives the contact angle (cos theta = -centre height / radius), the
  base width and the apex height from hundreds of points at once, for angles above
  90 degrees as well;
- a quadratic u(v) fitted to each side's edge points near its contact point, giving a
  left and a right angle that do not assume a cap. When the circle does not describe the
  edge (root-mean-square residual above :data:`CIRCLE_RESIDUAL_LIMIT_PX`: a gravity-
  flattened or pinned drop, a poor segmentation) the reported values come from these local
  fits (mean of left and right angles, base between the two contact points, highest edge
  point as apex) instead.

Pixel convention (as the twin's camera): pixel (r, c) covers x in [c, c + 1), y in
[r, r + 1) and is labelled by whether its centre lies inside; so the first labelled pixel
of a row/column puts the edge at its near boundary, unbiased to within +-0.5 px.

Speed: one comparison per label over the frame, then only bounding boxes are touched with
vectorised numpy (about 1 ms at 640x480 on one core).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from tablet_workcell.vision.types import (
    LABEL_DROPLET,
    LABEL_TABLET,
    DropletMeasurement,
    FrameStatus,
    Line,
    VisionError,
)

logger = logging.getLogger(__name__)

F64 = NDArray[np.float64]

MIN_DROPLET_PIXELS = 30  # fewer droplet pixels than this: no droplet (noise or absorbed)
MIN_TABLET_PIXELS = 200  # fewer tablet pixels than this: no tablet to put a baseline on
MIN_TABLET_COLUMNS = 8  # columns needed to fit the tablet's top and bottom lines
BASELINE_BAND_PX = 1.5  # edge points closer than this to the baseline are left out of the fits
CIRCLE_RESIDUAL_LIMIT_PX = 1.0  # rms distance of the edge points from the circle for a cap
LOCAL_FIT_FRACTION = 0.4  # local side fits use edge points below this fraction of the apex height
LOCAL_FIT_MIN_HEIGHT_PX = 10.0  # ... but at least up to this height above the baseline
_TABLET_CENTRAL_FRACTION = 0.7  # central part of the tablet's columns used for its edge lines
_LINE_OUTLIER_PX = 2.0
SPARSE_FILL_FRACTION = 0.5  # droplet pixels below this fraction of their box: keep the largest blob


@dataclass(frozen=True)
class DropletGeometry:
    """Everything :func:`measure` found, in pixels: the measurement plus what an overlay draws.

    ``origin`` is a point on the baseline (image x, y); ``axis_u`` the unit vector along the
    baseline (to the right) and ``axis_v`` the unit vector perpendicular to it, upward.
    Contact points are in image coordinates; angles in radians inside the liquid.
    """

    measurement: DropletMeasurement
    baseline: Line | None = None  # tablet top
    stage: Line | None = None  # tablet bottom
    origin: tuple[float, float] = (math.nan, math.nan)
    axis_u: tuple[float, float] = (1.0, 0.0)
    axis_v: tuple[float, float] = (0.0, -1.0)
    contact_left: tuple[float, float] = (math.nan, math.nan)
    contact_right: tuple[float, float] = (math.nan, math.nan)
    angle_left_rad: float = math.nan
    angle_right_rad: float = math.nan
    circle: tuple[float, float, float] | None = None  # image x, y of the centre, radius
    circle_rms_px: float = math.nan
    used_circle: bool = False

    def to_image(self, u: float, v: float) -> tuple[float, float]:
        """Image point of baseline coordinates (u along, v above the baseline) in pixels."""
        return (
            self.origin[0] + u * self.axis_u[0] + v * self.axis_v[0],
            self.origin[1] + u * self.axis_u[1] + v * self.axis_v[1],
        )


def measure(
    labels: NDArray[np.uint8], pixel_size_m: float, tablet_edges: tuple[Line, Line] | None = None
) -> DropletMeasurement:
    """Measure one label map (0 background, 1 droplet, 2 tablet) at ``pixel_size_m`` per pixel.

    ``tablet_edges``: the tablet's top and bottom edge lines placed on the frame by the
    segmenter (Segmentation.tablet_top / tablet_bottom), used instead of lines fitted to the
    label map's whole-pixel rows (see :func:`measure_geometry`).
    """
    return measure_geometry(labels, pixel_size_m, tablet_edges).measurement


def measure_geometry(
    labels: NDArray[np.uint8], pixel_size_m: float, tablet_edges: tuple[Line, Line] | None = None
) -> DropletGeometry:
    """As :func:`measure`, keeping the pixel geometry (baseline, contact points, circle).

    With ``tablet_edges`` (top, bottom) the baseline is the given top line and the tablet
    height is the distance to the bottom line at the tablet's centre column, measured
    perpendicular to the top; the label map still decides whether there is a tablet and
    whether it is cut by the frame's bottom edge.

    Raises :class:`VisionError` for a label map that is not an HxW uint8 array or a pixel
    size that is not a positive finite number (caller bugs); a frame without droplet,
    without tablet or with the droplet cut by the frame edge is a status, not an error.
    A droplet too flat or small for any edge fit (a few rows) keeps status OK and its
    area, with NaN angle, base, height and volume.
    """
    _check_inputs(labels, pixel_size_m)
    tablet = _fit_tablet(labels)
    if tablet is None:
        return DropletGeometry(
            DropletMeasurement(
                FrameStatus.NO_TABLET,
                f"No tablet found: fewer than {MIN_TABLET_PIXELS} tablet pixels across "
                f"{MIN_TABLET_COLUMNS} columns; check that the tablet is in view and lit from behind.",
            )
        )
    top, bottom, touches_bottom = tablet
    if tablet_edges is not None:
        top, bottom = _given_edges(labels, *tablet_edges)
    tablet_height_m = math.nan
    if not touches_bottom:
        tablet_height_m = (bottom.intercept - top.intercept) / math.hypot(1.0, top.slope) * pixel_size_m
    drop = (labels == LABEL_DROPLET).view(np.uint8)
    count = int(cv2.countNonZero(drop))
    if count < MIN_DROPLET_PIXELS:
        return DropletGeometry(
            DropletMeasurement(
                FrameStatus.NO_DROPLET,
                f"No droplet on the tablet: {count} droplet pixels, fewer than the "
                f"{MIN_DROPLET_PIXELS} needed to measure one.",
                droplet_area_m2=count * pixel_size_m**2,
                tablet_height_m=tablet_height_m,
            ),
            baseline=top,
            stage=bottom,
        )
    x, y, w, h = cv2.boundingRect(drop)
    if count < SPARSE_FILL_FRACTION * w * h:
        x, y, w, h, count = _main_blob(drop, x, y, w, h)
    rows, cols = labels.shape
    if x == 0 or y == 0 or x + w == cols or y + h == rows:
        return DropletGeometry(
            DropletMeasurement(
                FrameStatus.DROPLET_AT_EDGE,
                "The droplet touches the frame edge, so part of it is cut off; centre the tablet "
                "in the camera's view or zoom out.",
                tablet_height_m=tablet_height_m,
            ),
            baseline=top,
            stage=bottom,
        )
    return _droplet(
        drop[y : y + h, x : x + w].astype(bool), x, y, count, top, bottom, tablet_height_m, pixel_size_m
    )


def _given_edges(labels: NDArray[np.uint8], top: Line, bottom: Line) -> tuple[Line, Line]:
    """The given top line, and the bottom line made parallel to it through its point at the
    tablet label's centre column (so the height is one perpendicular distance)."""
    x, _y, w, _h = cv2.boundingRect((labels == LABEL_TABLET).view(np.uint8))
    centre = x + 0.5 * w
    return top, Line(bottom.y(centre) - top.slope * centre, top.slope)


def _main_blob(drop: NDArray[np.uint8], x: int, y: int, w: int, h: int) -> tuple[int, int, int, int, int]:
    """Keep only the largest droplet blob (zeroing the rest inside ``drop``, a fresh array):
    a cap fills at least two thirds of its bounding box, so a sparse box means specks or a
    second blob from an imperfect segmentation, which would corrupt the edge fits and the
    edge check. Returns the blob's bounding box and pixel count."""
    window = drop[y : y + h, x : x + w]
    count, components, stats, _ = cv2.connectedComponentsWithStats(window, connectivity=8)
    if count <= 2:
        return x, y, w, h, int(np.count_nonzero(window))
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    window[components != largest] = 0
    left, top, width, height, area = (int(v) for v in stats[largest])
    logger.debug("droplet label has %d blobs; measuring the largest (%d px)", count - 1, area)
    return x + left, y + top, width, height, area


def _check_inputs(labels: NDArray[np.uint8], pixel_size_m: float) -> None:
    if not isinstance(labels, np.ndarray) or labels.ndim != 2 or labels.dtype != np.uint8:
        described = (
            f"{labels.dtype} {labels.shape}" if isinstance(labels, np.ndarray) else type(labels).__name__
        )
        raise VisionError(
            f"The label map is {described}; measure() needs an HxW uint8 array of labels "
            "(0 background, 1 droplet, 2 tablet) from a segmenter."
        )
    if not (math.isfinite(pixel_size_m) and pixel_size_m > 0.0):
        raise VisionError(
            f"The pixel size is {pixel_size_m!r} m; use the calibrated positive size of one pixel, "
            "e.g. 20e-6 m."
        )


def _fit_tablet(labels: NDArray[np.uint8]) -> tuple[Line, Line, bool] | None:
    """Top and bottom edge lines of the tablet label (common slope), and whether it is cut by
    the frame's bottom edge; None without a tablet."""
    tab = (labels == LABEL_TABLET).view(np.uint8)
    if cv2.countNonZero(tab) < MIN_TABLET_PIXELS:
        return None
    x, y, w, h = cv2.boundingRect(tab)
    margin = int(0.5 * (1.0 - _TABLET_CENTRAL_FRACTION) * w)
    sub = tab[y : y + h, x + margin : x + w - margin].astype(bool)
    present = sub.any(axis=0)
    if np.count_nonzero(present) < MIN_TABLET_COLUMNS:
        return None
    first = np.argmax(sub, axis=0)
    last = h - 1 - np.argmax(sub[::-1], axis=0)
    xs = np.flatnonzero(present).astype(np.float64) + (x + margin + 0.5)
    tops = first[present].astype(np.float64) + y
    bottoms = last[present].astype(np.float64) + (y + 1)
    keep_top = np.ones(xs.size, dtype=bool)
    keep_bottom = keep_top.copy()
    slope, a_top, a_bottom = 0.0, 0.0, 0.0
    for _ in range(2):  # least squares, then again without outlying columns
        slope, a_top, a_bottom = _parallel_lines(xs, tops, keep_top, bottoms, keep_bottom)
        keep_top = np.abs(tops - (a_top + slope * xs)) <= _LINE_OUTLIER_PX
        keep_bottom = np.abs(bottoms - (a_bottom + slope * xs)) <= _LINE_OUTLIER_PX
        if np.count_nonzero(keep_top) < MIN_TABLET_COLUMNS // 2 or np.count_nonzero(keep_bottom) < 2:
            keep_top[:] = True
            keep_bottom[:] = True
            break
    slope, a_top, a_bottom = _parallel_lines(xs, tops, keep_top, bottoms, keep_bottom)
    return Line(a_top, slope), Line(a_bottom, slope), y + h >= labels.shape[0]


def _parallel_lines(
    xs: F64, tops: F64, keep_top: NDArray[np.bool_], bottoms: F64, keep_bottom: NDArray[np.bool_]
) -> tuple[float, float, float]:
    """Least-squares pair of lines with one common slope through two point sets."""
    xt, yt, xb, yb = xs[keep_top], tops[keep_top], xs[keep_bottom], bottoms[keep_bottom]
    dxt, dxb = xt - xt.mean(), xb - xb.mean()
    denominator = float(dxt @ dxt + dxb @ dxb)
    slope = float(dxt @ (yt - yt.mean()) + dxb @ (yb - yb.mean())) / denominator if denominator > 0 else 0.0
    return slope, float(yt.mean() - slope * xt.mean()), float(yb.mean() - slope * xb.mean())


def _edge_points(sub: NDArray[np.bool_], x0: int, y0: int) -> tuple[F64, F64]:
    """Sub-pixel outer edge points of a mask window (image coordinates): both ends of every
    row, and the top of every column."""
    w = sub.shape[1]
    row_has = sub.any(axis=1)
    col_has = sub.any(axis=0)
    rows = np.flatnonzero(row_has).astype(np.float64)
    left = np.argmax(sub[row_has], axis=1).astype(np.float64)
    right = (w - np.argmax(sub[row_has, ::-1], axis=1)).astype(np.float64)
    cols = np.flatnonzero(col_has).astype(np.float64)
    tops = np.argmax(sub[:, col_has], axis=0).astype(np.float64)
    xs = np.concatenate((left, right, cols + 0.5)) + x0
    ys = np.concatenate((rows + 0.5, rows + 0.5, tops)) + y0
    return xs, ys


def _fit_circle(u: F64, v: F64) -> tuple[float, float, float, float] | None:
    """Circle (uc, vc, radius, rms residual) through points: Kasa's algebraic fit as the
    start, then Gauss-Newton on the geometric distances (removes Kasa's short-arc bias)."""
    if u.size < 5:
        return None
    mu, mv = float(u.mean()), float(v.mean())
    du, dv = u - mu, v - mv
    design = np.column_stack((du, dv, np.ones_like(du)))
    solution, *_ = np.linalg.lstsq(design, -(du * du + dv * dv), rcond=None)
    uc, vc = -0.5 * solution[0], -0.5 * solution[1]
    r2 = uc * uc + vc * vc - solution[2]
    if not r2 > 0.0:
        return None
    params = np.array([uc, vc, math.sqrt(r2)])
    for _ in range(4):
        eu, ev = du - params[0], dv - params[1]
        dist = np.hypot(eu, ev)
        dist[dist == 0.0] = 1e-9
        jac = np.column_stack((-eu / dist, -ev / dist, -np.ones_like(dist)))
        step, *_ = np.linalg.lstsq(jac, -(dist - params[2]), rcond=None)
        params += step
        if float(np.abs(step).max()) < 1e-4:
            break
    residual = np.hypot(du - params[0], dv - params[1]) - params[2]
    rms = float(np.sqrt(np.mean(residual * residual)))
    return float(params[0] + mu), float(params[1] + mv), abs(float(params[2])), rms


def _side_fit(u: F64, v: F64, right: bool, v_max: float) -> tuple[float, float] | None:
    """Contact position u(0) and contact angle of one side from a quadratic fitted to that
    side's edge points below ``v_max``, in the frame of their principal axis (so the fit is
    well posed for flat, steep and overhanging edges alike); None with too few points."""
    near = v <= v_max
    if np.count_nonzero(near) < 6:
        return None
    pu, pv = u[near], v[near]
    mu, mv = float(pu.mean()), float(pv.mean())
    _, vectors = np.linalg.eigh(np.cov(np.vstack((pu - mu, pv - mv))))
    du, dv = float(vectors[0, 1]), float(vectors[1, 1])  # principal direction
    nu, nv = -dv, du
    s = (pu - mu) * du + (pv - mv) * dv
    t = (pu - mu) * nu + (pv - mv) * nv
    c2, c1, c0 = np.polyfit(s, t, 2) if np.ptp(s) > 4.0 else (0.0, *np.polyfit(s, t, 1))
    # Where the fitted edge meets the baseline v = 0: c2 nv s^2 + (dv + c1 nv) s + mv + c0 nv = 0.
    roots = np.roots([c2 * nv, dv + c1 * nv, mv + c0 * nv])
    roots = roots[np.isreal(roots)].real
    if roots.size == 0:
        return None
    s0 = float(roots[np.argmin(np.abs(roots - s[np.argmin(pv)]))])
    slope = c1 + 2.0 * c2 * s0
    tu, tv = du + slope * nu, dv + slope * nv
    if tv < 0.0:
        tu, tv = -tu, -tv
    contact = mu + s0 * du + (c0 + c1 * s0 + c2 * s0 * s0) * nu
    return contact, math.atan2(tv, -tu if right else tu)


def _droplet(
    sub: NDArray[np.bool_],
    x0: int,
    y0: int,
    count: int,
    top: Line,
    bottom: Line,
    tablet_height_m: float,
    pixel_size_m: float,
) -> DropletGeometry:
    xs, ys = _edge_points(sub, x0, y0)
    norm = math.hypot(1.0, top.slope)
    axis_u = (1.0 / norm, top.slope / norm)
    axis_v = (top.slope / norm, -1.0 / norm)
    ox = x0 + 0.5 * sub.shape[1]
    origin = (ox, top.y(ox))
    u = (xs - origin[0]) * axis_u[0] + (ys - origin[1]) * axis_u[1]
    v = (xs - origin[0]) * axis_v[0] + (ys - origin[1]) * axis_v[1]
    above = v >= BASELINE_BAND_PX
    apex_px = float(v.max())
    u_fit, v_fit = u[above], v[above]
    circle = _fit_circle(u_fit, v_fit)
    v_local = max(LOCAL_FIT_FRACTION * apex_px, LOCAL_FIT_MIN_HEIGHT_PX)
    u_mid = float(np.median(u_fit)) if u_fit.size else 0.0
    left = _side_fit(u_fit[u_fit < u_mid], v_fit[u_fit < u_mid], False, v_local)
    right = _side_fit(u_fit[u_fit >= u_mid], v_fit[u_fit >= u_mid], True, v_local)

    used_circle = False
    base_px = height_px = angle = math.nan
    contact_u = (math.nan, math.nan)
    circle_image: tuple[float, float, float] | None = None
    rms = math.nan
    if circle is not None:
        uc, vc, radius, rms = circle
        cx, cy = origin[0] + uc * axis_u[0] + vc * axis_v[0], origin[1] + uc * axis_u[1] + vc * axis_v[1]
        circle_image = (cx, cy, radius)
        if rms <= CIRCLE_RESIDUAL_LIMIT_PX and abs(vc) < radius:
            used_circle = True
            angle = math.acos(-vc / radius)
            base_px = 2.0 * math.sqrt(radius * radius - vc * vc)
            height_px = radius + vc
            contact_u = (uc - 0.5 * base_px, uc + 0.5 * base_px)
    angle_left = left[1] if left else math.nan
    angle_right = right[1] if right else math.nan
    if not used_circle:
        if left is None or right is None:
            logger.debug("droplet edge too short for a circle or side fits (%d points)", u_fit.size)
        else:
            contact_u = (left[0], right[0])
            base_px = right[0] - left[0]
            angle = 0.5 * (left[1] + right[1])
            height_px = apex_px
    volume_px3 = math.pi * height_px * (0.75 * base_px * base_px + height_px * height_px) / 6.0
    measurement = DropletMeasurement(
        FrameStatus.OK,
        "",
        droplet_area_m2=count * pixel_size_m**2,
        base_width_m=base_px * pixel_size_m,
        droplet_height_m=height_px * pixel_size_m,
        contact_angle_rad=angle,
        droplet_volume_m3=volume_px3 * pixel_size_m**3,
        tablet_height_m=tablet_height_m,
    )

    def point(u_value: float) -> tuple[float, float]:
        return (origin[0] + u_value * axis_u[0], origin[1] + u_value * axis_u[1])

    return DropletGeometry(
        measurement,
        baseline=top,
        stage=bottom,
        origin=origin,
        axis_u=axis_u,
        axis_v=axis_v,
        contact_left=point(contact_u[0]),
        contact_right=point(contact_u[1]),
        angle_left_rad=angle_left,
        angle_right_rad=angle_right,
        circle=circle_image,
        circle_rms_px=rms,
        used_circle=used_circle,
    )
