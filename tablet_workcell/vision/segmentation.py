"""Droplet/tablet segmentation with the shipped ONNX U-Net (onnxruntime only, no torch).

Why low resolution, then sharp edges: the network runs on a grey frame reduced 4x (160x120
from 640x480, OpenCV INTER_AREA), which is ~16x cheaper than the full frame and keeps the
whole analysis above 60 frames/s on one core. Reducing with INTER_AREA does not throw the
edge away: an edge pixel's grey level is the fraction of it the dark silhouette covers, and
the network is trained against full-detail labels through bilinearly upsampled logits, so
its logits cross zero where the true edge lies, between low-resolution pixel centres. At
run time the logits are upsampled the same way, but only inside the bounding box of the
droplet and tablet found at low resolution (the rest of the frame is background), and the
label of each full-resolution pixel is the class with the largest interpolated logit. The
interpolation is linear, so comparing upsampled logit *differences* gives exactly the
argmax of the upsampled logits at a third of the cost.

With ``refine_edges`` (the default) the droplet's free edge against the backlight is then
re-placed at full resolution from the grey frame
(:func:`tablet_workcell.vision.edge_refinement.refine_droplet_edge`): the network decides
which pixels are droplet, the frame decides where within a pixel or two its outer edge lies.
``refine_edges=False`` keeps the network's upsampled boundary (the benchmark's comparison).

``full_resolution=True`` is the naive path the benchmark compares against: the same
network fed the whole 640x480 frame (it accepts any height and width divisible by 8), with
no edge refinement.

The input contract (grey conversion, resize, normalisation, tensor name/shape/dtype,
classes) is read from the model card, and the model's own inputs and outputs are checked
against it when the segmenter is built: a model that does not fit is a
:class:`~tablet_workcell.vision.types.ModelError`, never a silently wrong mask.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray

from tablet_workcell.vision.edge_refinement import FrameEdges
from tablet_workcell.vision.model_card import InputContract, card_path_for, load_card, verify_model_file
from tablet_workcell.vision.types import LABEL_DROPLET, LABEL_TABLET, ModelError, Segmentation, VisionError

logger = logging.getLogger(__name__)

REPO_MODELS = Path(__file__).resolve().parents[2] / "models"
DEFAULT_MODEL_PATH = REPO_MODELS / "droplet_segmentation.onnx"
_BOX_MARGIN_PX = 2  # low-resolution pixels around the foreground that are interpolated too
_LINE_MARGIN_PX = (
    4  # full-resolution columns beside the droplet and the tablet's corners left out of the line
)
_MIN_LINE_COLUMNS = 16  # fewer columns of visible tablet top: the network's boundary is kept
F32 = NDArray[np.float32]
LineRefiner = Callable[[NDArray[np.int64], float, float], tuple[float, float]]


def to_grey(image: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """Grey (BT.601 luma) view of a BGR, single-channel or mono frame."""
    if image.ndim == 2:
        return image
    if image.ndim == 3 and image.shape[2] == 3:
        return np.asarray(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), dtype=np.uint8)
    if image.ndim == 3 and image.shape[2] == 1:
        return image[:, :, 0]
    raise VisionError(
        f"frame has shape {image.shape}; segmentation takes HxW mono or HxWx3 BGR uint8 frames. "
        "Convert the frame (e.g. cv2.cvtColor) before segmenting."
    )


def downsample(grey: NDArray[np.uint8], width_px: int, height_px: int) -> F32:
    """Area-average a grey frame to the network's size, in float so edge coverage survives."""
    return np.asarray(
        cv2.resize(grey.astype(np.float32), (width_px, height_px), interpolation=cv2.INTER_AREA),
        dtype=np.float32,
    )


def normalise(grey: F32, percentile: float) -> F32:
    """Divide by a robust backlight level (a high percentile), so exposure and brightness cancel.

    The backlight is the brightest large area of a backlit goniometer frame; a percentile
    ignores the few saturated lens-highlight pixels. Levels below 1 are clamped to 1 (a
    black frame stays black instead of dividing by zero; the frame checks reject it).
    """
    level = max(float(np.percentile(grey, percentile)), 1.0)
    return np.asarray(grey * np.float32(1.0 / level), dtype=np.float32)


