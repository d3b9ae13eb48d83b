"""The shipped segmentation model: card and file agree, contract checked, bad models refused, masks good."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest

from tablet_workcell.vision.dataset import generate_frames, held_out_frames
from tablet_workcell.vision.edge_refinement import FrameEdges, refine_droplet_edge
from tablet_workcell.vision.measurement import measure
from tablet_workcell.vision.model_card import card_path_for, file_sha256, load_card
from tablet_workcell.vision.scoring import score_frame, summarise
from tablet_workcell.vision.segmentation import (
    DEFAULT_MODEL_PATH,
    OnnxSegmenter,
    _box_line,
    straighten_tablet_top,
    upsample_labels,
)
from tablet_workcell.vision.types import LABEL_DROPLET, LABEL_TABLET, ModelError, VisionError

REPO = Path(__file__).resolve().parents[2]
MODEL = DEFAULT_MODEL_PATH
CARD = card_path_for(MODEL)


@pytest.fixture(scope="module")
def segmenter() -> OnnxSegmenter:
    return OnnxSegmenter(MODEL)


@pytest.fixture
def model_copy(tmp_path: Path) -> tuple[Path, Path]:
    """A writable copy of the shipped model and card, to break in a test."""
    model, card = tmp_path / MODEL.name, tmp_path / CARD.name
    shutil.copyfile(MODEL, model)
    shutil.copyfile(CARD, card)
    return model, card


def edit_card(card: Path, **changes: object) -> None:
    data = json.loads(card.read_text())
    for key, value in changes.items():
        section, _, name = key.partition("__")
        if name:
            data[section][name] = value
        else:
            data[key] = value
    card.write_text(json.dumps(data))


def test_the_shipped_file_is_the_one_its_card_describes() -> None:
    card = load_card(CARD)
    assert file_sha256(MODEL) == card.sha256
    assert card.raw["size_bytes"] == MODEL.stat().st_size
    assert 100_000 < MODEL.stat().st_size < 5_000_000  # a few hundred KB, one self-contained file
    assert card.raw["metrics"]["low_resolution_upsampled"]["scored_frames"] > 100


def test_the_model_graph_matches_the_cards_contract(segmenter: OnnxSegmenter) -> None:
    contract = load_card(CARD).contract
    graph = onnx.load(str(MODEL)).graph
    assert [i.name for i in graph.input] == [contract.input_name]
    assert graph.output[0].name == contract.output_name
    dims = graph.input[0].type.tensor_type.shape.dim
    assert dims[1].dim_value == 1 and dims[2].dim_param and dims[3].dim_param  # H, W dynamic
    assert segmenter.version == load_card(CARD).sha256[:12]


def test_a_missing_model_or_card_is_a_model_error(tmp_path: Path, model_copy: tuple[Path, Path]) -> None:
    _, card = model_copy
    with pytest.raises(ModelError, match=r"model file .*missing\.onnx does not exist"):
        OnnxSegmenter(tmp_path / "missing.onnx", card)
    with pytest.raises(ModelError, match=r"model card .*nocard\.card\.json does not exist"):
        OnnxSegmenter(tmp_path / "nocard.onnx")


def test_a_model_that_is_not_the_cards_is_refused(model_copy: tuple[Path, Path]) -> None:
    model, card = model_copy
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="do not belong together"):
        OnnxSegmenter(model, card)


def test_a_corrupt_model_with_a_matching_hash_is_refused_by_onnxruntime(
    model_copy: tuple[Path, Path],
) -> None:
    model, card = model_copy
    model.write_bytes(b"not an onnx model" * 100)
    edit_card(card, sha256=file_sha256(model))
    with pytest.raises(ModelError, match="cannot be loaded by onnxruntime"):
        OnnxSegmenter(model, card)


def test_a_corrupt_or_foreign_card_is_refused(model_copy: tuple[Path, Path]) -> None:
    model, card = model_copy
    text = card.read_text()
    card.write_text(text[: len(text) // 2])
    with pytest.raises(ModelError, match="is not valid JSON"):
        OnnxSegmenter(model, card)
    card.write_text(text)
    edit_card(card, card_format=99)
    with pytest.raises(ModelError, match="card_format 99"):
        OnnxSegmenter(model, card)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"input_contract__input_name": "frame"}, "input named 'image' instead of 'frame'"),
        ({"input_contract__output_name": "probabilities"}, "lack 'probabilities' as the first output"),
        ({"input_contract__classes": ["background", "droplet"]}, "lists classes"),
        ({"input_contract__input_shape": [1, 3, 120, 160]}, r"expected \[1, 1, H, W\]"),
        ({"input_contract__resize": "INTER_NEAREST"}, "instead of 'grey'/'INTER_AREA'/'logits'"),
    ],
)
def test_a_model_that_does_not_match_the_input_contract_is_refused(
    model_copy: tuple[Path, Path], change: dict[str, object], message: str
) -> None:
    model, card = model_copy
    edit_card(card, **change)
    with pytest.raises(ModelError, match=message):
        OnnxSegmenter(model, card)


def test_the_shipped_model_segments_unseen_appearance_well(segmenter: OnnxSegmenter) -> None:
    frames = held_out_frames(16)
    scores = [score_frame(segmenter.segment(f.image).labels, f.labels) for f in frames]
    summary = summarise(scores)
    assert summary.scored_frames >= 8
    assert summary.mean_droplet_iou > 0.85
    assert summary.mean_abs_area_error < 0.08
    assert summary.mean_tablet_iou > 0.95
    assert summary.false_droplet_frames == 0


def test_frames_of_other_sizes_and_encodings(segmenter: OnnxSegmenter) -> None:
    frame = next(generate_frames(1, 3, "test"))
    grey = frame.image if frame.image.ndim == 2 else frame.image.mean(axis=2).astype(np.uint8)
    half = grey[::2, ::2].copy()  # 320x240: a whole multiple of the network's 160x120
    assert segmenter.segment(half).labels.shape == (240, 320)
    assert segmenter.segment(grey[:, :, None]).labels.shape == (480, 640)
    with pytest.raises(VisionError, match="whole multiple of 160x120"):
        segmenter.segment(grey[:, :600])
    with pytest.raises(VisionError, match="HxW mono or HxWx3 BGR"):
        segmenter.segment(np.zeros((480, 640, 4), np.uint8))


def test_upsampling_puts_the_edge_between_low_resolution_pixels() -> None:
    # Droplet where x_low < 10.3 (low-resolution pixel coordinates of centres), tablet below row 20.
    h, w, scale = 30, 40, 4
    x = np.arange(w, dtype=np.float32)[None, :].repeat(h, 0)
    y = np.arange(h, dtype=np.float32)[:, None].repeat(w, 1)
    logits = np.zeros((3, h, w), np.float32)
    logits[1] = 10.3 - x
    logits[2] = np.where(x >= 10.3, y - 20.0, -100.0)
    labels = upsample_labels(logits, scale)
    # Low-res coordinate u maps to full-resolution pixel centre (u + 0.5) * 4: 43.2, so column 42 is droplet.
    row = labels[10 * scale]
    assert row[42] == LABEL_DROPLET and row[43] != LABEL_DROPLET
    column = labels[:, 100]
    assert column[81] != LABEL_TABLET and column[82] == LABEL_TABLET  # (20 + 0.5) * 4 = 82
    assert not upsample_labels(np.stack([np.ones((h, w)), -np.ones((h, w)), -np.ones((h, w))]), 4).any()


def test_the_droplet_tablet_boundary_follows_the_tablets_visible_top_line() -> None:
    # A tablet whose top edge falls 1 px per 50 columns (tilted camera); the droplet's lowest
    # row was labelled tablet and one tablet row below it droplet, as a coarse network may do.
    rows, cols = np.mgrid[0:80, 0:300]
    top = 40.0 + (cols + 0.5) / 50.0  # y of the tablet's top edge
    truth = np.zeros((80, 300), np.uint8)
    truth[(rows + 0.5 >= top) & (cols >= 10) & (cols < 290)] = LABEL_TABLET
    droplet = ((cols - 150) ** 2 / 60.0**2 + (rows + 0.5 - top) ** 2 / 12.0**2 < 1) & (rows + 0.5 < top)
    truth[droplet] = LABEL_DROPLET
    damaged = truth.copy()
    lowest = droplet & ~np.roll(droplet, -1, axis=0)
    damaged[lowest] = LABEL_TABLET
    damaged[np.roll(lowest, 1, axis=0) & (truth == LABEL_TABLET)] = LABEL_DROPLET
    assert np.count_nonzero(damaged != truth) > 100
    straighten_tablet_top(damaged)
    assert np.count_nonzero(damaged != truth) == 0
    untouched = np.zeros((20, 30), np.uint8)
    untouched[10:, :] = LABEL_TABLET  # no droplet: nothing to do
    before = untouched.copy()
    straighten_tablet_top(untouched)
    assert np.array_equal(untouched, before)


def test_the_dataset_is_reproducible_and_splits_differ() -> None:
    a, b = list(generate_frames(3, 11, "train")), list(generate_frames(3, 11, "train"))
    assert all(
        np.array_equal(x.image, y.image) and np.array_equal(x.labels, y.labels)
        for x, y in zip(a, b, strict=True)
    )
    test = list(generate_frames(3, 11, "test"))
    assert not any(np.array_equal(x.image, y.image) for x, y in zip(a, test, strict=True))
    with pytest.raises(ValueError, match="count is -1"):
        next(generate_frames(-1, 0))


def test_scores_count_pixels() -> None:
    truth = np.zeros((10, 10), np.uint8)
    truth[2:6, 2:6] = LABEL_DROPLET  # 16 px
    predicted = np.zeros_like(truth)
    predicted[2:6, 3:7] = LABEL_DROPLET  # 16 px, 12 shared
    score = score_frame(predicted, truth)
    assert score.droplet_iou == pytest.approx(12 / 20)
    assert score.droplet_area_error == 0.0
    summary = summarise([score], min_droplet_px=10)
    assert summary.scored_frames == 1 and summary.pooled_droplet_iou == pytest.approx(0.6)
    assert summarise([score], min_droplet_px=20).small_frames == 1


def test_the_training_smoke_run_writes_a_loadable_model_and_card(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "training" / "train_segmentation.py"), "--smoke", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    model = tmp_path / "droplet_segmentation.onnx"
    card = load_card(card_path_for(model))
    assert card.raw["training"]["smoke"] is True
    assert card.sha256 == file_sha256(model)
    labels = OnnxSegmenter(model).segment(next(generate_frames(1, 0, "test")).image).labels
    assert labels.shape == (480, 640)


def _blurred_drop_scene() -> tuple[np.ndarray, np.ndarray]:
    """A backlit cap on a tablet with a lens highlight and a needle, rendered 8x finer, area-averaged
    and blurred (sigma 1.2 px) as a defocused camera would; and its exact labels (pixel centres)."""
    fine = 8
    rows, cols = np.mgrid[0 : 240 * fine, 0 : 320 * fine]
    y, x = (rows + 0.5) / fine, (cols + 0.5) / fine
    top = 150.0
    tablet = (y >= top) & (x >= 40.0) & (x < 280.0)
    cap = ((x - 160.0) / 70.3) ** 2 + ((y - top) / 45.6) ** 2 < 1.0
    droplet = cap & (y < top)
    highlight = ((x - 160.0) / 12.0) ** 2 + ((y - 125.0) / 8.0) ** 2 < 1.0
    needle = (np.abs(x - 160.0) < 4.0) & (y < 110.0)
    backlight = 210.0 - 0.15 * x  # a gradient across the frame
    fine_grey = np.where(tablet | droplet | needle, 35.0, backlight)
    fine_grey = np.where(highlight, 230.0, fine_grey)
    grey = cv2.resize(fine_grey.astype(np.float32), (320, 240), interpolation=cv2.INTER_AREA)
    grey = cv2.GaussianBlur(grey, (0, 0), 1.2)
    centre = (slice(fine // 2, None, fine), slice(fine // 2, None, fine))
    labels = np.zeros((240, 320), np.uint8)
    labels[tablet[centre]] = LABEL_TABLET
    labels[(droplet | (highlight & cap & (y < top)))[centre]] = LABEL_DROPLET
    return np.clip(np.rint(grey), 0, 255).astype(np.uint8), labels


@pytest.mark.parametrize("shift", [-2, 2])
def test_edge_refinement_moves_a_blurred_edge_onto_the_true_one(shift: int) -> None:
    grey, truth = _blurred_drop_scene()
    # A network 2 px off all along the free edge (out or in); its droplet/tablet boundary is right.
    kernel = np.ones((3, 3), np.uint8)
    if shift > 0:
        moved = cv2.dilate((truth == LABEL_DROPLET).view(np.uint8), kernel, iterations=shift)
    else:
        moved = cv2.erode((truth != 0).view(np.uint8), kernel, iterations=-shift)
    coarse = np.where(truth == LABEL_TABLET, LABEL_TABLET, 0).astype(np.uint8)
    coarse[moved.astype(bool) & (truth != LABEL_TABLET)] = LABEL_DROPLET
    refined = coarse.copy()
    refine_droplet_edge(grey, refined)
    true_px = np.count_nonzero(truth == LABEL_DROPLET)
    free_edge_px = 0.5 * np.pi * (70.3 + 45.6)  # ~ the half-ellipse's arc: the edge against the backlight
    # Before: the edge is ~2 px off all round; after: within half a pixel on average (area / arc length).
    assert abs(np.count_nonzero(coarse == LABEL_DROPLET) - true_px) > 1.5 * free_edge_px
    assert abs(np.count_nonzero(refined == LABEL_DROPLET) - true_px) < 0.5 * free_edge_px
    assert score_frame(refined, truth).droplet_iou > 0.98 > score_frame(coarse, truth).droplet_iou
    assert np.all(refined[110:140, 150:170] == LABEL_DROPLET)  # the lens highlight stays droplet
    assert np.all(refined[:100, 150:170] == 0)  # the needle stays background
    assert np.array_equal(refined == LABEL_TABLET, truth == LABEL_TABLET)


def test_edge_refinement_improves_the_networks_masks_on_held_out_frames() -> None:
    frames = held_out_frames(24)
    plain = OnnxSegmenter(MODEL, refine_edges=False)
    refined = OnnxSegmenter(MODEL)
    before = summarise(score_frame(plain.segment(f.image).labels, f.labels) for f in frames)
    after = summarise(score_frame(refined.segment(f.image).labels, f.labels) for f in frames)
    assert after.scored_frames >= 12
    assert after.mean_droplet_iou > before.mean_droplet_iou + 0.003
    assert after.mean_abs_area_error < before.mean_abs_area_error


def test_the_tablet_line_is_put_on_the_frames_sub_pixel_edge_in_box_coordinates() -> None:
    # Tablet top at y = 58.4 + x / 20 (frame px, corner convention), blurred; the network's
    # tablet starts one row low everywhere. The box starts at (top 20, left 10) of the frame.
    fine = 8
    rows, cols = np.mgrid[0 : 120 * fine, 0 : 240 * fine]
    y, x = (rows + 0.5) / fine, (cols + 0.5) / fine
    edge = 58.4 + x / 20.0
    tablet = (y >= edge) & (x >= 20.0) & (x < 220.0)
    droplet = (((x - 120.0) / 40.0) ** 2 + ((y - edge) / 15.0) ** 2 < 1.0) & (y < edge)
    area = cv2.resize(
        np.where(tablet | droplet, 40.0, 200.0).astype(np.float32), (240, 120), interpolation=cv2.INTER_AREA
    )
    grey = np.asarray(np.clip(np.rint(cv2.GaussianBlur(area, (0, 0), 1.0)), 0, 255), dtype=np.uint8)
    centre = (slice(fine // 2, None, fine), slice(fine // 2, None, fine))
    truth = np.zeros((120, 240), np.uint8)
    truth[tablet[centre]] = LABEL_TABLET
    truth[droplet[centre]] = LABEL_DROPLET
    network = truth.copy()
    low = (truth == LABEL_TABLET) & np.roll(truth != LABEL_TABLET, 1, axis=0)  # the first tablet row
    network[low] = np.roll(truth, 1, axis=0)[low]  # labelled as the pixel above (background or droplet)
    plain, refined = network.copy(), network.copy()
    straighten_tablet_top(plain[20:, 10:])
    straighten_tablet_top(refined[20:, 10:], _box_line(FrameEdges(grey), 20, 10))
    under_droplet = np.s_[:, 85:155]
    assert np.count_nonzero(plain[under_droplet] != truth[under_droplet]) > 50  # one row off
    assert np.count_nonzero(refined[under_droplet] != truth[under_droplet]) <= 6  # ~0.1 px


@pytest.mark.parametrize("with_droplet", [True, False], ids=["droplet", "dry"])
def test_the_tablet_outline_is_put_on_the_frames_edges_with_or_without_a_droplet(with_droplet: bool) -> None:
    # Tablet standing on a stage as dark as itself (their boundary is invisible), tilted camera.
    # The network's tablet reaches one row into the stage and, beside the droplet, starts one
    # row high: the height it gives is off by about 2 px, and it would shift when the droplet goes.
    fine, slope = 8, 1.0 / 25.0
    rows, cols = np.mgrid[0 : 120 * fine, 0 : 240 * fine]
    y, x = (rows + 0.5) / fine, (cols + 0.5) / fine
    top, stage_top = 50.3 + slope * x, 95.6 + slope * x
    stage = y >= stage_top
    tablet = (y >= top) & ~stage & (x >= 40.0) & (x < 200.0)
    droplet = (((x - 120.0) / 35.0) ** 2 + ((y - top) / 14.0) ** 2 < 1.0) & (y < top) & with_droplet
    area = cv2.resize(
        np.where(tablet | droplet | stage, 40.0, 200.0).astype(np.float32),
        (240, 120),
        interpolation=cv2.INTER_AREA,
    )
    grey = np.asarray(np.clip(np.rint(cv2.GaussianBlur(area, (0, 0), 1.2)), 0, 255), dtype=np.uint8)
    centre = (slice(fine // 2, None, fine), slice(fine // 2, None, fine))
    truth = np.zeros((120, 240), np.uint8)
    truth[tablet[centre]] = LABEL_TABLET
    truth[droplet[centre]] = LABEL_DROPLET
    network = truth.copy()
    last = (truth == LABEL_TABLET) & np.roll(truth != LABEL_TABLET, -1, axis=0)
    network[np.roll(last, 1, axis=0)] = LABEL_TABLET  # one row into the stage
    first = (truth == LABEL_TABLET) & np.roll(truth == 0, 1, axis=0)  # first rows beside the droplet
    network[np.roll(first, -1, axis=0)] = LABEL_TABLET  # one row above them
    true_height_px = (95.6 - 50.3) / math.hypot(1.0, slope)
    before = measure(network, 1.0).tablet_height_m
    FrameEdges(grey).place_tablet(network)
    after = measure(network, 1.0).tablet_height_m
    assert abs(before - true_height_px) > 1.0
    assert after == pytest.approx(true_height_px, abs=0.15)
    if with_droplet:  # the droplet itself is left alone above the line
        assert np.count_nonzero((network == LABEL_DROPLET) != (truth == LABEL_DROPLET)) <= 8
