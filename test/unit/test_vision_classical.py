"""The classical OpenCV baseline segmenter on rendered twin frames."""

from __future__ import annotations

import math
import time

import cv2
import numpy as np
import pytest

from tablet_workcell.twin.appearance import Split, random_appearance
from tablet_workcell.twin.camera import RenderSettings, render
from tablet_workcell.twin.records import DropletScene
from tablet_workcell.vision.classical import ClassicalSegmenter
from tablet_workcell.vision.measurement import measure
from tablet_workcell.vision.types import LABEL_DROPLET, LABEL_TABLET, FrameStatus, Segmenter


def random_scene(rng: np.random.Generator) -> DropletScene:
    """A tablet with a droplet somewhere between spreading and nearly absorbed."""
    diameter = float(rng.uniform(6e-3, 10e-3))
    base = float(rng.uniform(0.6e-3, 0.45 * diameter))
    angle = math.radians(float(rng.uniform(20.0, 110.0)))
    height = float(rng.uniform(2e-3, 4e-3))
    apex = height + base * math.tan(angle / 2.0)
    needle = apex + float(rng.uniform(0.1e-3, 1.0e-3)) if rng.random() < 0.3 else None
    return DropletScene(diameter, height, base, angle, needle)


def iou(predicted: np.ndarray, truth: np.ndarray) -> tuple[int, int]:
    return int(np.count_nonzero(predicted & truth)), int(np.count_nonzero(predicted | truth))


@pytest.mark.parametrize(("split", "bound"), [("train", 0.98), ("test", 0.97)])
def test_iou_on_rendered_frames(split: Split, bound: float) -> None:
    rng = np.random.default_rng(11 if split == "train" else 12)
    segmenter = ClassicalSegmenter()
    droplet = [0, 0]
    tablet = [0, 0]
    per_frame = []
    for _ in range(24):
        settings = random_appearance(rng, split, colour=bool(rng.random() < 0.7))
        frame = render(random_scene(rng), settings, rng)
        labels = segmenter.segment(frame.image).labels
        assert labels.shape == frame.mask.shape and labels.dtype == np.uint8
        d = iou(labels == LABEL_DROPLET, frame.mask == LABEL_DROPLET)
        t = iou(labels == LABEL_TABLET, frame.mask == LABEL_TABLET)
        droplet = [droplet[0] + d[0], droplet[1] + d[1]]
        tablet = [tablet[0] + t[0], tablet[1] + t[1]]
        per_frame.append(d[0] / d[1])
    assert droplet[0] / droplet[1] > bound
    assert tablet[0] / tablet[1] > 0.98
    assert np.median(per_frame) > bound


def test_measurements_from_the_baseline_track_the_truth() -> None:
    rng = np.random.default_rng(3)
    segmenter = ClassicalSegmenter()
    for angle_deg in (30.0, 60.0, 95.0):
        scene = DropletScene(8e-3, 3e-3, 1.8e-3, math.radians(angle_deg))
        frame = render(scene, RenderSettings(rotation_deg=1.0, noise_sigma=2.0, blur_sigma_px=1.0), rng)
        m = measure(segmenter.segment(frame.image).labels, frame.pixel_size_m)
        assert m.status is FrameStatus.OK
        assert m.droplet_area_m2 == pytest.approx(scene.droplet_side_area_m2, rel=0.03)
        assert math.degrees(m.contact_angle_rad) == pytest.approx(angle_deg, abs=2.0)
        assert m.tablet_height_m == pytest.approx(3e-3, abs=frame.pixel_size_m)


def test_needle_joined_to_the_droplet_is_cut_off() -> None:
    scene = DropletScene(8e-3, 3e-3, 1.8e-3, math.radians(80.0))
    apex_row = 0.8 * 480 - (scene.tablet_height_m + scene.droplet_height_m) / 20e-6
    settings = RenderSettings(needle="above", needle_gap_m=0.0, needle_diameter_m=0.6e-3)
    frame = render(scene, settings, np.random.default_rng(0))
    labels = ClassicalSegmenter().segment(frame.image).labels
    droplet_rows = np.flatnonzero((labels == LABEL_DROPLET).any(axis=1))
    assert droplet_rows.size and droplet_rows[0] >= apex_row - 2  # nothing of the needle above the apex
    d = iou(labels == LABEL_DROPLET, frame.mask == LABEL_DROPLET)
    assert d[0] / d[1] > 0.95


