"""The learned regime model: a small 1-D convolutional net that labels a resampled series (onnxruntime).

Input contract (the card's ``input_contract``; :func:`regime_features` is the one
implementation the training script and the runtime share): the record [t0, t_end] is cut
into ``steps`` equal bins; each channel is the mean of the bin's valid frames (empty bins
interpolated), float32, shape [1, 12, steps], from a
:class:`~tablet_workcell.vision.series_inputs.PreparedSeries` (channels 0-8, what was
measured) and a :class:`PhysicsEstimate` (channels 9-11, what the series' fits say):

0. droplet volume / start volume (a gone droplet is 0);
1. droplet side area / start area;
2. tablet swelling (h - h_start) / h_start / 0.3 (0.3: a typical strain, keeps it O(1));
3. share of the bin's frames that were valid (1 when all were measured);
4. bin centre / duration (where in the record the bin lies);
5. log10(duration / 60 s) (the record's time scale; the same in every bin);
6. front depth / tablet thickness, the depth the absorbed volume implies through the
   wetting geometry (0 once the droplet is gone);
7. log10(L^2 / t / 1e-7 m^2/s), clipped to +-3: flat while capillarity dominates (L^2 = C
   t), rising once the swelling term takes over (the boundary is where L^2/t has grown to
   about 1.6 C), which a small network cannot easily derive from noisy volumes itself;
8. log10(d(L^2)/dt / 1e-7 m^2/s), smoothed over 5 bins, clipped to +-3, 0 once the droplet
   is gone: d(L^2)/dt = C + 2 v_s L starts at C and doubles exactly at the boundary;
9. log10(2 v_s L(t) / C) of the fitted Washburn model (series.py's primary absorption
   fit, L(t) from its C and v_s), clipped to +-3; -3 for a rigid tablet (v_s = 0) and 0
   without a fit. It crosses 0 where the physics baseline puts the boundary;
10. 1 after the droplet is gone (``regimes.droplet_gone_time_s``), 0 before, the bin that
    holds that instant the fraction of it after (0 everywhere when it never goes);
11. how well the fit determines v_s: -log10(relative standard error of v_s) / 3, clipped
    to [-1/3, 1] (-1/3: unknown, no fit or v_s = 0; 1: 0.1 %).

Why the fitted physics as input: with a capillary stage of a second the boundary is a
change of curvature of a noisy curve, which the fit locates from the whole record (C and
v_s are global) and a small network on resampled bins does not; a network without these
channels (version 1) missed the 5 % target on 8 % of held-out tests, where the fitted
boundary missed on 0.5 %. The network learns when to trust the fit (channel 11, and how
the measured channels agree with it) and where the measured curves say otherwise.

Output: logits [1, 3, steps] for ABSORPTION, SWELLING, COMPLETE. Decoding keeps the
physical order (regimes never go back): the monotone labelling with the highest summed
log-probability (a three-state Viterbi pass), so a flicker cannot create a spurious
boundary. SPREADING is the first 50 ms by definition and is not learned (it never fills
a bin of a record of seconds).

The card (``models/regime_segmentation.card.json``) ties the ONNX file to its SHA-256, data,
metrics and this contract; a file that does not match its card is refused
(:class:`~tablet_workcell.vision.types.ModelError`). The card has the segmentation card's
top-level keys (``card_format``, ``name``, ``version``, ``sha256``, ``file``,
``input_contract``, ``metrics``, ``training``) and the hash is
:func:`~tablet_workcell.vision.model_card.file_sha256`; it is read here rather than by
``model_card.load_card``, which checks a segmentation contract (a grey image in, three
pixel classes out).
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray

from tablet_workcell.vision import regimes
from tablet_workcell.vision.fits import SPREADING_END_S
from tablet_workcell.vision.imbibition import F64, front_depth_m
from tablet_workcell.vision.model_card import file_sha256
from tablet_workcell.vision.series_inputs import PreparedSeries
from tablet_workcell.vision.types import Fit, ModelError, RegimeInterval

logger = logging.getLogger(__name__)

CARD_FORMAT = 1
STEPS = 256
CHANNELS = (
    "volume",
    "area",
    "swelling",
    "valid",
    "position",
    "log_duration",
    "depth",
    "washburn",
    "uptake",
    "fit_balance",
    "fit_gone",
    "fit_certainty",
)
CLASSES = ("absorption", "swelling", "complete")
CLASS_REGIMES = (regimes.ABSORPTION, regimes.SWELLING, regimes.COMPLETE)
SWELLING_SCALE = 0.3
REFERENCE_DURATION_S = 60.0
WASHBURN_REFERENCE_M2_PER_S = 1e-7
UPTAKE_SMOOTHING_STEPS = 5
BALANCE_CLIP = 3.0
CERTAINTY_DECADES = 3.0
__all__ = [
    "CHANNELS",
    "CLASSES",
    "PhysicsEstimate",
    "RegimeCard",
    "RegimeModel",
    "file_sha256",
    "labels_to_regimes",
    "load_regime_card",
    "load_regime_model",
    "monotone_decode",
    "regime_features",
]
DEFAULT_MODEL = Path(__file__).resolve().parents[2] / "models" / "regime_segmentation.onnx"


@dataclass(frozen=True)
class PhysicsEstimate:
    """What the series' own fits say about its regimes: the input of channels 9-11.

    ``c_m2_per_s`` and ``v_s_m_per_s`` are the primary Washburn fit's (NaN without a fit),
    ``v_s_relative_error`` its one-sigma relative error (inf when unknown), ``gone_s`` when
    the droplet disappeared (NaN while it is still there).
    """

    c_m2_per_s: float
    v_s_m_per_s: float
    v_s_relative_error: float
    gone_s: float

    @classmethod
    def from_fit(cls, absorption: Fit | None, gone_s: float) -> PhysicsEstimate:
        """From series.py's primary absorption fit (``washburn``; None when it failed)."""
        if absorption is None:
            return cls(math.nan, math.nan, math.inf, gone_s)
        c = absorption.value("C")
        if "v_s" not in absorption.parameter_names:
            return cls(c, 0.0, math.inf, gone_s)
        v_s = absorption.value("v_s")
        error = absorption.standard_errors[absorption.parameter_names.index("v_s")]
        relative = error / v_s if v_s > 0 and math.isfinite(error) else math.inf
        return cls(c, v_s, relative, gone_s)

    @classmethod
    def from_fits(cls, fits: tuple[Fit, ...], gone_s: float) -> PhysicsEstimate:
        """From the fits of a SeriesAnalysis (its ``washburn`` fit of the droplet volume)."""
        primary = next((f for f in fits if (f.model, f.series) == ("washburn", "droplet_volume")), None)
        return cls.from_fit(primary, gone_s)

    def channels(self, centres: F64, bin_width_s: float) -> tuple[F64, F64, F64]:
        """(balance, gone, certainty) at the bin centres (time since contact)."""
        steps = centres.size
        c, v_s = self.c_m2_per_s, self.v_s_m_per_s
        if not c > 0:
            balance = np.zeros(steps)
        elif not v_s > 0:
            balance = np.full(steps, -BALANCE_CLIP)
        else:
            depth = front_depth_m(centres, c, v_s)
            ratio = np.maximum(2.0 * v_s * depth / c, 10.0**-BALANCE_CLIP)
            balance = np.clip(np.log10(ratio), -BALANCE_CLIP, BALANCE_CLIP)
        if math.isfinite(self.gone_s):
            gone = np.clip((centres - self.gone_s) / bin_width_s + 0.5, 0.0, 1.0)
        else:
            gone = np.zeros(steps)
        relative = self.v_s_relative_error
        decades = -math.log10(relative) if 0 < relative < math.inf else -1.0
        certainty = np.full(steps, min(max(decades, -1.0), CERTAINTY_DECADES) / CERTAINTY_DECADES)
        return balance, gone, certainty