def _dims(value: Any) -> int | None:
    return value if isinstance(value, int) else None


def _input_problems(inputs: list[Any], contract: InputContract) -> list[str]:
    if len(inputs) != 1:
        return [f"{len(inputs)} inputs instead of 1"]
    item, problems = inputs[0], []
    if item.name != contract.input_name:
        problems.append(f"input named {item.name!r} instead of {contract.input_name!r}")
    if item.type != "tensor(float)" or contract.input_dtype != "float32":
        problems.append(f"input type {item.type} with card dtype {contract.input_dtype!r} (need float32)")
    shape = list(item.shape)
    if len(shape) != 4 or _dims(shape[1]) != 1:
        return [*problems, f"input shape {shape} instead of [N, 1, H, W]"]
    for axis, expected in ((2, contract.height_px), (3, contract.width_px)):
        actual = _dims(shape[axis])
        if actual is not None and (actual != expected or contract.dynamic_spatial):
            problems.append(
                f"input axis {axis} is fixed at {actual}; the card says "
                + ("dynamic" if contract.dynamic_spatial else str(expected))
            )
    return problems


def check_session(session: ort.InferenceSession, contract: InputContract, model_path: Path) -> None:
    """ModelError unless the ONNX model's one input and first output match the card's contract."""
    problems = _input_problems(list(session.get_inputs()), contract)
    outputs = session.get_outputs()
    if not outputs or outputs[0].name != contract.output_name:
        names = [o.name for o in outputs]
        problems.append(f"outputs {names} lack {contract.output_name!r} as the first output")
    elif len(outputs[0].shape) != 4 or _dims(outputs[0].shape[1]) != len(contract.classes):
        problems.append(
            f"output shape {list(outputs[0].shape)} instead of [N, {len(contract.classes)}, H, W]"
        )
    if (
        contract.channel_order != "grey"
        or contract.resize != "INTER_AREA"
        or contract.output_kind != "logits"
    ):
        problems.append(
            f"preprocessing {contract.channel_order!r}/{contract.resize!r}/{contract.output_kind!r} "
            "instead of 'grey'/'INTER_AREA'/'logits'"
        )
    if problems:
        raise ModelError(
            f"model {model_path} does not match its card's input contract: {'; '.join(problems)}. "
            "Use the card written with this model, or retrain with training/train_segmentation.py."
        )


