"""Random sessile-drop tests for training and judging the regime analysis, with a held-out split.

The learned regime model (vision/regime_model.py) is trained on measured twin series and
judged on tests it never saw: the ``"test"`` split draws its blends from material
families, and its porosities and droplet volumes from intervals, that the ``"train"``
split never uses. Both splits vary tablet geometry, strength, frame rate, record length
and measurement noise (twin/observation.py), so neither the model nor the fits can lean
on one set-up.

Record length (``records``): ``"mixed"`` (training and the regime benchmark): half the
tests run a fixed time (10-120 s, as an operator would set it), half stop 1.2-4 times the
absorption time after contact, which keeps the regime boundaries away from the record's
start and makes "5 % of the test duration" a demanding target; many of those records end
before the swelling has run its course. ``"node"``: as the cell's disintegration node
records with the graph's settings (config/workcell.yaml): until ``NODE_ABSORBED_MARGIN_S``
after the droplet is gone, at most ``NODE_MAX_DURATION_S``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

from tablet_workcell.twin.blend import Formulation
from tablet_workcell.twin.disintegration import DisintegrationError, DropletSeries, sessile_drop
from tablet_workcell.twin.observation import ObservationNoise, ObservedSeries, observe

Split = Literal["train", "test"]
Records = Literal["mixed", "node"]

FAMILIES: dict[Split, tuple[tuple[str, ...], ...]] = {
    "train": (
        ("lactose",),
        ("mcc",),
        ("mcc", "lactose"),
        ("mcc", "lactose", "ccs", "mgst"),
        ("lactose", "dcpa", "mgst"),
        ("mcc", "apap", "ccs"),
        ("dcpa", "ccs", "mgst"),
        ("mcc", "dcpa", "ssg"),
        ("apap", "lactose", "ssg", "mgst"),
        ("dcpa",),
    ),
    "test": (
        ("mcc", "lactose", "ssg", "mgst"),
        ("apap", "mcc", "ssg"),
        ("lactose", "dcpa", "ccs", "mgst"),
        ("mcc", "dcpa"),
        ("apap", "lactose"),
    ),
}
POROSITY: dict[Split, tuple[tuple[float, float], ...]] = {
    "train": ((0.06, 0.10), (0.12, 0.16), (0.18, 0.24)),
    "test": ((0.10, 0.12), (0.16, 0.18)),
}
DROPLET_VOLUME_M3: dict[Split, tuple[tuple[float, float], ...]] = {
    "train": ((2e-9, 4e-9), (5e-9, 8e-9)),
    "test": ((4e-9, 5e-9),),
}
DISINTEGRANTS = ("ccs", "ssg")
LUBRICANTS = ("mgst",)
FRAME_INTERVALS_S = (1 / 15, 1 / 30, 1 / 30, 1 / 60)
FIXED_DURATION_S = (10.0, 120.0)
RELATIVE_DURATION = (1.2, 4.0)
DURATION_LIMITS_S = (3.0, 180.0)
NODE_ABSORBED_MARGIN_S = 30.0  # config/workcell.yaml disintegration.absorbed_margin_s
NODE_MAX_DURATION_S = 120.0  # config/workcell.yaml disintegration.default_max_duration_s


@dataclass(frozen=True)
class DropCase:
    """One sessile-drop test: what was made, how it was filmed and measured."""

    fractions: dict[str, float]
    porosity: float
    tablet_diameter_m: float
    tablet_thickness_m: float
    tensile_strength_pa: float
    droplet_volume_m3: float
    duration_s: float
    frame_interval_s: float
    soluble_fraction: float
    noise: ObservationNoise = field(default_factory=ObservationNoise)

    def simulate(self) -> DropletSeries:
        blend = Formulation.of(self.fractions).properties
        return sessile_drop(
            blend,
            self.tablet_diameter_m,
            self.tablet_thickness_m,
            self.porosity,
            self.tensile_strength_pa,
            self.droplet_volume_m3,
            self.duration_s,
            self.frame_interval_s,
            soluble_fraction=self.soluble_fraction,
        )


def _uniform_from(rng: np.random.Generator, intervals: tuple[tuple[float, float], ...]) -> float:
    widths = np.array([b - a for a, b in intervals])
    a, b = intervals[int(rng.choice(len(intervals), p=widths / widths.sum()))]
    return float(rng.uniform(a, b))


def _fractions(rng: np.random.Generator, family: tuple[str, ...]) -> dict[str, float]:
    fractions: dict[str, float] = {}
    minor = 0.0
    for name in family:
        if name in DISINTEGRANTS:
            fractions[name] = float(rng.uniform(0.01, 0.08))
        elif name in LUBRICANTS:
            fractions[name] = float(rng.uniform(0.002, 0.02))
        else:
            continue
        minor += fractions[name]
    structural = [name for name in family if name not in fractions]
    shares = rng.dirichlet(np.full(len(structural), 2.0))
    for name, share in zip(structural, shares, strict=True):
        fractions[name] = float(share) * (1.0 - minor)
    return fractions


def random_case(
    rng: np.random.Generator, split: Split, records: Records = "mixed"
) -> tuple[DropCase, DropletSeries]:
    """A random valid test of ``split`` and its simulated series (redraws impossible geometry)."""
    families = FAMILIES[split]
    for _ in range(100):
        fractions = _fractions(rng, families[int(rng.integers(len(families)))])
        soluble = sum(f for name, f in fractions.items() if name in ("lactose", "apap"))
        case = DropCase(
            fractions=fractions,
            porosity=_uniform_from(rng, POROSITY[split]),
            tablet_diameter_m=float(rng.uniform(6e-3, 10e-3)),
            tablet_thickness_m=float(rng.uniform(1.0e-3, 2.5e-3)),
            tensile_strength_pa=float(rng.uniform(0.8e6, 4e6)),
            droplet_volume_m3=_uniform_from(rng, DROPLET_VOLUME_M3[split]),
            duration_s=float(rng.uniform(*FIXED_DURATION_S)),
            frame_interval_s=float(FRAME_INTERVALS_S[int(rng.integers(len(FRAME_INTERVALS_S)))]),
            soluble_fraction=soluble,
            noise=ObservationNoise(
                edge_sigma_px=float(rng.uniform(0.6, 1.4)),
                tablet_sigma_px=float(rng.uniform(0.03, 0.15)),
                tablet_droplet_offset_px=float(rng.normal(0.0, 0.05)),
                area_relative_sigma=float(rng.uniform(0.005, 0.015)),
                rejected_fraction=float(rng.uniform(0.0, 0.03)),
                gone_as="zero" if rng.random() < 0.5 else "nan",
            ),
        )
        relative = rng.random() < 0.5
        factor = float(rng.uniform(*RELATIVE_DURATION))
        try:
            probe = case.simulate() if relative or records == "node" else None
        except DisintegrationError:
            continue
        if records == "node" and probe is not None:
            absorbed = probe.absorption_time_s
            duration = NODE_MAX_DURATION_S
            if math.isfinite(absorbed):
                duration = min(absorbed + NODE_ABSORBED_MARGIN_S, NODE_MAX_DURATION_S)
            case = replace(case, duration_s=duration)
        elif probe is not None and math.isfinite(probe.absorption_time_s):
            duration = float(np.clip(factor * probe.absorption_time_s, *DURATION_LIMITS_S))
            case = replace(case, duration_s=duration)
        try:
            return case, case.simulate()
        except DisintegrationError:
            continue
    raise RuntimeError(f"no valid {split} case in 100 draws; the case ranges are inconsistent.")


def cases(
    seed: int, count: int, split: Split, records: Records = "mixed"
) -> Iterator[tuple[DropCase, DropletSeries, ObservedSeries]]:
    """``count`` tests of ``split`` from ``seed``: the case, its truth and its measured series.

    ``records="node"`` draws from the same ranges, filmed as the node films them (see the
    module doc); the measurement noise consumes the generator per frame, so a seed gives
    other tests than with ``"mixed"``.
    """
    rng = np.random.default_rng([seed, 0 if split == "train" else 1])
    for _ in range(count):
        case, series = random_case(rng, split, records)
        yield case, series, observe(series, rng, case.noise)
