"""Overlay image for operators: what the analysis saw, drawn over the frame it saw it in.

Why: a number alone (an angle, an area) cannot be trusted at a glance; the droplet and
tablet contours, the baseline and the contact-angle tangents over the live frame show
immediately whether the segmentation followed the droplet or a reflection.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
from numpy.typing import NDArray

from tablet_workcell.vision.measurement import DropletGeometry, measure_geometry
from tablet_workcell.vision.types import LABEL_DROPLET, LABEL_TABLET, FrameAnalysis, FrameStatus

DROPLET_BGR = (255, 255, 0)
TABLET_BGR = (0, 200, 255)
BASELINE_BGR = (0, 255, 0)
TANGENT_BGR = (255, 0, 255)
TEXT_OK_BGR = (0, 160, 0)
TEXT_BAD_BGR = (0, 0, 255)
TANGENT_LENGTH_PX = 60.0


def draw_overlay(image: NDArray[np.uint8], analysis: FrameAnalysis) -> NDArray[np.uint8]:
    """A BGR copy of ``image`` with contours, baseline, tangents and the numbers written on it."""
    if image.ndim == 2 or image.shape[2] == 1:
        canvas = np.asarray(cv2.cvtColor(image.reshape(image.shape[:2]), cv2.COLOR_GRAY2BGR), dtype=np.uint8)
    else:
        canvas = np.ascontiguousarray(image[:, :, :3]).copy()
    labels = analysis.labels
    if labels is not None and labels.shape == canvas.shape[:2]:
        for label, colour in ((LABEL_TABLET, TABLET_BGR), (LABEL_DROPLET, DROPLET_BGR)):
            contours, _ = cv2.findContours(
                (labels == label).view(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE
            )
            cv2.drawContours(canvas, contours, -1, colour, 1, cv2.LINE_AA)
        _draw_geometry(canvas, measure_geometry(labels, 1.0))
    _draw_text(canvas, analysis)
    return canvas


def _draw_geometry(canvas: NDArray[np.uint8], geometry: DropletGeometry) -> None:
    width = canvas.shape[1]
    if geometry.baseline is not None:
        line = geometry.baseline
        cv2.line(canvas, (0, round(line.y(0.0))), (width - 1, round(line.y(float(width)))), BASELINE_BGR, 1)
    for contact, angle, sign in (
        (geometry.contact_left, geometry.measurement.contact_angle_rad, 1.0),
        (geometry.contact_right, geometry.measurement.contact_angle_rad, -1.0),
    ):
        if not (math.isfinite(contact[0]) and math.isfinite(angle)):
            continue
        du, dv = sign * math.cos(angle), math.sin(angle)
        dx = du * geometry.axis_u[0] + dv * geometry.axis_v[0]
        dy = du * geometry.axis_u[1] + dv * geometry.axis_v[1]
        end = (contact[0] + TANGENT_LENGTH_PX * dx, contact[1] + TANGENT_LENGTH_PX * dy)
        cv2.line(
            canvas,
            (round(contact[0]), round(contact[1])),
            (round(end[0]), round(end[1])),
            TANGENT_BGR,
            1,
            cv2.LINE_AA,
        )


def _draw_text(canvas: NDArray[np.uint8], analysis: FrameAnalysis) -> None:
    m = analysis.measurement
    lines = [
        f"t {analysis.time_s:7.2f} s  {m.status.value}",
        f"area {m.droplet_area_m2 * 1e6:6.3f} mm2   angle {math.degrees(m.contact_angle_rad):5.1f} deg",
        f"base {m.base_width_m * 1e3:5.2f} mm   tablet {m.tablet_height_m * 1e3:5.3f} mm",
    ]
    if m.message:
        lines.append(m.message[:90])
    colour = TEXT_OK_BGR if m.status is FrameStatus.OK else TEXT_BAD_BGR
    for index, text in enumerate(lines):
        cv2.putText(canvas, text, (8, 20 + 18 * index), cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 1, cv2.LINE_AA)
