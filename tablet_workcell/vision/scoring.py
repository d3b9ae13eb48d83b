"""How well a segmentation matches the twin's exact labels: IoU and droplet area error.

One definition used by the training script (model card metrics), the benchmark and the
tests, so the numbers in the card, in ``bench/results`` and in the docs mean the same.

Aggregation (stated in the card and the benchmark output):

- *scored frames*: frames whose true droplet has at least ``MIN_DROPLET_PX`` pixels.
  On them: mean per-frame droplet IoU, pooled droplet IoU (sum of intersections over sum
  of unions), and the mean / 95th percentile / max of the absolute relative droplet
  area error |predicted px - true px| / true px.
- *small droplets* (1 to ``MIN_DROPLET_PX - 1`` true pixels, the last moments before the
  droplet vanishes): reported separately, as mean IoU and mean absolute area error in
  pixels, because a relative error of a few-pixel droplet says little.
- *no-droplet frames*: how many got droplet pixels anyway (``false_droplet_frames``: more
  than ``FALSE_DROPLET_PX`` predicted droplet pixels).
- tablet IoU: mean per frame over frames with a tablet, and pooled.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from tablet_workcell.vision.types import LABEL_DROPLET, LABEL_TABLET

MIN_DROPLET_PX = 300
FALSE_DROPLET_PX = 20


@dataclass(frozen=True)
class FrameScore:
    """Pixel counts of one frame: enough to pool IoUs and area errors over a set."""

    true_droplet_px: int
    predicted_droplet_px: int
    droplet_intersection_px: int
    droplet_union_px: int
    true_tablet_px: int
    tablet_intersection_px: int
    tablet_union_px: int

    @property
    def droplet_iou(self) -> float:
        return self.droplet_intersection_px / self.droplet_union_px if self.droplet_union_px else 1.0

    @property
    def tablet_iou(self) -> float:
        return self.tablet_intersection_px / self.tablet_union_px if self.tablet_union_px else 1.0

    @property
    def droplet_area_error(self) -> float:
        """Relative error of the droplet's pixel area (NaN without a true droplet)."""
        if self.true_droplet_px == 0:
            return float("nan")
        return (self.predicted_droplet_px - self.true_droplet_px) / self.true_droplet_px


def score_frame(predicted: NDArray[np.uint8], truth: NDArray[np.uint8]) -> FrameScore:
    """Compare a predicted label map with the exact one (same shape)."""
    if predicted.shape != truth.shape:
        raise ValueError(f"predicted labels {predicted.shape} and truth {truth.shape} differ in shape.")
    pd, td = predicted == LABEL_DROPLET, truth == LABEL_DROPLET
    pt, tt = predicted == LABEL_TABLET, truth == LABEL_TABLET
    return FrameScore(
        true_droplet_px=int(np.count_nonzero(td)),
        predicted_droplet_px=int(np.count_nonzero(pd)),
        droplet_intersection_px=int(np.count_nonzero(pd & td)),
        droplet_union_px=int(np.count_nonzero(pd | td)),
        true_tablet_px=int(np.count_nonzero(tt)),
        tablet_intersection_px=int(np.count_nonzero(pt & tt)),
        tablet_union_px=int(np.count_nonzero(pt | tt)),
    )


@dataclass(frozen=True)
class ScoreSummary:
    """The aggregated numbers (see the module docstring for the definitions)."""

    frames: int
    scored_frames: int  # true droplet >= min_droplet_px
    min_droplet_px: int
    mean_droplet_iou: float
    pooled_droplet_iou: float
    min_droplet_iou: float
    mean_abs_area_error: float
    p95_abs_area_error: float
    max_abs_area_error: float
    mean_area_error: float  # signed: bias towards over (+) or under (-) segmentation
    small_frames: int
    small_mean_droplet_iou: float
    small_mean_abs_area_error_px: float
    no_droplet_frames: int
    false_droplet_frames: int
    tablet_frames: int
    mean_tablet_iou: float
    pooled_tablet_iou: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else float("nan")


def summarise(scores: Iterable[FrameScore], min_droplet_px: int = MIN_DROPLET_PX) -> ScoreSummary:
    """Aggregate frame scores as the module docstring defines."""
    all_scores = list(scores)
    scored = [s for s in all_scores if s.true_droplet_px >= min_droplet_px]
    small = [s for s in all_scores if 0 < s.true_droplet_px < min_droplet_px]
    empty = [s for s in all_scores if s.true_droplet_px == 0]
    tablets = [s for s in all_scores if s.true_tablet_px > 0]
    errors = [abs(s.droplet_area_error) for s in scored]
    return ScoreSummary(
        frames=len(all_scores),
        scored_frames=len(scored),
        min_droplet_px=min_droplet_px,
        mean_droplet_iou=_mean([s.droplet_iou for s in scored]),
        pooled_droplet_iou=(
            sum(s.droplet_intersection_px for s in scored) / max(sum(s.droplet_union_px for s in scored), 1)
        ),
        min_droplet_iou=min((s.droplet_iou for s in scored), default=float("nan")),
        mean_abs_area_error=_mean(errors),
        p95_abs_area_error=float(np.percentile(errors, 95)) if errors else float("nan"),
        max_abs_area_error=max(errors, default=float("nan")),
        mean_area_error=_mean([s.droplet_area_error for s in scored]),
        small_frames=len(small),
        small_mean_droplet_iou=_mean([s.droplet_iou for s in small]),
        small_mean_abs_area_error_px=_mean([abs(s.predicted_droplet_px - s.true_droplet_px) for s in small]),
        no_droplet_frames=len(empty),
        false_droplet_frames=sum(1 for s in empty if s.predicted_droplet_px > FALSE_DROPLET_PX),
        tablet_frames=len(tablets),
        mean_tablet_iou=_mean([s.tablet_iou for s in tablets]),
        pooled_tablet_iou=(
            sum(s.tablet_intersection_px for s in tablets) / max(sum(s.tablet_union_px for s in tablets), 1)
        ),
    )
