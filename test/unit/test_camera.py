"""The simulated goniometer camera: exact masks, determinism, appearance variation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tablet_workcell.errors import WorkcellError
from tablet_workcell.twin.camera import (
    HELD_OUT_PARAMETERS,
    MASK_DROPLET,
    MASK_TABLET,
    RenderError,
    RenderSettings,
    appearance_ranges,
    random_appearance,
    render,
)
from tablet_workcell.twin.records import DropletScene

PIXEL = 20e-6


def scene(base_radius_m: float = 2e-3, angle_deg: float = 70.0, **kwargs: float | None) -> DropletScene:
    return DropletScene(8e-3, 3e-3, base_radius_m, math.radians(angle_deg), **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("angle_deg", [30.0, 60.0, 90.0, 120.0])
@pytest.mark.parametrize("base_radius_m", [1.0e-3, 1.8e-3])
def test_droplet_mask_area_matches_the_geometric_side_area(angle_deg: float, base_radius_m: float) -> None:
    settings = RenderSettings(noise_sigma=0.0)
    frame = render(scene(base_radius_m, angle_deg), settings, np.random.default_rng(0))
    assert frame.droplet_area_px == np.count_nonzero(frame.mask == MASK_DROPLET)
    assert frame.droplet_area_m2_from_mask == pytest.approx(frame.droplet_area_m2_true, rel=0.02)
    assert frame.droplet_area_m2_true == scene(base_radius_m, angle_deg).droplet_side_area_m2


def test_mask_area_is_exact_under_misalignment_and_odd_sizes() -> None:
    rng = np.random.default_rng(1)
    settings = RenderSettings(rotation_deg=1.3, offset_px=(7.3, -4.6), pixel_size_m=17.3e-6)
    for angle_deg in (25.0, 75.0, 140.0):
        frame = render(scene(1.37e-3, angle_deg), settings, rng)
        assert frame.droplet_area_m2_from_mask == pytest.approx(frame.droplet_area_m2_true, rel=0.02)


def test_tablet_mask_area_is_diameter_times_height() -> None:
    frame = render(scene(), RenderSettings(rotation_deg=-0.8), np.random.default_rng(0))
    tablet_px = np.count_nonzero(frame.mask == MASK_TABLET)
    assert tablet_px * PIXEL**2 == pytest.approx(8e-3 * 3e-3, rel=0.01)


def test_droplet_is_dark_with_a_bright_centre_on_a_bright_background() -> None:
    settings = RenderSettings(colour=False, noise_sigma=0.0, blur_sigma_px=0.0, specular_strength=0.6)
    frame = render(scene(), settings, np.random.default_rng(0))
    image, mask = frame.image.astype(float), frame.mask
    rows, cols = np.nonzero(mask == MASK_DROPLET)
    assert image[0, 0] > 150  # backlight
    assert np.percentile(image[mask == MASK_DROPLET], 10) < 60  # dark silhouette rim
    assert image[rows.min() + (rows.max() - rows.min()) // 2, int(cols.mean())] > 90  # lens highlight


def test_same_rng_state_gives_the_same_frame_and_different_seeds_differ() -> None:
    settings = RenderSettings(noise_sigma=2.0)
    first = render(scene(needle_tip_height_m=6e-3), settings, np.random.default_rng(5))
    again = render(scene(needle_tip_height_m=6e-3), settings, np.random.default_rng(5))
    other = render(scene(needle_tip_height_m=6e-3), settings, np.random.default_rng(6))
    assert np.array_equal(first.image, again.image) and np.array_equal(first.mask, again.mask)
    assert not np.array_equal(first.image, other.image)
    assert np.array_equal(first.mask, other.mask)  # noise never reaches the ground truth


def test_different_appearances_give_different_images_but_the_same_mask() -> None:
    rng = np.random.default_rng(2)
    frames = [render(scene(), RenderSettings(), rng)]
    frames += [render(scene(), random_appearance(rng, split), rng) for split in ("train", "test")]
    assert not np.array_equal(frames[0].image, frames[1].image)
    assert not np.array_equal(frames[1].image, frames[2].image)
    aligned = [render(scene(), RenderSettings(colour=False, background_level=b), rng) for b in (150.0, 220.0)]
    assert np.array_equal(aligned[0].mask, aligned[1].mask)


def test_colour_and_mono_shapes() -> None:
    rng = np.random.default_rng(0)
    colour = render(scene(), RenderSettings(width=320, height=240), rng)
    mono = render(scene(), RenderSettings(width=320, height=240, colour=False), rng)
    assert colour.image.shape == (240, 320, 3) and colour.image.dtype == np.uint8
    assert mono.image.shape == (240, 320) and mono.image.dtype == np.uint8
    assert colour.mask.shape == mono.mask.shape == (240, 320) and mono.mask.dtype == np.uint8


def test_droplet_at_the_frame_edge_is_clipped() -> None:
    settings = RenderSettings(centre_col=5.0)  # tablet axis 5 px from the left edge
    frame = render(scene(2e-3, 100.0, needle_tip_height_m=7e-3), settings, np.random.default_rng(0))
    assert 0 < frame.droplet_area_px < frame.droplet_area_m2_true / PIXEL**2 * 0.6
    assert np.any(frame.mask[:, 0] == MASK_DROPLET)
    far = render(scene(), RenderSettings(centre_col=5000.0), np.random.default_rng(0))
    assert far.droplet_area_px == 0 and not far.mask.any()


def test_no_droplet_renders_the_tablet_only() -> None:
    dry = DropletScene(8e-3, 3e-3, 0.0, 0.0, needle_tip_height_m=5e-3)
    frame = render(dry, RenderSettings(), np.random.default_rng(0))
    assert frame.droplet_area_px == 0 and frame.droplet_area_m2_true == 0.0
    assert set(np.unique(frame.mask)) == {0, MASK_TABLET}


def test_held_out_appearance_ranges_are_disjoint_and_respected() -> None:
    train, test = appearance_ranges("train"), appearance_ranges("test")
    assert {"background_level", "noise_sigma", "blur_sigma_px"} <= set(HELD_OUT_PARAMETERS)
    for name in HELD_OUT_PARAMETERS:
        (a0, a1), (b0, b1) = train[name], test[name]
        assert a1 < b0 or b1 < a0, name
    rng = np.random.default_rng(3)
    for split, ranges in (("train", train), ("test", test)):
        for _ in range(50):
            s = random_appearance(rng, split)  # type: ignore[arg-type]
            for name in ("background_level", "noise_sigma", "blur_sigma_px", "vignetting", "droplet_level"):
                low, high = ranges[name]
                assert low <= getattr(s, name) <= high, name
            for name, value in (("gradient", s.gradient_x), ("clutter_strength", s.clutter_strength)):
                low, high = ranges[name]
                assert low <= abs(value) <= high, name
    # Exposure included: the brightest test backlight stays below the dimmest training one.
    gain_low, gain_high = train["illumination_gain"]
    assert test["background_level"][1] * gain_high < train["background_level"][0] * gain_low


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"width": 0}, "width is 0"),
        ({"height": -5}, "height is -5"),
        ({"pixel_size_m": 0.0}, "pixel_size_m is 0.0"),
        ({"noise_sigma": -1.0}, "noise_sigma"),
        ({"tint_bgr": (1.0, 0.0, 1.0)}, "tint_bgr"),
        ({"blur_sigma_px": float("nan")}, "finite"),
    ],
)
def test_invalid_settings_raise_a_sentence_naming_the_value(kwargs: dict[str, object], words: str) -> None:
    with pytest.raises(RenderError, match=words) as caught:
        RenderSettings(**kwargs)  # type: ignore[arg-type]
    assert isinstance(caught.value, WorkcellError)


def test_invalid_scene_raises() -> None:
    with pytest.raises(RenderError, match="contact_angle"):
        render(scene(1e-3, 185.0), RenderSettings(), np.random.default_rng(0))
    with pytest.raises(RenderError, match="tablet_diameter_m"):
        render(DropletScene(-1.0, 3e-3, 1e-3, 1.0), RenderSettings(), np.random.default_rng(0))


def test_sensor_noise_reaches_every_colour_channel() -> None:
    clean = render(scene(), RenderSettings(noise_sigma=0.0), np.random.default_rng(0)).image.astype(float)
    noisy = render(scene(), RenderSettings(noise_sigma=3.0), np.random.default_rng(0)).image.astype(float)
    spread = (noisy - clean)[:100].reshape(-1, 3).std(axis=0)
    assert np.allclose(spread, 3.0, rtol=0.1)
