"""Classical OpenCV segmentation of backlit sessile-drop frames: the baseline and fallback.

Why keep it next to the U-Net: it needs no model file, so it still works when the model is
missing or refused, and it is the yardstick the benchmark compares the network against.
It encodes what a goniometer operator knows about the scene instead of learning it:

1. Everything solid or liquid is a dark silhouette on a bright, smoothly varying backlight.
   The backlight is estimated at 1/8 resolution (a max filter finds it behind the
   silhouettes, then a normalised convolution of the bright pixels alone follows its
   gradients and vignetting), and a pixel is dark when it is below a fraction of the
   backlight behind it: one threshold for any exposure.
2. The stage is the dark band at the bottom; its top (the baseline) is a line fitted to the
   top of the bottom-connected dark run in the outer columns, where no tablet stands.
3. The tablet is the dark rectangle standing on the stage: its columns are those where the
   dark run rises above the baseline, its height the plateau of that rise (columns under
   the droplet rise higher).
4. The droplet is every dark piece standing on the tablet's top (a lens highlight reaching
   the edge can split a small droplet); rows are filled between their ends and holes are
   closed together with the tablet (the highlight); a needle joined to it (a bar from the
   frame's top edge) is cut where the blob becomes wider than the needle. A single row
   of dark pixels along the tablet's edge is not a droplet.
5. Every edge is then placed at the mid-level between that object's own darkness and the
   backlight (re-thresholding near the coarse edge), because a fixed fraction would put
   blurred edges of pale and of dark objects in different places.

Known limits (measured numbers in docs/disintegration.md): small, blurred, pale droplets
lose their apex rows or gain the tablet's top row; a glossy pale tablet top can shift the
tablet-top line by up to a pixel; a dark blob in the background touching the droplet is
taken for droplet. It assumes the stage is
visible at both sides of the frame (outer 10 % of the columns) with the tablet between.
"""

from __future__ import annotations

import logging
import math

import cv2
import numpy as np
from numpy.typing import NDArray

from tablet_workcell.vision.frames import to_grey
from tablet_workcell.vision.types import LABEL_DROPLET, LABEL_TABLET, Line, Segmentation

logger = logging.getLogger(__name__)

U8 = NDArray[np.uint8]
F32 = NDArray[np.float32]

DARK_FRACTION = 0.65  # coarse: darker than this fraction of the backlight is an object
BACKGROUND_SCALE = 8  # the backlight is estimated at 1/8 resolution
STAGE_BAND_FRACTION = 0.1  # outer columns (each side) in which the stage top is fitted
MIN_TABLET_RISE_PX = 4  # a column whose dark run rises this far above the stage is tablet
MIN_PIECE_PIXELS = 3  # smaller dark specks on the tablet top are noise, not droplet
MIN_DROPLET_ROWS = 2  # a droplet spans at least this many rows (one row is the tablet's edge)
MIN_PIECE_HEIGHT_PX = 4  # lower pieces apart from the main one are strips along the tablet edge
MIN_SLOPE_SPAN_PX = 120  # an edge's own slope is fitted only over at least this many columns
ROW_FILL_CLEARANCE_PX = 2.5  # rows filled only this far above the tablet top
NEEDLE_WIDENING = 1.5  # the droplet starts where the blob is this much wider than the needle
_VERSION = "classical-1"


