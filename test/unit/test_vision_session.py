"""A disintegration test session over rendered twin frames: live, recorded, re-analysed.

The frames come from the twin's camera filming the twin's sessile drop, so every number
has a truth to compare with. The classical segmenter keeps the file fast; the node's ROS
test runs the shipped ONNX model.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray
from rclpy.serialization import serialize_message
from std_msgs.msg import Float64

from tablet_workcell.cli import main as workcell
from tablet_workcell.data.mcap_io import McapRecorder
from tablet_workcell.image_wire import encode_image
from tablet_workcell.twin.camera import RenderSettings
from tablet_workcell.twin.disintegration import DropletSeries
from tablet_workcell.twin.experiment import ExperimentSpec, ExperimentTruth, simulate_experiment
from tablet_workcell.vision.classical import ClassicalSegmenter
from tablet_workcell.vision.live import LiveSession
from tablet_workcell.vision.pipeline import FrameAnalyser
from tablet_workcell.vision.reanalysis import (
    analyse_frames,
    bag_pixel_size_m,
    load_regime_model,
    reanalyse_bag,
    reanalyse_recording,
    recording_settings,
)
from tablet_workcell.vision.recording import FrameRecordingWriter, RecordedFrame, open_recording
from tablet_workcell.vision.regime_model import DEFAULT_MODEL as DEFAULT_REGIME_MODEL
from tablet_workcell.vision.session import (
    DisintegrationSession,
    SessionResult,
    SessionSettings,
    StopReason,
    TabletInfo,
)
from tablet_workcell.vision.types import FrameStatus, Segmentation, VisionError

START_NS = 1_700_000_000_000_000_000  # camera stamps are absolute; the session counts from contact
LANDING_NS = START_NS + 400_000_000
FRAME_S = 0.1
CAMERA = RenderSettings()


@dataclass(frozen=True)
class Film:
    truth: ExperimentTruth
    series: DropletSeries
    frames: list[tuple[int, NDArray[np.uint8]]]  # (stamp ns, BGR frame), 1 / FRAME_S frames/s
    pre_roll: int  # frames before the droplet lands (needle, no droplet)


@pytest.fixture(scope="module")
def twin_film() -> Film:
    """10 frames/s; the droplet lands half a frame interval after the last dry frame (as a
    real camera sees it: between two frames), at LANDING_NS."""
    truth = simulate_experiment(
        ExperimentSpec(
            {"mcc": 0.6, "lactose": 0.35, "ccs": 0.05}, test_duration_s=8.0, frame_interval_s=FRAME_S / 2
        ),
        0,
    )
    series = truth.droplet
    assert series is not None
    rng = np.random.default_rng(1)
    empty = series.scene(series.time_s.size - 1)  # tablet only: what the camera sees before contact
    period_ns = round(FRAME_S * 1e9)
    frames = [
        (LANDING_NS - period_ns // 2 - i * period_ns, _render_scene(empty, rng)) for i in range(3, -1, -1)
    ]
    for index in range(1, series.time_s.size, 2):  # (k + 1/2) frame intervals after landing
        frames.append(
            (LANDING_NS + round(series.time_s[index] * 1e9), _render_scene(series.scene(index), rng))
        )
    return Film(truth, series, frames, 4)


def _render_scene(scene: object, rng: np.random.Generator) -> NDArray[np.uint8]:
    from tablet_workcell.twin.camera import render  # noqa: PLC0415

    return render(scene, CAMERA, rng).image  # type: ignore[arg-type]


def settings_for(twin: Film, max_duration_s: float = 30.0) -> SessionSettings:
    observed = twin.truth.observables
    return SessionSettings(
        pixel_size_m=CAMERA.pixel_size_m,
        expected_shape=(CAMERA.height, CAMERA.width),
        max_duration_s=max_duration_s,
        droplet_volume_m3=5e-9,
        absorbed_margin_s=0.5,
        tablet=TabletInfo(
            thickness_m=observed["tablet_thickness_m"],
            porosity=observed["porosity"],
            diameter_m=twin.series.tablet_diameter_m,
            tensile_strength_pa=observed["tensile_strength_pa"],
        ),
        experiment_id="E-unit",
    )


def new_session(settings: SessionSettings) -> DisintegrationSession:
    segmenter = ClassicalSegmenter()
    analyser = FrameAnalyser(segmenter, settings.pixel_size_m, settings.expected_shape)
    return DisintegrationSession(analyser, settings, f"{segmenter.name} {segmenter.version}")


def dumped(result: SessionResult) -> str:
    return json.dumps(result.to_json(), sort_keys=True)


def test_a_droplet_series_goes_through_with_figures_near_the_truth(twin_film: Film) -> None:
    session = new_session(settings_for(twin_film))
    samples = []
    for stamp, image in twin_film.frames:
        samples.append(session.add_frame(image, stamp))
        if session.done:
            break
    result = session.finish()
    truth = twin_film.series
    assert result.success, result.message
    assert result.stop_reason is StopReason.ABSORBED
    # Frames before contact have no time.
    assert all(math.isnan(s.elapsed_s) for s in samples[: twin_film.pre_roll])
    # Contact is the midpoint between the last dry frame and the first droplet frame.
    assert result.contact_stamp_ns == LANDING_NS
    assert samples[twin_film.pre_roll].elapsed_s == pytest.approx(FRAME_S / 2)
    assert result.time_s[0] == pytest.approx(FRAME_S / 2) and np.all(np.diff(result.time_s) > 0)
    # Live regimes: absorption while the droplet is there, complete after.
    live = [s.regime for s in samples[twin_film.pre_roll :]]
    assert 1 in live and live[-1] == 3
    analysis = result.analysis
    assert analysis is not None
    assert analysis.absorption_time_s == pytest.approx(truth.absorption_time_s, rel=0.05)
    washburn = next(f for f in analysis.fits if f.model == "washburn")
    assert washburn.value("C") == pytest.approx(truth.washburn_coefficient_m2_per_s, rel=0.10)
    swelling = next(f for f in analysis.fits if f.model == "first_order" and f.series == "tablet_height")
    assert swelling.value("k_s") == pytest.approx(truth.swelling_rate_per_s, rel=0.10)
    assert analysis.predicted_disintegration_time_s == pytest.approx(truth.disintegration_time_s, rel=0.10)
    assert [r.regime for r in analysis.regimes][-3:] == [
        1,
        2,
        3,
    ]  # spreading (50 ms) falls before the first frame
    # Area: the first frames after spreading against the twin's true side area.
    index = int(np.searchsorted(result.time_s, 0.5))
    true_area = float(np.interp(result.time_s[index], truth.time_s, truth.side_area_m2))
    assert result.droplet_area_m2[index] == pytest.approx(true_area, rel=0.05)
    # Frames after the droplet vanished count as gone (0), not as missing numbers.
    assert result.frame_statuses[FrameStatus.NO_DROPLET.value] >= 3
    assert result.droplet_volume_m3[-1] == 0.0


def test_bad_frames_mid_test_are_statuses_and_the_recording_reanalyses_identically(
    twin_film: Film, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = settings_for(twin_film)
    session = new_session(settings)
    path = tmp_path / "E-unit"
    recording = FrameRecordingWriter(path, recording_settings(settings, ClassicalSegmenter(), None, 2))
    bad_at = twin_film.pre_roll + 10
    black = np.zeros((CAMERA.height, CAMERA.width, 3), np.uint8)
    small = twin_film.frames[bad_at][1][::2, ::2].copy()
    grey = np.ascontiguousarray(twin_film.frames[bad_at][1][:, :, 1])
    bad: list[tuple[NDArray[np.uint8], str | None]] = [
        (black, None),
        (small, None),
        (np.zeros((0, 0, 3), np.uint8), None),
        (grey, "mono8"),
    ]
    with recording:
        for index, (stamp, image) in enumerate(twin_film.frames):
            if index == bad_at:
                for offset, (frame, encoding) in enumerate(bad, start=1):
                    session.add_frame(frame, stamp - 5000 + offset * 1000, encoding)
                    recording.write(stamp - 5000 + offset * 1000, frame, encoding)
                session.add_rejected(stamp - 100, FrameStatus.WRONG_ENCODING, "bayer_rggb8 is not supported")
                recording.write_rejected(
                    stamp - 100, FrameStatus.WRONG_ENCODING, "bayer_rggb8 is not supported"
                )
            session.add_frame(image, stamp)
            recording.write(stamp, image)
            if session.done:
                break
    live = session.finish()
    assert live.success, live.message
    statuses = live.frame_statuses
    assert statuses[FrameStatus.DARK_FRAME.value] == 1
    assert statuses[FrameStatus.WRONG_SIZE.value] == 1
    assert statuses[FrameStatus.EMPTY_FRAME.value] == 1
    assert statuses[FrameStatus.WRONG_ENCODING.value] == 1
    # The bad frames stay in the series as NaN rows, in order.
    assert int(np.isnan(live.droplet_area_m2).sum()) == 4
    assert np.all(np.diff(live.time_s) > 0)

    stored = open_recording(path.with_suffix(".mkv"))
    assert len(stored) == live.frames_analysed
    again = reanalyse_recording(path.with_suffix(".json"))
    assert again.recorded_segmenter == "classical classical-1"
    assert dumped(again.result) == dumped(live)

    # The same numbers through the command line.
    capsys.readouterr()
    assert workcell(["analyse-video", str(path.with_suffix(".mkv")), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert json.dumps(printed, sort_keys=True) == dumped(live)


def test_recorded_frames_read_back_bit_exactly(twin_film: Film, tmp_path: Path) -> None:
    frames = twin_film.frames[:12]
    with FrameRecordingWriter(tmp_path / "exact", {"note": "bit-exact"}) as writer:
        for stamp, image in frames:
            writer.write(stamp, image)
    recording = open_recording(tmp_path / "exact.mkv")
    assert recording.settings == {"note": "bit-exact"}
    back = list(recording.frames())
    assert [f.stamp_ns for f in back] == [stamp for stamp, _ in frames]
    assert all(
        f.image is not None and np.array_equal(f.image, image)
        for f, (_, image) in zip(back, frames, strict=True)
    )
    with pytest.raises(VisionError, match="never overwritten"):
        FrameRecordingWriter(tmp_path / "exact", {})
    with pytest.raises(VisionError, match="no recording manifest"):
        open_recording(tmp_path / "missing.mkv")


class SlowSegmenter:
    """The classical segmenter made slower than the camera, to force skipping."""

    name = "classical"
    version = "classical-1"

    def __init__(self, delay_s: float) -> None:
        self._inner = ClassicalSegmenter()
        self._delay_s = delay_s

    def segment(self, image: NDArray[np.uint8]) -> Segmentation:
        time.sleep(self._delay_s)
        return self._inner.segment(image)


def test_live_session_skips_frames_when_behind_and_its_recording_reanalyses_identically(
    twin_film: Film, tmp_path: Path
) -> None:
    settings = settings_for(twin_film)
    segmenter = SlowSegmenter(0.02)
    analyser = FrameAnalyser(segmenter, settings.pixel_size_m, settings.expected_shape)
    session = DisintegrationSession(analyser, settings, "classical classical-1")
    recording = FrameRecordingWriter(tmp_path / "live", recording_settings(settings, segmenter, None, 2))
    seen: list[float] = []
    live = LiveSession(session, recording, lambda sample, image: seen.append(sample.elapsed_s), max_pending=2)
    live.start()
    for stamp, image in twin_film.frames:  # a camera three times faster than the analysis
        if not live.submit(image, stamp):
            break
        time.sleep(0.007)
    assert live.wait_done(20.0), "the live session did not reach the end of the test"
    result, stats = live.finish()
    assert result.success, result.message
    assert stats.skipped > 0 and stats.analysed == result.frames_analysed == len(seen)
    assert stats.analysed + stats.skipped <= stats.delivered
    assert stats.analysed_per_s < stats.delivered_per_s
    assert "skipped" in stats.describe()
    again = reanalyse_recording(tmp_path / "live.mkv")
    assert dumped(again.result) == dumped(result)


def test_reanalysis_refuses_other_models_unless_asked(twin_film: Film, tmp_path: Path) -> None:
    settings = settings_for(twin_film)
    session = new_session(settings)
    with FrameRecordingWriter(
        tmp_path / "m", recording_settings(settings, ClassicalSegmenter(), None, 2)
    ) as rec:
        for stamp, image in twin_film.frames[:20]:
            session.add_frame(image, stamp)
            rec.write(stamp, image)

    class Other(SlowSegmenter):
        version = "classical-2"

    with pytest.raises(VisionError, match=r"classical classical-2 \(recorded: classical classical-1\)"):
        reanalyse_recording(tmp_path / "m.json", Other(0.0))
    allowed = reanalyse_recording(tmp_path / "m.json", Other(0.0), allow_other_models=True)
    assert allowed.frames == 20


def test_a_recording_analysed_with_the_learned_regime_model_reanalyses_with_the_shipped_one(
    twin_film: Film, tmp_path: Path
) -> None:
    settings = settings_for(twin_film)
    regimes = load_regime_model(DEFAULT_REGIME_MODEL)
    segmenter = ClassicalSegmenter()
    analyser = FrameAnalyser(segmenter, settings.pixel_size_m, settings.expected_shape)
    session = DisintegrationSession(analyser, settings, "classical classical-1", regimes)
    with FrameRecordingWriter(tmp_path / "r", recording_settings(settings, segmenter, regimes, 2)) as rec:
        for stamp, image in twin_film.frames:
            session.add_frame(image, stamp)
            rec.write(stamp, image)
            if session.done:
                break
    live = session.finish()
    assert live.success and any("learned model" in note for note in live.analysis.messages)  # type: ignore[union-attr]
    again = reanalyse_recording(tmp_path / "r.mkv")
    assert again.recorded_regime_model.startswith("regime_segmentation")
    assert dumped(again.result) == dumped(live)
    with pytest.raises(VisionError, match=r"physics baseline \(recorded: regime_segmentation"):
        reanalyse_recording(
            tmp_path / "r.mkv", regime_model=None, regime_model_path=None, baseline_regimes=True
        )


def test_bag_reanalysis_gives_the_direct_result(
    twin_film: Film, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = settings_for(twin_film)
    bag = tmp_path / "camera.mcap"
    with McapRecorder(bag, "c1", "E-unit") as writer:
        writer.add_channel("/camera/pixel_size_m", "std_msgs/msg/Float64")
        writer.add_channel("/camera/image_raw", "sensor_msgs/msg/Image")
        writer.add_channel("/other/image", "sensor_msgs/msg/Image")
        writer.write("/camera/pixel_size_m", serialize_message(Float64(data=CAMERA.pixel_size_m)), START_NS)
        for stamp, image in twin_film.frames:
            writer.write("/camera/image_raw", encode_image(image, "bgr8", stamp, "camera"), stamp + 5_000_000)
            writer.write("/other/image", encode_image(image[:8, :8], "bgr8", stamp, "x"), stamp + 6_000_000)
        writer.write("/camera/image_raw", b"\x00\x01\x00\x00broken", twin_film.frames[-1][0] + 1)
    assert bag_pixel_size_m(bag) == CAMERA.pixel_size_m
    direct, read = analyse_frames(
        (RecordedFrame(stamp, image, encoding="bgr8") for stamp, image in twin_film.frames),
        settings,
        ClassicalSegmenter(),
        None,
    )
    template = replace(settings, pixel_size_m=1e-3)  # replaced by the bag's pixel scale
    from_bag = reanalyse_bag(bag, None, ClassicalSegmenter(), template=template)
    assert from_bag.frames == read
    assert dumped(from_bag.result) == dumped(direct)
    with pytest.raises(VisionError, match="no messages on /camera/nothing"):
        reanalyse_bag(bag, settings, ClassicalSegmenter(), topic="/camera/nothing")

    tablet = settings.tablet
    options = ["--porosity", str(tablet.porosity), "--thickness-m", str(tablet.thickness_m)]
    capsys.readouterr()
    assert workcell(["analyse-video", "--bag", str(bag), "--segmenter", "classical", *options]) == 0
    printed = capsys.readouterr().out
    assert "droplet fully absorbed" in printed and "fit washburn of droplet_volume" in printed
    assert workcell(["analyse-video", "--bag", str(bag), str(bag)]) == 2
    assert "exactly one" in capsys.readouterr().err