class OnnxSegmenter:
    """The U-Net segmenter (Segmenter protocol): full-resolution labels from a low-resolution run."""

    def __init__(
        self,
        model_path: Path | str = DEFAULT_MODEL_PATH,
        card_path: Path | str | None = None,
        threads: int = 1,
        *,
        full_resolution: bool = False,
        straight_tablet_top: bool = True,
        refine_edges: bool = True,
    ) -> None:
        model = Path(model_path)
        card = load_card(Path(card_path) if card_path is not None else card_path_for(model))
        verify_model_file(model, card)
        self.card = card
        self.contract = card.contract
        self.full_resolution = full_resolution
        self.straight_tablet_top = straight_tablet_top
        self.refine_edges = refine_edges
        if full_resolution and not self.contract.dynamic_spatial:
            raise ModelError(
                f"model {model} has a fixed input size {self.contract.input_shape}; the full-resolution "
                "path needs a model exported with dynamic height and width."
            )
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime raises its own untyped Fail/InvalidProtobuf
            raise ModelError(
                f"model {model} cannot be loaded by onnxruntime ({str(error).splitlines()[0]}); "
                "the file is corrupt or not an ONNX model. Restore the shipped model or retrain."
            ) from error
        check_session(self._session, self.contract, model)
        self.name = "unet-onnx-full" if full_resolution else "unet-onnx"
        self.version = card.short_hash
        logger.info("loaded segmentation model %s (%s, %d thread(s))", model, self.version, threads)

    def _run(self, tensor: F32) -> F32:
        result = self._session.run([self.contract.output_name], {self.contract.input_name: tensor})
        return np.asarray(result[0][0], dtype=np.float32)

    def _scale(self, grey: NDArray[np.uint8]) -> int:
        height, width = grey.shape
        scale = width // self.contract.width_px
        if scale < 1 or width != scale * self.contract.width_px or height != scale * self.contract.height_px:
            raise VisionError(
                f"frame is {width}x{height} px; this model needs a whole multiple of "
                f"{self.contract.width_px}x{self.contract.height_px} px (e.g. 640x480). Crop or resize it."
            )
        return scale

    def segment(self, image: NDArray[np.uint8]) -> Segmentation:
        """Labels (0 background, 1 droplet, 2 tablet) at the frame's own resolution."""
        grey = to_grey(image)
        if self.full_resolution:
            return self._segment_full(grey)
        scale = self._scale(grey)
        small = downsample(grey, self.contract.width_px, self.contract.height_px)
        tensor = normalise(small, self.contract.normalisation_percentile)[None, None]
        logits = self._run(tensor)
        edges = FrameEdges(grey) if self.refine_edges else None
        labels = upsample_labels(logits, scale, self.straight_tablet_top, edges)
        lines = None
        if edges is not None:
            if self.straight_tablet_top:
                lines = edges.place_tablet(labels)
            edges.refine_droplet(labels)
        if lines is None:
            return Segmentation(labels)
        return Segmentation(labels, tablet_top=lines[0], tablet_bottom=lines[1])

    def _segment_full(self, grey: NDArray[np.uint8]) -> Segmentation:
        multiple = self.contract.spatial_multiple
        if grey.shape[0] % multiple or grey.shape[1] % multiple:
            raise VisionError(
                f"frame is {grey.shape[1]}x{grey.shape[0]} px; the full-resolution path needs sides "
                f"divisible by {multiple}. Crop the frame."
            )
        tensor = normalise(grey.astype(np.float32), self.contract.normalisation_percentile)[None, None]
        logits = self._run(tensor)
        return Segmentation(np.asarray(np.argmax(logits, axis=0), dtype=np.uint8))


def upsample_labels(
    logits: F32, scale: int, straight_tablet_top: bool = True, edges: FrameEdges | None = None
) -> NDArray[np.uint8]:
    """Full-resolution labels from low-resolution logits (3, h, w), ``scale`` x larger.

    Bilinear interpolation with pixel-centre alignment (OpenCV INTER_LINEAR, as in training),
    only inside the low-resolution foreground's bounding box plus a margin; outside it every
    pixel is background. Droplet where its logit beats both others, tablet where its logit
    beats background and is not below the droplet's: the argmax of the interpolated logits.
    With ``straight_tablet_top`` the droplet/tablet boundary is then put on the tablet's top
    line (:func:`straighten_tablet_top`); with ``edges`` (the frame's full-resolution evidence)
    that line is placed on the grey frame's edge instead of on the network's first tablet rows.
    """
    _, h, w = logits.shape
    d_droplet = logits[1] - logits[0]
    d_tablet = logits[2] - logits[0]
    labels = np.zeros((h * scale, w * scale), dtype=np.uint8)
    foreground = (d_droplet > 0.0) | (d_tablet > 0.0)
    rows = np.flatnonzero(foreground.any(axis=1))
    if rows.size == 0:
        return labels
    cols = np.flatnonzero(foreground.any(axis=0))
    r0, r1 = max(int(rows[0]) - _BOX_MARGIN_PX, 0), min(int(rows[-1]) + 1 + _BOX_MARGIN_PX, h)
    c0, c1 = max(int(cols[0]) - _BOX_MARGIN_PX, 0), min(int(cols[-1]) + 1 + _BOX_MARGIN_PX, w)
    # Differences commute with the (linear) interpolation: upsample three maps, compare signs.
    stack = np.dstack(
        (d_droplet[r0:r1, c0:c1], d_tablet[r0:r1, c0:c1], logits[1, r0:r1, c0:c1] - logits[2, r0:r1, c0:c1])
    )
    big = cv2.resize(stack, ((c1 - c0) * scale, (r1 - r0) * scale), interpolation=cv2.INTER_LINEAR)
    droplet = (big[:, :, 0] > 0.0) & (big[:, :, 2] > 0.0)
    tablet = (big[:, :, 1] > 0.0) & ~droplet
    box = labels[r0 * scale : r1 * scale, c0 * scale : c1 * scale]
    box[droplet] = LABEL_DROPLET
    box[tablet] = LABEL_TABLET
    if straight_tablet_top:
        straighten_tablet_top(box, None if edges is None else _box_line(edges, r0 * scale, c0 * scale))
    return labels


