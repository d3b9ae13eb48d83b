"""What the camera pipeline would report for a sessile-drop test: the twin's truth, measured.

Training the learned regime model, and testing the fits, on the twin's exact curves
would teach nothing about the real measurement, so this module degrades a
:class:`~tablet_workcell.twin.disintegration.DropletSeries` the way the per-frame
pipeline does (vision/pipeline.py): the droplet's lengths are read off a pixel grid (base
width and droplet height quantised to ``pixel_size_m`` after a Gaussian edge error of
about one pixel), the droplet volume is the spherical cap of the measured base width and
height, the side-view area carries about 1 % noise (mask edge pixels), a few frames are
rejected (NaN), and a droplet thinner than one pixel is no longer seen.

The tablet height is not quantised: the segmenters place the tablet's top and the
stage's top as sub-pixel lines over hundreds of columns (Segmentation.tablet_top /
tablet_bottom), and on the benchmark's rendered held-out tests its per-frame error had a
standard deviation of 0.3-1.2 um at 16-22 um pixels (0.02-0.07 px) around a constant
offset, which moved by up to 0.08 px when the droplet went. ``tablet_sigma_px`` and
``tablet_droplet_offset_px`` model that (the defaults and the training ranges somewhat
harsher than measured); a one-pixel error here would hide the swelling of a weakly
swelling blend (a few pixels in all) that the real pipeline resolves.

It is much faster than rendering and segmenting frames (a whole test in a millisecond),
so thousands of training series cost nothing; the benchmark still checks the analysis on
series measured by the real pipeline from rendered frames.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from tablet_workcell.twin.disintegration import DropletSeries
from tablet_workcell.twin.records import FloatArray

GoneAs = Literal["zero", "nan"]


@dataclass(frozen=True)
class ObservationNoise:
    """Measurement errors of the per-frame pipeline (SI units)."""

    pixel_size_m: float = 20e-6
    edge_sigma_px: float = 1.0  # one-sigma edge position error of the droplet's base width and height
    tablet_sigma_px: float = 0.1  # one-sigma per-frame error of the tablet height (sub-pixel lines)
    tablet_droplet_offset_px: float = 0.0  # tablet height offset while a droplet sits on the tablet
    area_relative_sigma: float = 0.01
    rejected_fraction: float = 0.01  # frames the pipeline rejects (NaN everywhere)
    gone_as: GoneAs = "zero"  # how a frame without a droplet is reported: 0 or NaN


@dataclass(frozen=True)
class ObservedSeries:
    """Per-frame measurements as the pipeline's collector hands them to the series analysis."""

    time_s: FloatArray
    droplet_area_m2: FloatArray
    droplet_volume_m3: FloatArray
    base_width_m: FloatArray
    droplet_height_m: FloatArray
    tablet_height_m: FloatArray


def observe(
    series: DropletSeries, rng: np.random.Generator, noise: ObservationNoise | None = None
) -> ObservedSeries:
    """Measure ``series`` with pixel quantisation, edge noise, area noise and rejected frames."""
    noise = noise or ObservationNoise()
    px = noise.pixel_size_m
    n = series.time_s.size

    def quantised(length_m: FloatArray) -> FloatArray:
        measured = length_m + rng.normal(0.0, noise.edge_sigma_px * px, n)
        return np.asarray(np.maximum(np.round(measured / px), 0.0) * px, dtype=np.float64)

    base = series.base_radius_m
    cap = base * np.tan(series.contact_angle_rad / 2.0)
    width = quantised(2.0 * base)
    height = quantised(cap)
    present = (series.volume_m3 > 0.0) & (height > 0.0) & (width > 0.0)
    half = width / 2.0
    volume = np.where(present, math.pi * height * (3.0 * half**2 + height**2) / 6.0, 0.0)
    area = np.where(present, series.side_area_m2 * (1.0 + rng.normal(0.0, noise.area_relative_sigma, n)), 0.0)
    tablet = series.tablet_height_m + rng.normal(0.0, noise.tablet_sigma_px * px, n)
    tablet = tablet + np.where(present, noise.tablet_droplet_offset_px * px, 0.0)
    gone_value = 0.0 if noise.gone_as == "zero" else math.nan
    width = np.where(present, width, gone_value)
    height = np.where(present, height, gone_value)
    volume = np.where(present, volume, gone_value)
    area = np.where(present, area, gone_value)

    rejected = rng.random(n) < noise.rejected_fraction
    arrays = [np.where(rejected, math.nan, a) for a in (area, volume, width, height, tablet)]
    return ObservedSeries(series.time_s.copy(), *arrays)