@pytest.mark.parametrize("angle_deg", [40.0, 100.0])
def test_needle_dipping_into_the_droplet_is_cut_off(angle_deg: float) -> None:
    """While dispensing, the needle tip sits inside the droplet and hides its apex."""
    probe = DropletScene(8e-3, 3e-3, 1.8e-3, math.radians(angle_deg))
    apex_m = probe.tablet_height_m + probe.droplet_height_m
    scene = DropletScene(8e-3, 3e-3, 1.8e-3, math.radians(angle_deg), needle_tip_height_m=apex_m - 0.3e-3)
    frame = render(scene, RenderSettings(rotation_deg=0.8), np.random.default_rng(0))
    labels = ClassicalSegmenter().segment(frame.image).labels
    d = iou(labels == LABEL_DROPLET, frame.mask == LABEL_DROPLET)
    assert d[0] / d[1] > 0.98
    m = measure(labels, frame.pixel_size_m)
    assert math.degrees(m.contact_angle_rad) == pytest.approx(angle_deg, abs=1.5)


def test_separate_needle_and_background_blob_are_not_droplet() -> None:
    scene = DropletScene(8e-3, 3e-3, 1.5e-3, math.radians(60.0), needle_tip_height_m=6e-3)
    settings = RenderSettings(clutter_strength=-0.15, clutter_x=0.2, clutter_y=0.2)
    frame = render(scene, settings, np.random.default_rng(0))
    labels = ClassicalSegmenter().segment(frame.image).labels
    d = iou(labels == LABEL_DROPLET, frame.mask == LABEL_DROPLET)
    assert d[0] / d[1] > 0.95


def test_no_droplet_gives_no_droplet_status() -> None:
    rng = np.random.default_rng(4)
    for split in ("train", "test") * 6:  # a dark edge line on a dry tablet is no droplet
        scene = DropletScene(float(rng.uniform(6e-3, 9e-3)), float(rng.uniform(2e-3, 4e-3)), 0.0, 0.0)
        pixel = float(rng.uniform(16e-6, 22e-6))
        frame = render(scene, random_appearance(rng, split, pixel_size_m=pixel), rng)
        m = measure(ClassicalSegmenter().segment(frame.image).labels, frame.pixel_size_m)
        assert m.status is FrameStatus.NO_DROPLET


def test_frames_without_a_scene_give_empty_labels() -> None:
    segmenter = ClassicalSegmenter()
    for image in (np.full((480, 640), 200, np.uint8), np.full((480, 640, 3), 30, np.uint8)):
        labels = segmenter.segment(image).labels
        assert labels.shape == (480, 640) and not labels.any()


def test_mono_and_colour_frames_agree() -> None:
    scene = DropletScene(8e-3, 3e-3, 2e-3, 1.2)
    segmenter: Segmenter = ClassicalSegmenter()
    colour = render(scene, RenderSettings(noise_sigma=0.0), np.random.default_rng(0))
    mono = render(scene, RenderSettings(noise_sigma=0.0, colour=False), np.random.default_rng(0))
    a, b = segmenter.segment(colour.image).labels, segmenter.segment(mono.image).labels
    assert np.count_nonzero(a != b) < 0.001 * a.size
    assert segmenter.name == "classical" and segmenter.version


def test_segmentation_is_fast() -> None:
    frame = render(
        DropletScene(8e-3, 3e-3, 2e-3, 1.2), RenderSettings(rotation_deg=1.0), np.random.default_rng(0)
    )
    segmenter = ClassicalSegmenter()
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)  # the targets are for one core
    try:
        best = math.inf
        for _ in range(15):
            start = time.perf_counter()
            segmenter.segment(frame.image)
            best = min(best, time.perf_counter() - start)
    finally:
        cv2.setNumThreads(threads)
    assert best < 10e-3