class ClassicalSegmenter:
    """Threshold-and-geometry segmenter (Segmenter protocol): droplet 1, tablet 2, else 0."""

    name = "classical"
    version = _VERSION

    def __init__(self, dark_fraction: float = DARK_FRACTION, refine_edges: bool = True) -> None:
        self.dark_fraction = dark_fraction
        self.refine_edges = refine_edges

    def segment(self, image: U8) -> Segmentation:
        grey = to_grey(image)
        rows, cols = grey.shape
        labels = np.zeros((rows, cols), dtype=np.uint8)
        smooth = np.asarray(cv2.GaussianBlur(grey, (3, 3), 0), dtype=np.uint8)
        background = estimate_backlight(smooth)
        dark = _dark(smooth, background, self.dark_fraction)
        lines = self._tablet_lines(smooth, background, dark)
        if lines is None:
            return Segmentation(labels)
        base_y, top_y, (c0, c1) = lines
        y_centres = np.arange(rows, dtype=np.float64)[:, None] + 0.5
        r0 = max(math.floor(min(top_y[c0:c1].min(), base_y[c0:c1].min())) - 1, 0)
        r1 = min(math.ceil(base_y[c0:c1].max()) + 1, rows)
        band = (y_centres[r0:r1] >= top_y[None, c0:c1]) & (y_centres[r0:r1] < base_y[None, c0:c1])
        tablet = np.zeros((rows, cols), dtype=bool)
        tablet[r0:r1, c0:c1] = band & dark[r0:r1, c0:c1].astype(bool)
        # Above the tablet top (and clear of it), only over the tablet's columns: the droplet
        # stands on the tablet; computing these over the whole frame would double the cost.
        ra = min(math.ceil(top_y[c0:c1].max()) + 1, rows)
        above = np.zeros((rows, cols), dtype=bool)
        high = np.zeros((rows, cols), dtype=bool)
        above[:ra, c0:c1] = y_centres[:ra] < top_y[None, c0:c1]
        high[:ra, c0:c1] = y_centres[:ra] < top_y[None, c0:c1] - ROW_FILL_CLEARANCE_PX
        droplet = _droplet(dark, above, high, tablet, top_y, (c0, c1))
        if self.refine_edges and droplet is not None:
            droplet = _refine(smooth, background, droplet, tablet, above, high)
        labels[tablet] = LABEL_TABLET
        if droplet is not None:
            labels[droplet] = LABEL_DROPLET
        return Segmentation(labels, tablet_top=_as_line(top_y), tablet_bottom=_as_line(base_y))

    def _tablet_lines(
        self, smooth: U8, background: F32, dark: U8
    ) -> tuple[NDArray[np.float64], NDArray[np.float64], tuple[int, int]] | None:
        """Per column, the image y of the stage top and of the tablet top, and the tablet's
        column span (with a small margin); None when no stage or no tablet is found."""
        rows, cols = dark.shape
        top_run = _bottom_run_top(dark)
        stage = _stage_line(top_run, rows)
        if stage is None:
            logger.debug("no stage found: no bottom band of dark columns at both sides")
            return None
        intercept, slope = stage
        xs = np.arange(cols, dtype=np.float64) + 0.5
        base_y = intercept + slope * xs
        rise = base_y - top_run
        tablet_cols = _tablet_columns(rise)
        if tablet_cols is None:
            logger.debug("no tablet found: no run of columns rising above the stage")
            return None
        left, right = tablet_cols
        tablet_rise = _tablet_rise(rise[left : right + 1])
        top_y = base_y - tablet_rise
        if self.refine_edges:
            intercept, slope = refine_edge_line(
                smooth, background, intercept, slope, _stage_columns(cols), 0.0
            )
            base_y = intercept + slope * xs
            trim = max(int(0.03 * (right - left)), 3)
            inner = np.arange(left + trim, right - trim + 1)
            flat = inner[base_y[inner] - top_run[inner] <= tablet_rise + 1.5]  # no droplet on them
            top, top_slope = refine_edge_line(smooth, background, intercept, slope, flat, tablet_rise)
            top_y = top + top_slope * xs
        return base_y, top_y, (max(left - 4, 0), min(right + 5, cols))


def _as_line(per_column_y: NDArray[np.float64]) -> Line:
    """The straight line y = a + b x that per-column values at the column centres lie on."""
    x0, x1 = 0.5, per_column_y.size - 0.5
    slope = float(per_column_y[-1] - per_column_y[0]) / (x1 - x0) if per_column_y.size > 1 else 0.0
    return Line(float(per_column_y[0]) - slope * x0, slope)


