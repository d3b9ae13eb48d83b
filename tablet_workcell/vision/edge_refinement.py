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
  under the droplet follows (:func:`~tablet_workcell.vision.segmentation.straighten_tablet_top`);
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
from tablet_workcell.vision.types import LABEL_BACKGROUND, LABEL_DROPLET, LABEL_TABLET

logger = logging.getLogger(__name__)

BAND_PX = 2  # pixels either side of the network's droplet boundary that are re-decided
DARK_PERCENTILE = 20.0  # the droplet's darkness: this percentile of its inner pixels' level
MIN_CONTRAST = 0.15  # a droplet paler than 1 - this (of the backlight) keeps the network's edge
MIN_DROPLET_PX = 300  # smaller droplets are mostly wedge and foot: the network's labels are kept
TABLET_CLEARANCE_PX = 2  # droplet-edge pixels this close to the tablet keep the network's label
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


def _grow(mask: NDArray[np.uint8], kernel: NDArray[np.uint8]) -> NDArray[np.bool_]:
    return np.asarray(cv2.dilate(mask, kernel), dtype=np.uint8).astype(bool)


def refine_droplet_edge(grey: NDArray[np.uint8], labels: NDArray[np.uint8], band_px: int = BAND_PX) -> None:
    """Re-place the droplet/background boundary of ``labels`` (in place) from the grey frame.

    ``grey`` is the frame the labels belong to (same shape). Only pixels within ``band_px``
    of the network's droplet boundary change, and only between droplet and background.
    """
    FrameEdges(grey).refine_droplet(labels, band_px)
