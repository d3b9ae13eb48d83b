"""A filmed sessile-drop test: rendered frames with their ground truth, frame by frame.

Joins the droplet series (physics) and the camera (rendering) so training-data
generators, the simulated camera and validation all walk a test the same way: each item
carries the frame, its per-pixel mask, and the true area, tablet height and regime at
that instant.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from tablet_workcell.twin.camera import RenderedFrame, RenderSettings, render
from tablet_workcell.twin.disintegration import DropletSeries


@dataclass(frozen=True)
class FilmedFrame:
    index: int
    time_s: float
    frame: RenderedFrame
    droplet_area_m2: float  # true side-view area at this instant
    tablet_height_m: float
    regime: int  # RegimeSegment.REGIME_* of the twin


def film(
    series: DropletSeries, settings: RenderSettings, rng: np.random.Generator, stride: int = 1
) -> Iterator[FilmedFrame]:
    """Render every ``stride``-th sample of ``series`` with the given camera settings."""
    if stride < 1:
        raise ValueError(f"stride {stride} must be at least 1 (every frame).")
    for index in range(0, series.time_s.size, stride):
        yield FilmedFrame(
            index=index,
            time_s=float(series.time_s[index]),
            frame=render(series.scene(index), settings, rng),
            droplet_area_m2=float(series.side_area_m2[index]),
            tablet_height_m=float(series.tablet_height_m[index]),
            regime=int(series.regime[index]),
        )
