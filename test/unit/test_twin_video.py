"""Filming a twin sessile-drop test gives frames whose masks agree with the true series."""

from __future__ import annotations

import numpy as np
import pytest

from tablet_workcell.twin.camera import RenderSettings
from tablet_workcell.twin.experiment import ExperimentSpec, simulate_experiment
from tablet_workcell.twin.video import film


def test_filmed_masks_follow_the_true_droplet_area_and_regimes() -> None:
    truth = simulate_experiment(
        ExperimentSpec({"mcc": 0.6, "lactose": 0.35, "ccs": 0.05}, test_duration_s=8.0), 0
    )
    assert truth.droplet is not None
    settings = RenderSettings()
    frames = list(film(truth.droplet, settings, np.random.default_rng(0), stride=15))
    assert [f.index for f in frames] == list(range(0, truth.droplet.time_s.size, 15))
    pixel = settings.pixel_size_m
    for filmed in frames:
        # Within one pixel row along the droplet's base (the tablet top rarely falls on a row edge).
        row = 2 * truth.droplet.base_radius_m[filmed.index] * pixel
        assert filmed.frame.droplet_area_m2_from_mask == pytest.approx(
            filmed.droplet_area_m2, abs=row + 0.005 * filmed.droplet_area_m2 + 4 * pixel**2
        )
    assert {f.regime for f in frames} >= {1, 3}
    with pytest.raises(ValueError, match="stride 0 must be at least 1"):
        next(film(truth.droplet, settings, np.random.default_rng(0), stride=0))
