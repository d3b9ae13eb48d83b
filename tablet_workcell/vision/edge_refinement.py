"""Full-resolution placement of the droplet's outer edge and the tablet's top for the low-resolution U-Net.

Why: the network runs at a quarter of the frame's resolution and its logits are upsampled
bilinearly, so its boundaries are right to about a pixel but not better, and the droplet's
volume comes from its side area: a one-pixel band around a small droplet is several percent
of it. The grey frame still has the edges at full resolution: a blurred step from the
backlight to a silhouette crosses the mid-level between the two at the true edge, whatever
the blur. So the network decides *which* pixels are droplet and tablet (needle, lens
highlight, reflections are its call) and :class:`FrameEdges` re-places two boundaries with
the classical baseline's own tools (:func:`~tablet_workcell.vision.classical.estimate_backlight`,
:func:`~tablet_workcell.vision.classical.refine_edge_line`):

- the tablet's visible top line (beside the droplet), which the droplet/tablet boundary
  under the droplet follows (:func:`~tablet_workcell.vision.segmentation.straighten_tablet_top`),
  and then the tablet's whole outline against the backlight and the stage
  (:meth:`FrameEdges.place_tablet`): its top in every interior column and its bottom on the
  stage's top line, found beside the tablet. The tablet height (the swelling) is the
  distance between the two, so both must come from the frame in every frame, with or
  without a droplet;
- the droplet's free edge against the backlight: only pixels within ``band_px`` of the
  network's boundary are re-decided, by thresholding the frame divided by the backlight
  behind it at the mid-level between 1 (backlight) and the droplet's own darkness. Pixels
  deeper inside (a lens highlight) stay droplet, pixels by the tablet keep the network's
  label (the contact line's thin wedge is no step edge), and a dark object the network
  calls background that reaches beyond the band (the needle) is not grown into.

Cost: one 3x3 blur and one backlight estimate of the frame (~0.4 ms on one core), then a
few array operations inside the droplet's bounding box and along the tablet's top.
"""

from __future__ import annotations

import logging

import cv2
import numpy as np
from numpy.typing import NDArray

from tablet_workcell.vision.classical import estimate_backlight, refine_edge_line
from tablet_workcell.vision.types import LABEL_BACKGROUND, LABEL_DROPLET, LABEL_TABLET, Line

logger = logging.getLogger(__name__)

BAND_PX = 2  # pixels either side of the network's droplet boundary that are re-decided
DARK_PERCENTILE = 20.0  # the droplet's darkness: this percentile of its inner pixels' level
MIN_CONTRAST = 0.15  # a droplet paler than 1 - this (of the backlight) keeps the network's edge
MIN_DROPLET_PX = 300  # smaller droplets are mostly wedge and foot: the network's labels are kept
TABLET_CLEARANCE_PX = 2  # droplet-edge pixels this close to the tablet keep the network's label
TABLET_MARGIN_PX = 4  # columns at the tablet's sides (and beside the droplet) left out of its lines
MIN_LINE_COLUMNS = 16  # fewer usable columns: that line stays as the network put it
STAGE_REACH_PX = 96  # columns either side of the tablet in which the stage's top edge is looked for
LINE_WINDOW_PX = 4  # rows either side of a placed line in which labels may change
_MIN_SIDE_PX = 3


