"""Re-analyse a recorded disintegration test: the node's frame recording, or an MCAP bag.

Both paths run the frames through the same :class:`~tablet_workcell.vision.session.
DisintegrationSession` the live node runs, in the same order with the same stamps and
settings, so a frame recording re-analysed with the same segmenter and regime model
gives the identical result (every number equal; tested). The recording names the
segmenter and regime model it was analysed with; re-analysing with another one is
refused unless asked for, because it gives other numbers.

A bag (an MCAP file of ``/camera/image_raw`` from the recorder node) holds the frames the
camera published, not the ones a live test analysed: the recorder may thin images
(``image_rate_hz``; set 0 to keep every frame) and a live test may have skipped frames
while behind. Its re-analysis is the offline analysis of every recorded frame; it agrees
with a live result exactly only when both saw the same frames. The settings a bag does not
carry (tablet, droplet volume, maximum duration) come from the caller; the pixel scale is
read from the bag's ``/camera/pixel_size_m`` (std_msgs/Float64, latched by the camera
node) when the caller gives none.
"""

from __future__ import annotations

import logging
import math
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from tablet_workcell.data.mcap_io import read_recording
from tablet_workcell.data.msg_definitions import RecordingError
from tablet_workcell.image_wire import ImageWireError, decode_image
from tablet_workcell.vision.node_parameters import IMAGE_TOPIC, PIXEL_SIZE_TOPIC, SEGMENTER_KINDS
from tablet_workcell.vision.pipeline import FrameAnalyser
from tablet_workcell.vision.recording import RecordedFrame, open_recording
from tablet_workcell.vision.session import DisintegrationSession, SessionResult, SessionSettings, StopReason
from tablet_workcell.vision.types import FrameStatus, ModelError, Segmenter, VisionError

logger = logging.getLogger(__name__)


def load_segmenter(kind: str, model_path: Path | str | None = None, threads: int = 1) -> Segmenter:
    """The ONNX U-Net (checked against its card; ModelError when missing or mismatched) or the
    classical OpenCV baseline."""
    if kind == "onnx":
        from tablet_workcell.vision.segmentation import DEFAULT_MODEL_PATH, OnnxSegmenter  # noqa: PLC0415

        path = Path(model_path) if model_path else DEFAULT_MODEL_PATH
        if not path.is_file():
            raise ModelError(
                f"segmentation model {path} does not exist; restore models/droplet_segmentation.onnx "
                "(and its card), point model_path at it, or use the classical segmenter."
            )
        return OnnxSegmenter(path, threads=threads)
    if kind == "classical":
        from tablet_workcell.vision.classical import ClassicalSegmenter  # noqa: PLC0415

        return ClassicalSegmenter()
    raise VisionError(f"segmenter {kind!r} is not known; use one of {', '.join(SEGMENTER_KINDS)}.")


def load_regime_model(model_path: Path | str | None) -> Any:
    """The learned regime model, or None (the physics baseline) for an empty path."""
    if not model_path:
        return None
    from tablet_workcell.vision.regime_model import RegimeModel  # noqa: PLC0415

    path = Path(model_path)
    if not path.is_file():
        raise ModelError(
            f"regime model {path} does not exist; restore models/regime_segmentation.onnx, point "
            "regime_model_path at it, or leave it empty for the physics baseline."
        )
    return RegimeModel(path)


def describe(model: Any) -> str:
    """'<name> <version>' of a segmenter or regime model; '' for None (the physics baseline)."""
    return "" if model is None else f"{model.name} {model.version}"


def recording_settings(
    settings: SessionSettings, segmenter: Segmenter, regime_model: Any, max_pending: int
) -> dict[str, Any]:
    """What a frame recording stores besides the frames (its manifest's ``settings``)."""
    return {
        "session": settings.to_json(),
        "segmenter_kind": "classical" if segmenter.name.startswith("classical") else "onnx",
        "segmenter": describe(segmenter),
        "regime_model": describe(regime_model),
        "max_pending_frames": max_pending,
    }


@dataclass(frozen=True)
class Reanalysis:
    result: SessionResult
    frames: int  # frames read from the recording
    recorded_segmenter: str
    recorded_regime_model: str


def analyse_frames(
    frames: Iterable[RecordedFrame],
    settings: SessionSettings,
    segmenter: Segmenter,
    regime_model: Any,
    end: StopReason = StopReason.END_OF_DATA,
) -> tuple[SessionResult, int]:
    """Run recorded frames through a new session until it ends; (result, frames read).

    ``end``: how the test ends when the frames run out first (a recording of a cancelled
    test ends as STOPPED, a bag as END_OF_DATA).
    """
    analyser = FrameAnalyser(segmenter, settings.pixel_size_m, settings.expected_shape)
    session = DisintegrationSession(analyser, settings, describe(segmenter), regime_model)
    read = 0
    for frame in frames:
        if session.done:
            break
        read += 1
        if frame.image is None:
            session.add_rejected(frame.stamp_ns, frame.status or FrameStatus.WRONG_ENCODING, frame.message)
        else:
            session.add_frame(frame.image, frame.stamp_ns, frame.encoding)
    session.stop(end)
    return session.finish(), read