def estimate_backlight(grey: U8) -> F32:
    """Backlight grey level behind every pixel, at full resolution (float32).

    Bright pixels are those near the local maximum and not far below the frame's bright
    level; their normalised convolution at growing scales extends the backlight under the
    silhouettes (the stage and a large tablet are wider than any local window)."""
    rows, cols = grey.shape
    size = (max(cols // BACKGROUND_SCALE, 1), max(rows // BACKGROUND_SCALE, 1))
    small = np.asarray(cv2.resize(grey, size, interpolation=cv2.INTER_AREA), dtype=np.float32)
    reach = max(3, (min(size) // 4) | 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (reach, reach))
    brightest = np.asarray(cv2.dilate(small, kernel), dtype=np.float32)
    level = float(np.percentile(small, 99))
    bright = ((small > 0.8 * brightest) & (small > 0.45 * level)).astype(np.float32)
    estimate = np.full(small.shape, level, dtype=np.float32)
    unknown = np.ones(small.shape, dtype=bool)
    for box in (5, 15, 45):  # box filters: constant cost whatever their size
        weight = np.asarray(cv2.blur(bright, (box, box)), dtype=np.float32)
        total = np.asarray(cv2.blur(small * bright, (box, box)), dtype=np.float32)
        known = unknown & (weight > 0.02)
        estimate[known] = total[known] / weight[known]
        unknown &= ~known
        if not unknown.any():
            break
    return np.asarray(cv2.resize(estimate, (cols, rows), interpolation=cv2.INTER_LINEAR), dtype=np.float32)


def _dark(grey: U8, background: F32, fraction: float) -> U8:
    """0/1 mask of pixels darker than ``fraction`` of their backlight, specks removed."""
    dark = (grey < fraction * background).view(np.uint8)
    kernel = np.ones((3, 3), np.uint8)
    dark = np.asarray(cv2.morphologyEx(dark, cv2.MORPH_OPEN, kernel), dtype=np.uint8)
    return np.asarray(cv2.morphologyEx(dark, cv2.MORPH_CLOSE, kernel), dtype=np.uint8)


def _bottom_run_top(dark: U8) -> NDArray[np.float64]:
    """Per column, the image y of the top of the dark run that reaches the bottom edge."""
    rows = dark.shape[0]
    # 1 + the lowest bright row (0 when the whole column is dark): a max over rows, which
    # numpy vectorises along the contiguous rows (an argmax along columns does not).
    numbers = np.arange(1, rows + 1, dtype=np.uint16)[:, None]
    return np.max((1 - dark).astype(np.uint16) * numbers, axis=0).astype(np.float64)


def _stage_line(top: NDArray[np.float64], rows: int) -> tuple[float, float] | None:
    """(intercept, slope) of the stage top y = a + b x from the outer columns, given each
    column's top of the bottom dark run; None without a stage."""
    cols = top.size
    band = max(int(STAGE_BAND_FRACTION * cols), 4)
    sides = (np.arange(2, 2 + band), np.arange(cols - 2 - band, cols - 2))
    medians = [float(np.median(top[side])) for side in sides]
    if any(m >= rows - 1 or m <= 0 for m in medians):
        return None
    xs = np.concatenate(sides).astype(np.float64) + 0.5
    ys = top[np.concatenate(sides)]
    centres = [float(side.mean()) + 0.5 for side in sides]
    slope = (medians[1] - medians[0]) / (centres[1] - centres[0])
    intercept = medians[0] - slope * centres[0]
    for _ in range(2):
        keep = np.abs(ys - (intercept + slope * xs)) <= 3.0
        if np.count_nonzero(keep) < band // 2:
            return None
        slope, intercept = (float(c) for c in np.polyfit(xs[keep], ys[keep], 1))
    if abs(slope) > math.tan(math.radians(10.0)):
        return None
    return intercept, slope


def _stage_columns(cols: int) -> NDArray[np.int64]:
    """Columns at both sides of the frame where only the stage stands (no tablet)."""
    band = max(int(STAGE_BAND_FRACTION * cols), 4)
    return np.concatenate((np.arange(2, 2 + band), np.arange(cols - 2 - band, cols - 2)))


def refine_edge_line(
    grey: U8, background: F32, intercept: float, slope: float, columns: NDArray[np.int64], rise: float
) -> tuple[float, float]:
    """(intercept, slope) of the bright-above / dark-below edge near y = intercept - rise +
    slope x, placed where each column's profile crosses the mid-level between the backlight
    above and the object below (sub-pixel, by linear interpolation between pixel centres).
    The slope is refitted only when the columns span enough of the frame to pin it."""
    rows = grey.shape[0]
    if columns.size < 4:
        return intercept - rise, slope
    xs = columns.astype(np.float64) + 0.5
    guess = np.round(intercept - rise + slope * xs).astype(np.int64)
    offsets = np.arange(-6, 9)[:, None]
    row_index = np.clip(guess[None, :] + offsets, 0, rows - 1)
    profile = grey[row_index, columns[None, :]] / np.maximum(background[row_index, columns[None, :]], 1.0)
    bright = np.median(profile[:3], axis=0)
    dark = np.median(profile[8:11], axis=0)  # 2-4 px inside: the level at the edge (gloss included)
    mid = 0.5 * (bright + dark)
    below = profile < mid[None, :]
    k = np.argmax(below, axis=0)
    ok = below.any(axis=0) & (k >= 1) & (bright - dark > 0.2)
    if np.count_nonzero(ok) < 4:
        return intercept - rise, slope
    cols_ok = np.flatnonzero(ok)
    upper, lower = profile[k[ok] - 1, cols_ok], profile[k[ok], cols_ok]
    fraction = np.clip((upper - mid[ok]) / np.maximum(upper - lower, 1e-6), 0.0, 1.0)
    edge = row_index[k[ok] - 1, cols_ok] + 0.5 + fraction
    x_ok = xs[ok]
    fitted = float(np.median(edge - slope * x_ok))
    inliers = np.abs(edge - (fitted + slope * x_ok)) <= 1.5
    if np.count_nonzero(inliers) >= 8 and np.ptp(x_ok[inliers]) >= MIN_SLOPE_SPAN_PX:
        new_slope, new_intercept = np.polyfit(x_ok[inliers], edge[inliers], 1)
        return float(new_intercept), float(new_slope)
    return fitted, slope


def _tablet_columns(rise: NDArray[np.float64]) -> tuple[int, int] | None:
    """First and last column of the longest run of columns rising above the stage."""
    standing = rise >= MIN_TABLET_RISE_PX
    if not standing.any():
        return None
    edges = np.diff(np.concatenate(([0], standing.view(np.int8), [0])))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    longest = int(np.argmax(ends - starts))
    if ends[longest] - starts[longest] < 2 * MIN_TABLET_RISE_PX:
        return None
    return int(starts[longest]), int(ends[longest]) - 1


def _tablet_rise(rise: NDArray[np.float64]) -> float:
    """Tablet height above the stage (vertical px) from its columns' rise above the stage.

    A droplet or needle only ever adds to a column's rise, so the tablet is the lowest of:
    the plateau of the lowest risen columns, and the columns just inside either side (a
    wide, flat droplet can cover all but those)."""
    trim = max(int(0.03 * rise.size), 3)
    inner = rise[trim:-trim] if rise.size > 2 * trim + 8 else rise
    low = float(np.percentile(inner, 10))
    plateau = inner[np.abs(inner - low) <= 2.0]
    window = max(int(0.04 * inner.size), 4)
    estimates = [float(np.median(plateau)) if plateau.size else low]
    estimates += [float(np.median(inner[:window])), float(np.median(inner[-window:]))]
    return min(estimates)


def _droplet(
    dark: U8,
    above: NDArray[np.bool_],
    high: NDArray[np.bool_],
    tablet: NDArray[np.bool_],
    top_y: NDArray[np.float64],
    span: tuple[int, int],
) -> NDArray[np.bool_] | None:
    """The dark blob sitting on the tablet top, needle cut off and lens highlight filled."""
    c0, c1 = span
    r1 = math.ceil(top_y[c0:c1].max()) + 1
    candidate = dark[:r1, c0:c1].astype(bool) & above[:r1, c0:c1]
    # Components at half resolution (each cell: any of its 2x2 pixels), a quarter of the work;
    # the blob itself keeps full resolution (candidate pixels inside the chosen cells).
    h, w = candidate.shape
    padded = np.zeros((h + h % 2, w + w % 2), dtype=bool)
    padded[:h, :w] = candidate
    cells = (padded[0::2, 0::2] | padded[1::2, 0::2] | padded[0::2, 1::2] | padded[1::2, 1::2]).view(np.uint8)
    count, components, stats, _ = cv2.connectedComponentsWithStats(cells, connectivity=8)
    # Every component whose lowest row reaches the row just above the tablet top: a lens
    # highlight can split a small droplet into pieces that each stand on the tablet.
    touching = []
    for index in range(1, count):
        left, top, width, height, _ = (2 * int(v) for v in stats[index])
        floor = int(top_y[c0 + left : c0 + left + width].min()) - 2
        if top + height >= floor:
            touching.append(index)
    if not touching:
        return None
    largest = max(touching, key=lambda index: int(stats[index, cv2.CC_STAT_AREA]))
    # Other pieces count only when they are more than a strip along the tablet's edge.
    touching = [
        i for i in touching if i == largest or 2 * stats[i, cv2.CC_STAT_HEIGHT] >= MIN_PIECE_HEIGHT_PX
    ]
    chosen = np.isin(components, touching)
    blob = candidate & np.repeat(np.repeat(chosen, 2, axis=0), 2, axis=1)[:h, :w]
    if np.count_nonzero(blob) < MIN_PIECE_PIXELS:
        return None
    if any(stats[index, cv2.CC_STAT_TOP] == 0 for index in touching):
        blob = _cut_needle(blob)
    # Fill inside the blob's columns, from its top down to the tablet top (all that can change).
    x, y, w, h = cv2.boundingRect(blob.view(np.uint8))
    if h < MIN_DROPLET_ROWS:
        return None  # a dark line along the tablet's top edge, not a droplet
    droplet = np.zeros(dark.shape, dtype=bool)
    rows, cols = slice(y, r1), slice(c0 + x, c0 + x + w)
    droplet[rows, cols] = _fill(blob[y:, x : x + w], tablet[rows, cols], above[rows, cols], high[rows, cols])
    return droplet


def _fill(
    blob: NDArray[np.bool_], tablet: NDArray[np.bool_], above: NDArray[np.bool_], high: NDArray[np.bool_]
) -> NDArray[np.bool_]:
    """Close the lens highlight: rows filled (a highlight reaching the droplet's edge), then
    the holes of droplet and tablet together (a highlight reaching the tablet top is closed
    by it); the part above the tablet top is the droplet."""
    closed = (_fill_rows(blob & above, high) | tablet).view(np.uint8).copy()
    contours, _ = cv2.findContours(closed, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(closed, contours, -1, 1, thickness=cv2.FILLED)
    return closed.astype(bool) & above


def _fill_rows(mask: NDArray[np.bool_], where: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """Each row filled between its first and last set pixel, where ``where`` allows: a
    sessile cap's side view meets every row in one segment (for any contact angle), so a
    highlight that reaches the droplet's edge and splits it is closed. Rows along the
    tablet top are left out (``where``): a dotted dark line on the tablet's edge would be
    filled into a bar."""
    row_has: NDArray[np.bool_] = np.any(mask, axis=1)
    if not row_has.any():
        return mask
    width = mask.shape[1]
    first = np.argmax(mask, axis=1)
    last = width - 1 - np.argmax(mask[:, ::-1], axis=1)
    columns = np.arange(width)[None, :]
    filled = (columns >= first[:, None]) & (columns <= last[:, None]) & row_has[:, None]
    return mask | (filled & where)


def _cut_needle(blob: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """Remove a needle joined to the droplet: rows from the top edge down to where the blob
    becomes clearly wider than the needle."""
    widths = np.count_nonzero(blob, axis=1)
    rows_with = np.flatnonzero(widths)
    needle_width = float(np.median(widths[: max(3, min(10, rows_with.size // 4))]))
    wider = np.flatnonzero(widths > NEEDLE_WIDENING * needle_width + 2.0)
    if wider.size == 0:
        return np.zeros_like(blob)  # only a needle
    cut = blob.copy()
    cut[: int(wider[0])] = False
    return cut


def _refine(
    grey: U8,
    background: F32,
    droplet: NDArray[np.bool_],
    tablet: NDArray[np.bool_],
    above: NDArray[np.bool_],
    high: NDArray[np.bool_],
) -> NDArray[np.bool_]:
    """Move the droplet's edge to the mid-level between its own darkness and the backlight."""
    mask = droplet.view(np.uint8)
    x, y, w, h = cv2.boundingRect(mask)
    if w < 3 or h < 3:
        return droplet
    pad = 3
    rows, cols = droplet.shape
    r0, r1, c0, c1 = max(y - pad, 0), min(y + h + pad, rows), max(x - pad, 0), min(x + w + pad, cols)
    grey_roi = grey[r0:r1, c0:c1].astype(np.float32)
    light = background[r0:r1, c0:c1]
    ratio = grey_roi / np.maximum(light, 1.0)
    inside = droplet[r0:r1, c0:c1]
    level = float(np.percentile(ratio[inside], 20))
    threshold = 0.5 * (min(level, 0.6) + 1.0)
    kernel = np.ones((5, 5), np.uint8)
    near = np.asarray(cv2.dilate(inside.view(np.uint8), kernel), dtype=np.uint8).astype(bool)
    core = np.asarray(cv2.erode(inside.view(np.uint8), kernel), dtype=np.uint8).astype(bool)
    refined = core | (near & (ratio < threshold))
    result = np.zeros_like(droplet)
    window = (slice(r0, r1), slice(c0, c1))
    result[window] = _fill(refined, tablet[window], above[window], high[window])
    return result