def _box_line(edges: FrameEdges, top: int, left: int) -> LineRefiner:
    """The frame's top-line refinement in the coordinates of a box whose corner is (top, left)."""

    def refine(columns: NDArray[np.int64], intercept: float, slope: float) -> tuple[float, float]:
        frame_intercept, frame_slope = edges.top_line(columns + left, intercept + top - slope * left, slope)
        return frame_intercept - top + frame_slope * left, frame_slope

    return refine


def straighten_tablet_top(box: NDArray[np.uint8], refine_line: LineRefiner | None = None) -> None:
    """Put the droplet/tablet boundary on the straight line of the tablet's visible top edge (in place).

    Why: under the droplet the boundary between two dark silhouettes is invisible; the network
    infers it, and on a flat droplet a few rows tall one row too high or too low is a large
    area error. Beside the droplet the tablet's top edge against the backlight is sharp, so a
    line fitted to it over many columns (the tablet's first row per column, one outlier
    pass) is sub-pixel, slope included (a tilted camera). Pixels whose centres lie above that
    line and were labelled tablet in the droplet's columns become droplet; droplet pixels below
    it become tablet. Assumes a flat-faced tablet (this cell's punches); nothing changes when
    fewer than ``_MIN_LINE_COLUMNS`` columns show the tablet's top edge. ``refine_line``
    ((columns, intercept, slope) -> (intercept, slope), box coordinates) re-places the fitted
    line on the grey frame's edge at sub-pixel precision (the network's rows are whole pixels).
    """
    droplet = box == LABEL_DROPLET
    droplet_columns = droplet.any(axis=0)
    tablet = box == LABEL_TABLET
    has_tablet = tablet.any(axis=0)
    if not droplet_columns.any() or not has_tablet.any():
        return
    columns = np.arange(box.shape[1])
    d0, d1 = np.flatnonzero(droplet_columns)[[0, -1]]
    t0, t1 = np.flatnonzero(has_tablet)[[0, -1]]
    margin = _LINE_MARGIN_PX
    usable = has_tablet & ((columns < d0 - margin) | (columns > d1 + margin))
    usable &= (columns >= t0 + margin) & (columns <= t1 - margin)
    if np.count_nonzero(usable) < _MIN_LINE_COLUMNS:
        return
    x = columns[usable] + 0.5
    y = np.argmax(tablet[:, usable], axis=0).astype(np.float64)  # top edge: the first tablet row's top
    fit = np.polyfit(x, y, 1)
    keep = np.abs(y - np.polyval(fit, x)) < 1.5
    if np.count_nonzero(keep) >= _MIN_LINE_COLUMNS:
        fit = np.polyfit(x[keep], y[keep], 1)
        if refine_line is not None:
            intercept, slope = refine_line(columns[usable][keep], float(fit[1]), float(fit[0]))
            fit = np.array([slope, intercept])
    c_lo, c_hi = max(int(d0) - margin, 0), min(int(d1) + margin + 1, box.shape[1])
    line = np.polyval(fit, columns[c_lo:c_hi] + 0.5)
    r_lo = max(int(np.floor(line.min())) - 3, 0)
    r_hi = min(int(np.ceil(line.max())) + 3, box.shape[0])
    if r_lo >= r_hi:
        return
    window = box[r_lo:r_hi, c_lo:c_hi]
    above = (np.arange(r_lo, r_hi, dtype=np.float64)[:, None] + 0.5) < line[None, :]
    window[above & (window == LABEL_TABLET) & droplet_columns[None, c_lo:c_hi]] = LABEL_DROPLET
    window[~above & (window == LABEL_DROPLET)] = LABEL_TABLET
