"""Labelled sessile-drop frames from the twin: the segmentation network's training and test data.

Why it exists: the droplet/tablet U-Net (``tablet_workcell.vision.segmentation``) is
trained on rendered frames and judged on frames it never saw, so both sets must come from
one reproducible generator that covers the whole test: the droplet spreading under the
needle, absorbing on a pinned base, the tablet swelling, the base receding, the small
droplet of the last moments before it vanishes, and frames with no droplet at all. Each
frame draws its own blend, tablet geometry, droplet volume, instant and magnification;
its appearance comes from :func:`tablet_workcell.twin.appearance.random_appearance`, whose
``split="test"`` intervals (lighting, contrast, noise, blur, background) are disjoint from
``split="train"``: the held-out set is *unseen appearance*, not just unseen seeds.

Everything is a function of ``(seed, split, count)``: the same call gives the same frames
on any machine (numpy's PCG64 and OpenCV's seeded noise), which is what lets the model card
name its training data by generator and seed. Geometry is drawn from one random stream and
appearance from another, so the train and test splits of one seed share scene geometry
statistics but never a camera setup.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from tablet_workcell.twin.appearance import Split, random_appearance
from tablet_workcell.twin.blend import Formulation
from tablet_workcell.twin.camera import render
from tablet_workcell.twin.disintegration import DisintegrationError, DropletSeries, sessile_drop

logger = logging.getLogger(__name__)

Phase = Literal["spreading", "absorbing", "late", "none"]
PHASES: tuple[Phase, ...] = ("spreading", "absorbing", "late", "none")
# How often each phase is drawn: the late, small droplets are the hard frames (few
# pixels, area error dominated by the edge), so they are over-represented.
PHASE_PROBABILITIES = (0.06, 0.52, 0.32, 0.10)

HELD_OUT_SEED = 20_505  # the benchmark's and the model card's held-out set
HELD_OUT_COUNT = 240
SAMPLES_PER_SERIES = 2_001  # time resolution of one simulated test

# Scene ranges (SI). The field of view is 640 px x pixel size (10.2-14.1 mm).
PIXEL_SIZE_RANGE_M = (16e-6, 22e-6)
TABLET_DIAMETER_RANGE_M = (5e-3, 8.5e-3)
TABLET_THICKNESS_RANGE_M = (0.8e-3, 2.6e-3)
POROSITY_RANGE = (0.06, 0.25)
TENSILE_STRENGTH_RANGE_PA = (0.8e6, 4e6)
DROPLET_VOLUME_RANGE_M3 = (1e-9, 8e-9)
MAX_UNABSORBED_DURATION_S = 90.0
COLOUR_PROBABILITY = 0.7


@dataclass(frozen=True, eq=False)
class LabelledFrame:
    """One rendered frame with its exact labels (0 background, 1 droplet, 2 tablet) and truths."""

    image: NDArray[np.uint8]  # HxWx3 BGR or HxW mono
    labels: NDArray[np.uint8]  # HxW
    droplet_area_px: int  # ground-truth droplet pixels (the mask's count)
    droplet_area_m2_true: float  # exact side area of the scene's spherical cap
    pixel_size_m: float
    time_s: float
    regime: int  # tablet_workcell.twin.disintegration.Regime
    phase: Phase


def random_fractions(rng: np.random.Generator) -> dict[str, float]:
    """A plausible direct-compression blend: filler(s), optionally a disintegrant and lubricant."""
    weights = {
        "microcrystalline_cellulose": rng.uniform(0.0, 1.0),
        "lactose_monohydrate": rng.uniform(0.0, 1.0) * (rng.random() < 0.8),
        "dicalcium_phosphate_anhydrous": rng.uniform(0.0, 1.0) * (rng.random() < 0.4),
        "paracetamol": rng.uniform(0.0, 0.5) * (rng.random() < 0.3),
    }
    if sum(weights.values()) < 0.05:
        weights["lactose_monohydrate"] = 1.0
    total = sum(weights.values())
    disintegrant = float(rng.uniform(0.0, 0.08)) if rng.random() < 0.7 else 0.0
    lubricant = float(rng.uniform(0.0, 0.01)) if rng.random() < 0.5 else 0.0
    scale = (1.0 - disintegrant - lubricant) / total
    fractions = {name: float(w) * scale for name, w in weights.items() if w > 0.0}
    if disintegrant > 0.0:
        name = "croscarmellose_sodium" if rng.random() < 0.5 else "sodium_starch_glycolate"
        fractions[name] = disintegrant
    if lubricant > 0.0:
        fractions["magnesium_stearate"] = lubricant
    return fractions


def random_series(rng: np.random.Generator) -> DropletSeries:
    """One simulated test with random blend, tablet and droplet, sampled finely enough that any
    instant (including the last frames of a vanishing droplet) can be picked."""
    fractions = random_fractions(rng)
    blend = Formulation.of(fractions).properties
    diameter = float(rng.uniform(*TABLET_DIAMETER_RANGE_M))
    thickness = float(rng.uniform(*TABLET_THICKNESS_RANGE_M))
    porosity = float(rng.uniform(*POROSITY_RANGE))
    strength = float(rng.uniform(*TENSILE_STRENGTH_RANGE_PA))
    volume = float(rng.uniform(*DROPLET_VOLUME_RANGE_M3))
    args = (blend, diameter, thickness, porosity, strength)
    # A probe run finds when the droplet is gone, so the fine run spans the whole test.
    for _ in range(8):
        try:
            probe = sessile_drop(*args, volume, MAX_UNABSORBED_DURATION_S, 0.25)
            break
        except DisintegrationError:
            volume *= 0.6  # spreads wider than the tablet: a smaller droplet fits
    else:  # pragma: no cover - 0.6**8 of the largest volume always fits a 5 mm tablet
        raise DisintegrationError(f"no droplet volume fits a {diameter * 1e3:.1f} mm tablet")
    end = probe.absorption_time_s if math.isfinite(probe.absorption_time_s) else MAX_UNABSORBED_DURATION_S
    duration = min(1.15 * end + 0.2, MAX_UNABSORBED_DURATION_S)
    return sessile_drop(*args, volume, duration, duration / (SAMPLES_PER_SERIES - 1))


def _pick_index(series: DropletSeries, phase: Phase, rng: np.random.Generator) -> int:
    """A sample index of ``series`` in the requested phase of the test."""
    time = series.time_s
    present = np.flatnonzero(series.base_radius_m > 0.0)
    last = int(present[-1]) if present.size else 0
    if phase == "spreading":
        t = rng.uniform(0.004, 0.3)  # needle still above the droplet until 0.3 s
    elif phase == "absorbing":
        t = rng.uniform(0.3, max(float(time[last]), 0.31))
    elif phase == "late":
        t = float(time[last]) * (1.0 - rng.uniform(0.0, 0.12) ** 1.5)
    else:
        if last + 1 < time.size:
            return int(rng.integers(last + 1, time.size))
        t = 0.0  # never absorbed in the record: the instant before the droplet lands
    return int(np.clip(np.searchsorted(time, t), 0, time.size - 1))


def generate_frames(count: int, seed: int, split: Split = "train") -> Iterator[LabelledFrame]:
    """Yield ``count`` labelled frames of random tests, each with a fresh camera appearance.

    Reproducible: a function of ``(count, seed, split)``; the first ``n`` frames of a longer
    run equal a run of ``n``. Raises ValueError for a negative count.
    """
    if count < 0:
        raise ValueError(f"count is {count}; ask for zero or more frames.")
    scene_seed, appearance_seed, noise_seed = np.random.SeedSequence(
        [seed, 0 if split == "train" else 1]
    ).spawn(3)
    scene_rng = np.random.default_rng(scene_seed)
    appearance_rng = np.random.default_rng(appearance_seed)
    noise_rng = np.random.default_rng(noise_seed)
    for _ in range(count):
        series = random_series(scene_rng)
        phase: Phase = PHASES[int(scene_rng.choice(len(PHASES), p=PHASE_PROBABILITIES))]
        index = _pick_index(series, phase, scene_rng)
        pixel_size = float(scene_rng.uniform(*PIXEL_SIZE_RANGE_M))
        settings = random_appearance(
            appearance_rng,
            split,
            pixel_size_m=pixel_size,
            colour=bool(appearance_rng.random() < COLOUR_PROBABILITY),
        )
        frame = render(series.scene(index), settings, noise_rng)
        yield LabelledFrame(
            image=frame.image,
            labels=frame.mask,
            droplet_area_px=frame.droplet_area_px,
            droplet_area_m2_true=frame.droplet_area_m2_true,
            pixel_size_m=pixel_size,
            time_s=float(series.time_s[index]),
            regime=int(series.regime[index]),
            phase=phase,
        )


def held_out_frames(count: int = HELD_OUT_COUNT, seed: int = HELD_OUT_SEED) -> list[LabelledFrame]:
    """The fixed held-out benchmark set: test-split appearance (unseen in training), fixed seed."""
    logger.debug("rendering %d held-out frames (seed %d)", count, seed)
    return list(generate_frames(count, seed, "test"))