def regime_features(
    prepared: PreparedSeries, physics: PhysicsEstimate, steps: int = STEPS
) -> NDArray[np.float32]:
    """The network input [12, steps] of one prepared record (see the module doc for the channels)."""
    t = prepared.time_s
    duration = float(t[-1] - t[0])
    edges = t[0] + duration * np.arange(steps + 1) / steps
    centres = 0.5 * (edges[:-1] + edges[1:])
    bins = np.clip(np.searchsorted(edges, t, side="right") - 1, 0, steps - 1)
    start = t >= t[0] + SPREADING_END_S
    volume = _binned(bins, _relative(prepared.volume_m3, start), centres)
    area = _binned(bins, _relative(prepared.area_m2, start), centres)
    swelling = (_binned(bins, _relative(prepared.tablet_height_m, start), centres) - 1.0) / SWELLING_SCALE
    valid = np.isfinite(prepared.volume_m3) | np.isfinite(prepared.area_m2)
    total = np.bincount(bins, minlength=steps).astype(np.float64)
    good = np.bincount(bins, weights=valid.astype(np.float64), minlength=steps)
    share = np.where(total > 0, good / np.maximum(total, 1.0), 1.0)
    position = (centres - t[0]) / duration
    log_duration = np.full(steps, math.log10(duration / REFERENCE_DURATION_S))
    depth = prepared.front_depth_m()
    present = prepared.volume_m3 > 0  # after the droplet is gone the depth is no longer measured
    depth = np.where(present, depth, np.nan)
    relative_depth = _binned(bins, depth / prepared.geometry.tablet_thickness_m, centres)
    elapsed = np.maximum(t - t[0], SPREADING_END_S)
    washburn = np.log10(np.maximum(depth**2 / elapsed, 1e-12) / WASHBURN_REFERENCE_M2_PER_S)
    washburn = np.clip(_binned(bins, np.where(start, washburn, np.nan), centres), -3.0, 3.0)
    uptake = _uptake(
        centres, _binned(bins, depth**2, centres), _binned(bins, np.where(present, 1.0, 0.0), centres)
    )
    balance, gone, certainty = physics.channels(centres, duration / steps)
    channels = [
        volume,
        area,
        swelling,
        share,
        position,
        log_duration,
        relative_depth,
        washburn,
        uptake,
        balance,
        gone,
        certainty,
    ]
    return np.nan_to_num(np.stack(channels), nan=0.0).astype(np.float32)


