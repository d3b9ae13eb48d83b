"""Frame checks: every kind of bad frame gets its own status and a sentence, never an exception."""

from __future__ import annotations

import math
import time

import cv2
import numpy as np
import pytest

from tablet_workcell.twin.camera import RenderSettings, render
from tablet_workcell.twin.records import DropletScene
from tablet_workcell.vision.frames import DARK_LEVEL, SATURATED_LEVEL, check_frame, to_grey
from tablet_workcell.vision.types import FrameStatus

SHAPE = (480, 640)


def frame(colour: bool = True) -> np.ndarray:
    scene = DropletScene(8e-3, 3e-3, 2e-3, math.radians(70.0))
    return render(scene, RenderSettings(colour=colour), np.random.default_rng(0)).image


def test_rendered_bgr_and_mono_frames_pass_unchanged() -> None:
    for colour in (True, False):
        image = frame(colour)
        check = check_frame(image, SHAPE)
        assert check.ok and check.status is FrameStatus.OK and check.message == ""
        assert check.image is image  # no copy for the encodings segmenters take as they are
    for encoding in ("mono8", "8UC1"):
        assert check_frame(frame(False), SHAPE, encoding).ok
    for encoding in ("bgr8", "8UC3"):
        assert check_frame(frame(True), SHAPE, encoding).ok


def test_single_channel_3d_frame_is_squeezed_to_mono() -> None:
    image = frame(False)[:, :, None]
    check = check_frame(image, SHAPE)
    assert check.ok and check.image is not None and check.image.shape == SHAPE


def test_rgb8_is_converted_to_bgr8() -> None:
    bgr = frame(True)
    rgb = np.ascontiguousarray(bgr[:, :, ::-1])
    check = check_frame(rgb, SHAPE, encoding="rgb8")
    assert check.ok and check.image is not None
    assert np.array_equal(check.image, bgr)


def white_frame() -> np.ndarray:
    return np.random.default_rng(1).integers(252, 256, (*SHAPE, 3)).astype(np.uint8)


BAD_FRAMES = {
    "none": (None, None, FrameStatus.EMPTY_FRAME),
    "empty": (np.zeros((0, 0, 3), np.uint8), None, FrameStatus.EMPTY_FRAME),
    "black": (np.zeros((*SHAPE, 3), np.uint8), None, FrameStatus.DARK_FRAME),
    "dim noise": (
        np.random.default_rng(0).integers(0, DARK_LEVEL - 5, SHAPE).astype(np.uint8),
        None,
        FrameStatus.DARK_FRAME,
    ),
    "washed out": (white_frame(), None, FrameStatus.OVEREXPOSED_FRAME),
    "wrong size": (np.full((240, 320, 3), 200, np.uint8), None, FrameStatus.WRONG_SIZE),
    "float pixels": (np.full((*SHAPE, 3), 0.5, np.float32), None, FrameStatus.WRONG_ENCODING),
    "16-bit pixels": (np.full(SHAPE, 3000, np.uint16), None, FrameStatus.WRONG_ENCODING),
    "4 channels": (np.full((*SHAPE, 4), 200, np.uint8), None, FrameStatus.WRONG_ENCODING),
    "bgra8 declared": (np.full((*SHAPE, 4), 200, np.uint8), "bgra8", FrameStatus.WRONG_ENCODING),
    "yuv422 declared": (np.full((*SHAPE, 3), 200, np.uint8), "yuv422", FrameStatus.WRONG_ENCODING),
    "mono8 declared, 3 channels": (np.full((*SHAPE, 3), 200, np.uint8), "mono8", FrameStatus.WRONG_ENCODING),
    "bgr8 declared, 1 channel": (np.full(SHAPE, 200, np.uint8), "bgr8", FrameStatus.WRONG_ENCODING),
    "1-d array": (np.full(640, 200, np.uint8), None, FrameStatus.WRONG_ENCODING),
    "not an array": ([[200] * 640] * 480, None, FrameStatus.WRONG_ENCODING),
}


@pytest.mark.parametrize("kind", sorted(BAD_FRAMES))
def test_bad_frames_get_their_status_and_a_sentence(kind: str) -> None:
    image, encoding, status = BAD_FRAMES[kind]
    check = check_frame(image, SHAPE, encoding)
    assert check.status is status
    assert not check.ok and check.image is None
    assert check.message.endswith(".") and len(check.message.split()) >= 6


def test_messages_name_the_values_and_the_fix() -> None:
    size = check_frame(np.full((240, 320, 3), 200, np.uint8), SHAPE)
    assert "320x240" in size.message and "640x480" in size.message
    dtype = check_frame(np.full(SHAPE, 1.0, np.float64), SHAPE)
    assert "float64" in dtype.message and "uint8" in dtype.message
    encoding = check_frame(np.full((*SHAPE, 3), 200, np.uint8), SHAPE, "yuv422")
    assert "'yuv422'" in encoding.message and "bgr8" in encoding.message


def test_any_size_is_accepted_without_a_configured_shape() -> None:
    image = cv2.resize(frame(), (320, 240))
    assert check_frame(image).ok
    assert check_frame(image, SHAPE).status is FrameStatus.WRONG_SIZE


def test_a_dark_scene_with_a_lit_background_is_not_black_and_a_bright_one_is_not_washed_out() -> None:
    dim = render(
        DropletScene(8e-3, 3e-3, 2e-3, 1.0), RenderSettings(background_level=60.0), np.random.default_rng(0)
    )
    assert check_frame(dim.image, SHAPE).ok
    bright = np.full((*SHAPE, 3), 255, np.uint8)
    bright[300:, :] = 30  # the stage still shows
    assert check_frame(bright, SHAPE).ok
    bright[300:, :] = SATURATED_LEVEL + 1  # ... unless it is washed out as well
    assert check_frame(bright, SHAPE).status is FrameStatus.OVEREXPOSED_FRAME


def test_check_is_cheap() -> None:
    image = frame()
    best = math.inf
    for _ in range(50):
        start = time.perf_counter()
        check_frame(image, SHAPE)
        best = min(best, time.perf_counter() - start)
    assert best < 0.5e-3


def test_to_grey() -> None:
    mono = frame(False)
    assert to_grey(mono) is mono
    bgr = frame(True)
    assert np.array_equal(to_grey(bgr), cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))
    assert to_grey(mono[:, :, None]).shape == SHAPE
