"""Regimes of a sessile-drop test: the physics baseline, completion detection and the boundary metric.

Regimes come in a fixed order (RegimeSegment.REGIME_*): SPREADING (the first 50 ms),
ABSORPTION (capillary uptake dominates, C/(2L) >= v_s), SWELLING (the swelling-driven
uptake dominates) and COMPLETE (no droplet left). Because the order is fixed, a labelling
is described by three boundary times, b_r = the first time a regime >= r holds (the
record's end when never), and the boundary error of a labelling is max_r |b_r - b_r*| as
a fraction of the record: one number that also covers a missing or spurious regime.

The baseline is a piecewise fit: the Washburn fit with the swelling term (fits.py) puts
the ABSORPTION/SWELLING boundary where the fitted capillary term equals the fitted
swelling velocity, t(L* = C / (2 v_s)), and COMPLETE starts when the measured droplet is
gone (:func:`droplet_gone_time_s`). The learned alternative is regime_model.py.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import numpy as np

from tablet_workcell.vision.fits import SPREADING_END_S
from tablet_workcell.vision.imbibition import F64, boundary_time_s
from tablet_workcell.vision.types import RegimeInterval

logger = logging.getLogger(__name__)

SPREADING = 0
ABSORPTION = 1
SWELLING = 2
COMPLETE = 3
REGIME_NAMES = {SPREADING: "spreading", ABSORPTION: "absorption", SWELLING: "swelling", COMPLETE: "complete"}
GONE_FRACTION = 0.02  # a droplet below 2 % of its start volume counts as gone (a few pixels tall)
GONE_CONFIRM_SAMPLES = 3  # this many finite samples in a row must agree that it is gone
GONE_MAJORITY = 0.9  # and this share of all finite samples after it (a stray detection is tolerated)
SLOPE_SAMPLES = 6


def droplet_gone_time_s(time_s: F64, amount: F64, start_amount: float | None = None) -> float:
    """When the droplet disappears: interpolated time at which ``amount`` (volume or area) reaches 0.

    Robust to rejected (NaN) frames and to noise: the droplet counts as gone from the
    first sample after which GONE_CONFIRM_SAMPLES finite samples in a row and GONE_MAJORITY
    of all later finite samples lie below GONE_FRACTION of the start amount (a stray
    detection is tolerated). The time is that of the first empty (zero) sample of that
    tail, interpolated back along the decline of the last non-empty samples and clamped
    between the last seen and the first empty sample; a tail that never reads exactly 0
    uses its first small sample. A trailing run of NaN after a small last value also
    counts as gone (a pipeline that reports "no droplet" as NaN). NaN when the droplet is
    still there at the end of the record.
    """
    t = np.asarray(time_s, dtype=np.float64)
    y = np.asarray(amount, dtype=np.float64)
    finite = np.isfinite(y) & np.isfinite(t)
    if not finite.any():
        return math.nan
    start = (
        start_amount
        if start_amount is not None
        else float(np.median(y[finite][: min(10, int(finite.sum()))]))
    )
    if not start > 0:
        return math.nan
    index = np.flatnonzero(finite)
    values = y[index]
    small = values <= GONE_FRACTION * start
    gone_at = _confirmed_start(small)
    empty = None if gone_at is None else _confirmed_start(values[gone_at:] <= 0.0)
    if empty is None:
        last = index[-1]
        trailing = y.size - 1 - last
        if trailing >= GONE_CONFIRM_SAMPLES and values[-1] <= 0.25 * start:
            return _interpolate(t, y, index, index.size, float(t[last + 1]))
    if gone_at is None:
        return math.nan
    first = gone_at + empty if empty is not None else gone_at
    if first == 0:
        return float(t[index[0]])
    return _interpolate(t, y, index, first, float(t[index[first]]))


def _confirmed_start(flags: np.ndarray) -> int | None:
    """First position from which GONE_CONFIRM_SAMPLES flags in a row and GONE_MAJORITY of the rest hold."""
    if not flags.size:
        return None
    suffix_true = np.cumsum(flags[::-1])[::-1]
    suffix_count = np.arange(flags.size, 0, -1)
    for k in np.flatnonzero(flags):
        run = flags[k : k + GONE_CONFIRM_SAMPLES]
        if run.all() and suffix_true[k] >= GONE_MAJORITY * suffix_count[k]:
            return int(k)
    return None


def _interpolate(t: F64, y: F64, index: np.ndarray, gone_at: int, first_missing_s: float) -> float:
    """Extrapolate the last seen samples' decline to zero, within [last seen, first missing]."""
    seen = index[:gone_at][y[index[:gone_at]] > 0][-SLOPE_SAMPLES:]
    if seen.size == 0:
        return first_missing_s
    last_s = float(t[seen[-1]])
    if seen.size >= 2:
        slope, intercept = np.polyfit(t[seen], y[seen], 1)
        if slope < 0:
            return float(np.clip(-intercept / slope, last_s, first_missing_s))
    return 0.5 * (last_s + first_missing_s)