def _uptake(centres: F64, depth_squared: F64, present: F64) -> F64:
    """log10 of d(L^2)/dt = C + 2 v_s L (smoothed over UPTAKE_SMOOTHING_STEPS bins), 0 once gone.

    Linear in L, so it starts at C and doubles exactly where swelling takes over
    (2 v_s L = C): the boundary as a level crossing rather than a change of curvature.
    """
    rate = np.gradient(depth_squared, centres)
    kernel = np.ones(UPTAKE_SMOOTHING_STEPS) / UPTAKE_SMOOTHING_STEPS
    smooth = np.convolve(np.pad(rate, UPTAKE_SMOOTHING_STEPS // 2, mode="edge"), kernel, mode="valid")[
        : centres.size
    ]
    level = np.log10(np.maximum(smooth, 1e-12) / WASHBURN_REFERENCE_M2_PER_S)
    return np.asarray(np.where(present > 0.5, np.clip(level, -3.0, 3.0), 0.0), dtype=np.float64)


def _relative(values: F64, start: NDArray[np.bool_]) -> F64:
    """Values / their start level (median of the first 10 valid after spreading)."""
    finite = np.isfinite(values)
    early = values[finite & start][:10]
    level = float(np.median(early)) if early.size else math.nan
    if not level > 0:
        finite_values = values[finite]
        level = float(np.max(finite_values)) if finite_values.size else math.nan
    return values / level if level > 0 else np.full(values.shape, np.nan)


def _binned(bins: NDArray[np.int64], values: F64, centres: F64) -> F64:
    """Mean of the finite values in each bin; empty bins interpolated from their neighbours."""
    finite = np.isfinite(values)
    steps = centres.size
    if not finite.any():
        return np.zeros(steps)
    sums = np.bincount(bins[finite], weights=values[finite], minlength=steps)
    counts = np.bincount(bins[finite], minlength=steps)
    filled = counts > 0
    means = sums[filled] / counts[filled]
    return np.asarray(np.interp(centres, centres[filled], means), dtype=np.float64)


def monotone_decode(log_probabilities: NDArray[np.float32] | F64) -> NDArray[np.int64]:
    """Class per step maximising the summed log-probability under non-decreasing classes."""
    scores = np.asarray(log_probabilities, dtype=np.float64)  # [classes, steps]
    classes, steps = scores.shape
    best = np.empty_like(scores)
    came = np.zeros((classes, steps), dtype=np.int64)
    best[:, 0] = scores[:, 0]
    for k in range(1, steps):
        prefix = np.maximum.accumulate(best[:, k - 1])
        came[:, k] = [int(np.argmax(best[: c + 1, k - 1])) for c in range(classes)]
        best[:, k] = prefix + scores[:, k]
    labels = np.empty(steps, dtype=np.int64)
    labels[-1] = int(np.argmax(best[:, -1]))
    for k in range(steps - 1, 0, -1):
        labels[k - 1] = came[labels[k], k]
    return labels


def labels_to_regimes(time_s: F64, classes: NDArray[np.int64]) -> tuple[RegimeInterval, ...]:
    """Per-step classes -> ordered regime intervals (boundaries at bin edges) with SPREADING prepended.

    A later regime found in the first bin starts when spreading ends, not before: the
    first bin of a long record is longer than the spreading stage, and spreading is not
    learned (capillarity always dominates the first instants, C/(2L) grows without bound
    as L -> 0).
    """
    t = np.asarray(time_s, dtype=np.float64)
    start, end = float(t[0]), float(t[-1])
    spreading_end = start + SPREADING_END_S
    steps = classes.size
    bounds = []
    for regime in (regimes.SWELLING, regimes.COMPLETE):
        hits = np.flatnonzero(np.asarray(CLASS_REGIMES)[classes] >= regime)
        bounds.append(max(start + (end - start) * hits[0] / steps, spreading_end) if hits.size else math.inf)
    return regimes.intervals_from_boundaries(start, end, (spreading_end, *bounds))


@dataclass(frozen=True)
class RegimeCard:
    """The regime model's card: name, version, file hash and the free-form rest."""

    name: str
    version: str
    sha256: str
    steps: int
    raw: dict[str, Any]


def load_regime_card(card_path: Path) -> RegimeCard:
    """Read the card and check that its input contract is the one this runtime implements."""
    try:
        data = json.loads(card_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(
            f"regime model card {card_path} does not exist; restore it or run training/train_regimes.py."
        ) from None
    except (OSError, json.JSONDecodeError) as error:
        raise ModelError(
            f"regime model card {card_path} cannot be read ({error}); restore the shipped card."
        ) from None
    contract = data.get("input_contract", {}) if isinstance(data, dict) else {}
    if not isinstance(data, dict) or data.get("card_format") != CARD_FORMAT:
        raise ModelError(
            f"regime model card {card_path} is not a format-{CARD_FORMAT} card; restore the shipped one."
        )
    if tuple(contract.get("channels", ())) != CHANNELS or tuple(contract.get("classes", ())) != CLASSES:
        raise ModelError(
            f"regime model card {card_path} describes channels {contract.get('channels')!r} and classes "
            f"{contract.get('classes')!r}; this runtime feeds {CHANNELS} and reads {CLASSES}. Retrain."
        )
    steps = contract.get("steps")
    sha = data.get("sha256")
    if not isinstance(steps, int) or steps < 8 or not isinstance(sha, str) or len(sha) != 64:
        raise ModelError(f"regime model card {card_path} lacks a valid 'steps' or 'sha256'; restore it.")
    return RegimeCard(
        str(data.get("name", "regime_segmentation")), str(data.get("version", "")), sha, steps, data
    )


class RegimeModel:
    """The ONNX regime model and its card, loaded and checked once, used for many series."""

    def __init__(self, model_path: Path = DEFAULT_MODEL) -> None:
        model_path = Path(model_path)
        self.card = load_regime_card(model_path.with_suffix(".card.json"))
        if not model_path.is_file():
            raise ModelError(
                f"regime model {model_path} does not exist; restore it or run training/train_regimes.py."
            )
        actual = file_sha256(model_path)
        if actual != self.card.sha256:
            raise ModelError(
                f"regime model {model_path} has SHA-256 {actual[:12]}..., its card names "
                f"{self.card.sha256[:12]}...; the pair does not belong together: restore both or retrain."
            )
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        try:
            self._session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime raises its own untyped errors for corrupt files
            raise ModelError(f"regime model {model_path} cannot be loaded by onnxruntime: {error}") from error
        self._input = self._session.get_inputs()[0].name
        self.name = self.card.name
        self.version = self.card.sha256
        self.steps = self.card.steps

    def class_log_probabilities(self, features: NDArray[np.float32]) -> F64:
        """Log-softmax of the logits for one feature block [12, steps] -> [3, steps]."""
        expected = (len(CHANNELS), self.steps)
        if features.shape != expected:
            raise ModelError(f"regime features have shape {features.shape}; the model takes {expected}.")
        logits = np.asarray(self._session.run(None, {self._input: features[None]})[0][0], dtype=np.float64)
        shifted = logits - logits.max(axis=0, keepdims=True)
        return np.asarray(shifted - np.log(np.exp(shifted).sum(axis=0, keepdims=True)), dtype=np.float64)

    def regimes(self, prepared: PreparedSeries, physics: PhysicsEstimate) -> tuple[RegimeInterval, ...]:
        """Regime intervals of one prepared series (series_inputs.prepare_series) and its fits."""
        features = regime_features(prepared, physics, self.steps)
        classes = monotone_decode(self.class_log_probabilities(features))
        return labels_to_regimes(prepared.time_s, classes)


def load_regime_model(model: object) -> RegimeModel:
    """A RegimeModel as is, or the model loaded (and checked against its card) from a path."""
    if isinstance(model, RegimeModel):
        return model
    if not isinstance(model, str | Path):
        raise ModelError(
            f"regime_model is a {type(model).__name__}; pass a RegimeModel or the path of its ONNX file."
        )
    return RegimeModel(Path(model))
