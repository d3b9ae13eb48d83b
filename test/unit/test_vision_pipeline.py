"""Frame analyser and series recorder: bad frames and failing models are statuses, not crashes."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.typing import NDArray

from tablet_workcell.twin.camera import RenderSettings, render
from tablet_workcell.twin.experiment import ExperimentSpec, simulate_experiment
from tablet_workcell.twin.records import DropletScene
from tablet_workcell.twin.video import film
from tablet_workcell.vision.classical import ClassicalSegmenter
from tablet_workcell.vision.measurement import measure
from tablet_workcell.vision.pipeline import FrameAnalyser, SeriesRecorder, draw_overlay
from tablet_workcell.vision.segmentation import OnnxSegmenter
from tablet_workcell.vision.types import FrameStatus, ModelError, Segmentation, VisionError

PIXEL = 20e-6
SHAPE = (480, 640)


class ScriptedSegmenter:
    """Returns fixed labels (or raises) and remembers what it was given."""

    name = "scripted"
    version = "0"

    def __init__(self, labels: NDArray[np.uint8] | None = None, error: Exception | None = None) -> None:
        self.labels = labels
        self.error = error
        self.seen: list[NDArray[np.uint8]] = []

    def segment(self, image: NDArray[np.uint8]) -> Segmentation:
        self.seen.append(image)
        if self.error is not None:
            raise self.error
        assert self.labels is not None
        return Segmentation(self.labels)


def rendered(angle_deg: float = 70.0) -> tuple[NDArray[np.uint8], NDArray[np.uint8]]:
    frame = render(
        DropletScene(8e-3, 3e-3, 2e-3, math.radians(angle_deg)), RenderSettings(), np.random.default_rng(0)
    )
    return frame.image, frame.mask


def test_a_good_frame_is_measured_from_the_segmenters_labels() -> None:
    image, mask = rendered()
    analyser = FrameAnalyser(ScriptedSegmenter(mask), PIXEL, SHAPE)
    analysis = analyser.analyse(image, 1.25)
    assert analysis.time_s == 1.25 and analysis.labels is mask
    assert analysis.measurement == measure(mask, PIXEL)
    assert analysis.measurement.status is FrameStatus.OK


@pytest.mark.parametrize(
    "error",
    [RuntimeError("[ONNXRuntimeError] : 2 : INVALID_ARGUMENT"), ModelError("model file gone"), MemoryError()],
)
def test_a_failing_segmenter_gives_model_error(error: BaseException) -> None:
    image, _ = rendered()
    segmenter = ScriptedSegmenter(error=error)  # type: ignore[arg-type]
    analysis = FrameAnalyser(segmenter, PIXEL, SHAPE).analyse(image, 0.0)
    m = analysis.measurement
    assert m.status is FrameStatus.MODEL_ERROR and analysis.labels is None
    assert "scripted" in m.message and str(error) in m.message
    assert math.isnan(m.droplet_area_m2)


@pytest.mark.parametrize(
    "labels", [np.zeros((240, 320), np.uint8), np.zeros(SHAPE, np.float32), np.zeros((*SHAPE, 3), np.uint8)]
)
def test_labels_that_break_the_contract_give_model_error(labels: NDArray[np.uint8]) -> None:
    image, _ = rendered()
    m = FrameAnalyser(ScriptedSegmenter(labels), PIXEL, SHAPE).analyse(image, 0.0).measurement
    assert m.status is FrameStatus.MODEL_ERROR
    assert "uint8 label per pixel" in m.message


BAD = {
    "none": (None, None, FrameStatus.EMPTY_FRAME),
    "empty": (np.zeros((0, 640, 3), np.uint8), None, FrameStatus.EMPTY_FRAME),
    "black": (np.zeros((*SHAPE, 3), np.uint8), None, FrameStatus.DARK_FRAME),
    "white": (np.full((*SHAPE, 3), 255, np.uint8), None, FrameStatus.OVEREXPOSED_FRAME),
    "wrong size": (np.full((600, 800, 3), 200, np.uint8), None, FrameStatus.WRONG_SIZE),
    "float": (np.full((*SHAPE, 3), 200.0), None, FrameStatus.WRONG_ENCODING),
    "4 channels": (np.full((*SHAPE, 4), 200, np.uint8), None, FrameStatus.WRONG_ENCODING),
    "mono16": (np.full(SHAPE, 200, np.uint8), "mono16", FrameStatus.WRONG_ENCODING),
}


@pytest.mark.parametrize("kind", sorted(BAD))
def test_bad_frames_never_reach_the_segmenter(kind: str) -> None:
    image, encoding, status = BAD[kind]
    segmenter = ScriptedSegmenter(np.zeros(SHAPE, np.uint8))
    analysis = FrameAnalyser(segmenter, PIXEL, SHAPE).analyse(image, 2.0, encoding)
    assert analysis.measurement.status is status and analysis.labels is None
    assert analysis.measurement.message.endswith(".")
    assert segmenter.seen == []


def test_rgb8_frames_reach_the_segmenter_as_bgr8() -> None:
    image, mask = rendered()
    segmenter = ScriptedSegmenter(mask)
    analysis = FrameAnalyser(segmenter, PIXEL, SHAPE).analyse(
        np.ascontiguousarray(image[:, :, ::-1]), 0.0, "rgb8"
    )
    assert analysis.measurement.status is FrameStatus.OK
    assert np.array_equal(segmenter.seen[0], image)


def test_analyser_settings_are_checked() -> None:
    segmenter = ScriptedSegmenter()
    for pixel in (0.0, -2e-5, math.inf):
        with pytest.raises(VisionError, match="pixel_size_m"):
            FrameAnalyser(segmenter, pixel)
    with pytest.raises(VisionError, match="expected_shape"):
        FrameAnalyser(segmenter, PIXEL, (480, 0))


def test_recorder_collects_arrays_with_nan_for_rejected_frames() -> None:
    image, mask = rendered()
    analyser = FrameAnalyser(ScriptedSegmenter(mask), PIXEL, SHAPE)
    recorder = SeriesRecorder()
    frames = [image, None, image, np.zeros((*SHAPE, 3), np.uint8)]
    for index, frame in enumerate(frames):
        recorder.add(analyser.analyse(frame, 0.5 * index))
    assert len(recorder) == 4
    series = recorder.series()
    assert series.time_s.tolist() == [0.0, 0.5, 1.0, 1.5]
    assert series.ok.tolist() == [True, False, True, False]
    expected = measure(mask, PIXEL)
    for name in (
        "droplet_area_m2",
        "contact_angle_rad",
        "base_width_m",
        "droplet_height_m",
        "droplet_volume_m3",
    ):
        values = getattr(series, name)
        assert values.dtype == np.float64 and values.shape == (4,)
        assert values[0] == values[2] == getattr(expected, name)
        assert np.isnan(values[[1, 3]]).all()
    assert series.tablet_height_m[0] == pytest.approx(3e-3, abs=0.1 * PIXEL)
    assert series.status_counts() == {
        FrameStatus.OK: 2,
        FrameStatus.EMPTY_FRAME: 1,
        FrameStatus.DARK_FRAME: 1,
    }
    recorder.clear()
    assert len(recorder) == 0 and recorder.series().time_s.size == 0


def test_a_filmed_test_analysed_with_the_baseline_follows_the_truth() -> None:
    truth = simulate_experiment(
        ExperimentSpec({"mcc": 0.6, "lactose": 0.35, "ccs": 0.05}, test_duration_s=8.0), 0
    )
    assert truth.droplet is not None
    settings = RenderSettings(rotation_deg=0.6)
    analyser = FrameAnalyser(ClassicalSegmenter(), settings.pixel_size_m, SHAPE)
    recorder = SeriesRecorder()
    filmed = list(film(truth.droplet, settings, np.random.default_rng(0), stride=20))
    for item in filmed:
        recorder.add(analyser.analyse(item.frame.image, item.time_s))
    series = recorder.series()
    true_area = np.array([item.droplet_area_m2 for item in filmed])
    true_height = np.array([item.tablet_height_m for item in filmed])
    measured = true_area > 200 * PIXEL**2
    assert measured.sum() >= 5
    assert series.ok[measured].all()
    np.testing.assert_allclose(series.droplet_area_m2[measured], true_area[measured], rtol=0.03)
    np.testing.assert_allclose(series.tablet_height_m, true_height, atol=PIXEL)
    gone = true_area == 0.0
    assert gone.any()
    assert {series.status[i] for i in np.flatnonzero(gone)} == {FrameStatus.NO_DROPLET}


def test_overlay_draws_on_a_copy() -> None:
    image, mask = rendered()
    original = image.copy()
    analyser = FrameAnalyser(ScriptedSegmenter(mask), PIXEL, SHAPE)
    overlay = draw_overlay(image, analyser.analyse(image, 0.0))
    assert overlay.shape == image.shape and overlay.dtype == np.uint8
    assert np.array_equal(image, original)
    changed = np.any(overlay != image, axis=2)
    assert changed[mask == 1].any() and changed.sum() > 1000  # contours, baseline, tangents, text
    mono = draw_overlay(image[:, :, 1].copy(), analyser.analyse(image, 0.0))
    assert mono.shape == (*SHAPE, 3)
    rejected = draw_overlay(image, analyser.analyse(None, 0.0))
    assert np.any(rejected != image)


@pytest.mark.parametrize("segmenter_kind", ["onnx", "classical"])
def test_a_level_camera_measures_a_swelling_of_a_fraction_of_a_pixel(segmenter_kind: str) -> None:
    # A level camera puts the tablet's top on one row in every column, so a label map holds
    # its height only to a whole pixel; the segmenters' sub-pixel edge lines carry the rest.
    segmenter = OnnxSegmenter() if segmenter_kind == "onnx" else ClassicalSegmenter()
    analyser = FrameAnalyser(segmenter, PIXEL, SHAPE)
    settings = RenderSettings(rotation_deg=0.0, noise_sigma=1.0)
    heights = 2e-3 + PIXEL * np.arange(0.0, 2.01, 0.25)  # eight quarter-pixel steps
    measured, from_labels = [], []
    for height in heights:
        frame = render(
            DropletScene(8e-3, float(height), 1.5e-3, math.radians(70.0)), settings, np.random.default_rng(1)
        )
        analysis = analyser.analyse(frame.image, 0.0)
        assert analysis.measurement.status is FrameStatus.OK and analysis.labels is not None
        measured.append(analysis.measurement.tablet_height_m)
        from_labels.append(measure(analysis.labels, PIXEL).tablet_height_m)
    steps, label_steps = np.diff(measured) / PIXEL, np.diff(from_labels) / PIXEL
    assert np.all(np.abs(steps - 0.25) < 0.1), steps
    assert np.max(np.abs(label_steps - 0.25)) > 0.5  # whole-pixel jumps: what the lines avoid
    assert np.ptp(np.asarray(measured) - heights) < 0.25 * PIXEL