def reanalyse_recording(
    path: Path,
    segmenter: Segmenter | None = None,
    regime_model: Any = None,
    *,
    regime_model_path: Path | str | None = None,
    allow_other_models: bool = False,
    baseline_regimes: bool = False,
) -> Reanalysis:
    """Re-analyse a frame recording (its .mkv or .json).

    Without ``segmenter`` the recorded kind is loaded (the shipped model for onnx); the
    regime model is ``regime_model``, or loaded from ``regime_model_path``, or the shipped
    one when the recording names a learned model (else, or with ``baseline_regimes``, the
    physics baseline). Raises VisionError when either differs from the recorded one unless
    ``allow_other_models``.
    """
    recording = open_recording(path)
    stored = recording.settings
    settings = SessionSettings.from_json(stored["session"])
    if segmenter is None:
        segmenter = load_segmenter(str(stored.get("segmenter_kind", "onnx")))
    recorded_segmenter = str(stored.get("segmenter", ""))
    recorded_regimes = str(stored.get("regime_model", ""))
    if regime_model is None and regime_model_path:
        regime_model = load_regime_model(regime_model_path)
    elif regime_model is None and recorded_regimes and not baseline_regimes:  # learned: the shipped one
        from tablet_workcell.vision.regime_model import DEFAULT_MODEL  # noqa: PLC0415

        regime_model = load_regime_model(DEFAULT_MODEL)
    mismatches = [
        f"{what} {now or 'physics baseline'} (recorded: {then or 'physics baseline'})"
        for what, now, then in (
            ("segmenter", describe(segmenter), recorded_segmenter),
            ("regime model", describe(regime_model), recorded_regimes),
        )
        if now != then
    ]
    if mismatches and not allow_other_models:
        raise VisionError(
            f"{recording.manifest_path} was analysed with other models than this re-analysis would use: "
            f"{'; '.join(mismatches)}. The numbers would differ; pass the recorded models, or allow "
            "other models to compare them on purpose."
        )
    end = StopReason(recording.stop_reason) if recording.stop_reason else StopReason.END_OF_DATA
    result, read = analyse_frames(recording.frames(), settings, segmenter, regime_model, end)
    return Reanalysis(result, read, recorded_segmenter, recorded_regimes)


# ---------------------------------------------------------------------- bags
def bag_frames(path: Path, topic: str = IMAGE_TOPIC) -> Iterator[RecordedFrame]:
    """The images of ``topic`` in an MCAP recording, stamped with their header stamps.

    A message that is not a decodable sensor_msgs/Image becomes a rejected frame stamped
    with its log time (its header cannot be trusted), so it is counted, not dropped.
    """
    found = False
    for message in read_recording(Path(path), [topic]):
        found = True
        try:
            image = decode_image(message.data)
        except ImageWireError as error:
            yield RecordedFrame(message.log_time_ns, None, FrameStatus.WRONG_ENCODING, str(error))
            continue
        yield RecordedFrame(image.stamp_ns, image.pixels, encoding=image.encoding)
    if not found:
        raise VisionError(
            f"{path} has no messages on {topic}; name the camera's image topic (e.g. {IMAGE_TOPIC}) "
            "and check that the recorder recorded it."
        )


def bag_pixel_size_m(path: Path, topic: str = PIXEL_SIZE_TOPIC) -> float | None:
    """The last std_msgs/Float64 on ``topic`` in the bag (the camera's pixel scale), or None."""
    value: float | None = None
    for message in read_recording(Path(path), [topic]):
        if len(message.data) >= 12 and message.data[:2] == b"\x00\x01":  # little-endian CDR + float64
            value = struct.unpack_from("<d", message.data, 4)[0]  # aligned after the 4-byte header
    return value if value is not None and math.isfinite(value) and value > 0 else None


def reanalyse_bag(
    path: Path,
    settings: SessionSettings | None,
    segmenter: Segmenter,
    regime_model: Any = None,
    *,
    topic: str = IMAGE_TOPIC,
    pixel_size_m: float | None = None,
    template: SessionSettings | None = None,
) -> Reanalysis:
    """Analyse the camera images of a bag as one test.

    ``settings`` complete, or ``template`` whose pixel size is replaced by ``pixel_size_m``
    or, failing that, by the bag's ``/camera/pixel_size_m``.
    """
    try:
        if settings is None:
            if template is None:
                raise VisionError(
                    "give either complete session settings or a template for a bag re-analysis."
                )
            scale = pixel_size_m or bag_pixel_size_m(path)
            if scale is None:
                raise VisionError(
                    f"{path} has no {PIXEL_SIZE_TOPIC} message and no pixel size was given; pass the "
                    "camera's calibrated pixel size (e.g. --pixel-size-m 1e-5)."
                )
            settings = replace(template, pixel_size_m=scale)
        result, read = analyse_frames(bag_frames(path, topic), settings, segmenter, regime_model)
    except RecordingError as error:
        raise VisionError(str(error)) from None
    return Reanalysis(result, read, "", "")