def baseline_regimes(
    time_s: F64, c_m2_per_s: float | None, v_s_m_per_s: float | None, gone_s: float
) -> tuple[RegimeInterval, ...]:
    """Regimes from the fitted C and v_s (boundary C/(2L) = v_s) and the droplet's disappearance."""
    t = np.asarray(time_s, dtype=np.float64)
    start, end = float(np.nanmin(t)), float(np.nanmax(t))
    swelling_s = math.inf
    if c_m2_per_s is not None and v_s_m_per_s is not None:
        swelling_s = boundary_time_s(c_m2_per_s, v_s_m_per_s)
    return intervals_from_boundaries(start, end, (SPREADING_END_S, swelling_s, gone_s))


def intervals_from_boundaries(
    start_s: float, end_s: float, boundaries_s: Sequence[float]
) -> tuple[RegimeInterval, ...]:
    """Intervals of the ordered regimes from b_1..b_3 (NaN or inf: never), clipped to the record."""
    clipped = [end_s if not math.isfinite(b) else min(max(b, start_s), end_s) for b in boundaries_s]
    for k in range(len(clipped) - 2, -1, -1):  # a later regime that has begun ends the earlier ones
        clipped[k] = min(clipped[k], clipped[k + 1])
    edges = [start_s, *clipped, end_s]
    return tuple(
        RegimeInterval(regime, edges[regime], edges[regime + 1])
        for regime in range(COMPLETE + 1)
        if edges[regime + 1] > edges[regime] or (regime == COMPLETE and edges[regime] < end_s)
    )


def boundary_times_s(regimes: Sequence[RegimeInterval], end_s: float) -> tuple[float, float, float]:
    """b_r for r = ABSORPTION, SWELLING, COMPLETE: first time a regime >= r holds (``end_s`` if never)."""
    result = []
    for regime in (ABSORPTION, SWELLING, COMPLETE):
        starts = [interval.start_s for interval in regimes if interval.regime >= regime]
        result.append(min(starts) if starts else end_s)
    return result[0], result[1], result[2]


def boundary_error(
    predicted: Sequence[RegimeInterval], truth: Sequence[RegimeInterval], start_s: float, end_s: float
) -> float:
    """Largest boundary displacement between two labellings, as a fraction of the record's duration."""
    duration = end_s - start_s
    if duration <= 0:
        raise ValueError(f"record duration {duration} s must be positive.")
    pairs = zip(boundary_times_s(predicted, end_s), boundary_times_s(truth, end_s), strict=True)
    return max(abs(p - q) for p, q in pairs) / duration


def intervals_from_labels(time_s: F64, labels: Sequence[int] | np.ndarray) -> tuple[RegimeInterval, ...]:
    """Contiguous intervals of per-sample labels, each ending where the next begins."""
    t = np.asarray(time_s, dtype=np.float64)
    values = np.asarray(labels).astype(int)
    result: list[RegimeInterval] = []
    begin = 0
    for k in range(1, values.size + 1):
        if k == values.size or values[k] != values[begin]:
            stop = float(t[k]) if k < values.size else float(t[-1])
            result.append(RegimeInterval(int(values[begin]), float(t[begin]), stop))
            begin = k
    return tuple(result)