class FrameEdges:
    """The grey frame's full-resolution edge evidence: smoothed frame and backlight behind it."""

    def __init__(self, grey: NDArray[np.uint8]) -> None:
        self.smooth = np.asarray(cv2.GaussianBlur(grey, (3, 3), 0), dtype=np.uint8)
        self.backlight = estimate_backlight(self.smooth)

    def top_line(self, columns: NDArray[np.int64], intercept: float, slope: float) -> tuple[float, float]:
        """(intercept, slope) of the bright-above/dark-below edge near y = intercept + slope x
        (frame pixel coordinates, x and y of pixel corners), measured in ``columns``."""
        return refine_edge_line(self.smooth, self.backlight, intercept, slope, columns, 0.0)

    def place_tablet(self, labels: NDArray[np.uint8]) -> tuple[Line, Line] | None:
        """Put the tablet label's top and bottom on the frame's edges, in every interior column (in place).

        Why: the tablet height is measured between the tablet label's top and bottom lines
        (measurement.py). The network places both to about a pixel, but not the same way in
        every frame: its bottom, between the dark tablet and the dark stage, wanders by
        +-0.5 px from frame to frame, and its top beside the droplet differs from the
        frame-placed top under it, so the measured height shifted by 0.5-1.5 px when the
        droplet shrank or went; the swelling fit read that as late swelling (k_s 16 % low on
        a held-out test). Both edges are visible against the backlight: the top beside the
        droplet, the stage's top beside the tablet (the tablet stands on it). Each is placed
        where the columns' profiles cross the mid-level between backlight and silhouette
        (sub-pixel), starting from the line through the network's edge rows; then, in the
        tablet's interior columns, pixels whose centres lie between the two lines are tablet
        (droplet pixels under the top line included), tablet pixels above the top line become
        droplet in the droplet's columns and background elsewhere, and tablet pixels below the
        stage line background (stage). A line with fewer than ``MIN_LINE_COLUMNS`` usable
        columns, or that the frame does not confirm, stays as the network put it.

        Returns the (top, bottom) lines it placed, at sub-pixel precision (the labels hold
        them to a pixel per column), or None when it left the tablet as it was.
        """
        tablet = labels == LABEL_TABLET
        has_tablet = tablet.any(axis=0)
        if np.count_nonzero(has_tablet) < MIN_LINE_COLUMNS + 2 * TABLET_MARGIN_PX:
            return None
        columns = np.arange(labels.shape[1])
        t0, t1 = (int(c) for c in np.flatnonzero(has_tablet)[[0, -1]])
        interior = has_tablet & (columns >= t0 + TABLET_MARGIN_PX) & (columns <= t1 - TABLET_MARGIN_PX)
        droplet_columns = (labels == LABEL_DROPLET).any(axis=0)
        beside_droplet = interior.copy()
        if droplet_columns.any():
            d0, d1 = np.flatnonzero(droplet_columns)[[0, -1]]
            beside_droplet &= (columns < d0 - TABLET_MARGIN_PX) | (columns > d1 + TABLET_MARGIN_PX)
        network_top = _line_through(columns[beside_droplet], np.argmax(tablet[:, beside_droplet], axis=0))
        last_rows = labels.shape[0] - np.argmax(tablet[::-1, interior], axis=0)
        bottom = _line_through(columns[interior], last_rows)
        if network_top is None or bottom is None:
            return None
        top = self.top_line(network_top[2], network_top[0], network_top[1])
        outside = (columns < t0 - TABLET_MARGIN_PX) & (columns >= t0 - STAGE_REACH_PX)
        outside |= (columns > t1 + TABLET_MARGIN_PX) & (columns <= t1 + STAGE_REACH_PX)
        stage = (bottom[0], bottom[1])
        if np.count_nonzero(outside) >= MIN_LINE_COLUMNS:
            stage = self.top_line(columns[outside], bottom[0], bottom[1])
        c_lo, c_hi = t0 + TABLET_MARGIN_PX, t1 - TABLET_MARGIN_PX + 1
        x = columns[c_lo:c_hi] + 0.5
        top_y, stage_y = top[0] + top[1] * x, stage[0] + stage[1] * x
        if not np.all(stage_y - top_y > 2 * LINE_WINDOW_PX):
            return None  # lines that cross or nearly touch: something else is wrong; keep the network's
        r_lo = max(int(np.floor(top_y.min())) - LINE_WINDOW_PX, 0)
        r_hi = min(int(np.ceil(stage_y.max())) + LINE_WINDOW_PX, labels.shape[0])
        window = labels[r_lo:r_hi, c_lo:c_hi]
        centres = np.arange(r_lo, r_hi, dtype=np.float64)[:, None] + 0.5
        above, below = centres < top_y[None, :], centres >= stage_y[None, :]
        near_top = np.abs(centres - top_y[None, :]) <= LINE_WINDOW_PX
        near_stage = np.abs(centres - stage_y[None, :]) <= LINE_WINDOW_PX
        is_tablet = window == LABEL_TABLET
        in_droplet = droplet_columns[None, c_lo:c_hi]
        window[above & near_top & is_tablet & in_droplet] = LABEL_DROPLET
        window[above & near_top & is_tablet & ~in_droplet] = LABEL_BACKGROUND
        window[~above & ~below & (near_top | near_stage)] = LABEL_TABLET
        window[below & near_stage & is_tablet] = LABEL_BACKGROUND
        return Line(*top), Line(*stage)

    def refine_droplet(self, labels: NDArray[np.uint8], band_px: int = BAND_PX) -> None:
        """Re-place the droplet/background boundary of ``labels`` (in place) at full resolution."""
        droplet = (labels == LABEL_DROPLET).view(np.uint8)
        x, y, w, h = cv2.boundingRect(droplet)
        if w < _MIN_SIDE_PX or h < _MIN_SIDE_PX or cv2.countNonZero(droplet) < MIN_DROPLET_PX:
            return
        rows, cols = labels.shape
        pad = 2 * band_px + 2
        r0, r1, c0, c1 = max(y - pad, 0), min(y + h + pad, rows), max(x - pad, 0), min(x + w + pad, cols)
        window = (slice(r0, r1), slice(c0, c1))
        ratio = self.smooth[window].astype(np.float32) / np.maximum(self.backlight[window], 1.0)
        box, inside = labels[window], droplet[window]
        kernel = np.ones((2 * band_px + 1, 2 * band_px + 1), np.uint8)
        near = _grow(inside, kernel)
        core = np.asarray(cv2.erode(inside, kernel), dtype=np.uint8).astype(bool)
        darkness = float(np.percentile(ratio[core if core.any() else inside.astype(bool)], DARK_PERCENTILE))
        if darkness > 1.0 - MIN_CONTRAST:
            logger.debug("droplet too pale for edge refinement (%.2f of the backlight)", darkness)
            return
        dark = ratio < 0.5 * (darkness + 1.0)
        clearance = np.ones((2 * TABLET_CLEARANCE_PX + 1, 2 * TABLET_CLEARANCE_PX + 1), np.uint8)
        band = near & ~core & ~_grow((box == LABEL_TABLET).view(np.uint8), clearance)
        background = box == LABEL_BACKGROUND
        blocked = _grow((dark & background & ~near).view(np.uint8), kernel)  # the needle
        box[band & dark & background & ~blocked] = LABEL_DROPLET
        box[band & ~dark & (box == LABEL_DROPLET)] = LABEL_BACKGROUND


def _line_through(
    columns: NDArray[np.int64], rows: NDArray[np.int64]
) -> tuple[float, float, NDArray[np.int64]] | None:
    """(intercept, slope, inlier columns) of the line through pixel-corner edge rows, one outlier pass."""
    if columns.size < MIN_LINE_COLUMNS:
        return None
    x, y = columns + 0.5, rows.astype(np.float64)
    slope, intercept = np.polyfit(x, y, 1)
    keep = np.abs(y - (intercept + slope * x)) < 1.5
    if np.count_nonzero(keep) < MIN_LINE_COLUMNS:
        return None
    slope, intercept = np.polyfit(x[keep], y[keep], 1)
    return float(intercept), float(slope), columns[keep]


def _grow(mask: NDArray[np.uint8], kernel: NDArray[np.uint8]) -> NDArray[np.bool_]:
    return np.asarray(cv2.dilate(mask, kernel), dtype=np.uint8).astype(bool)


def refine_droplet_edge(grey: NDArray[np.uint8], labels: NDArray[np.uint8], band_px: int = BAND_PX) -> None:
    """Re-place the droplet/background boundary of ``labels`` (in place) from the grey frame.

    ``grey`` is the frame the labels belong to (same shape). Only pixels within ``band_px``
    of the network's droplet boundary change, and only between droplet and background.
    """
    FrameEdges(grey).refine_droplet(labels, band_px)
