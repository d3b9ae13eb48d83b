"""Camera frame sources (video file, network stream), the calibration file, and the simulated
disintegration station whose camera films the droplet the pump places."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from tablet_workcell.devices.camera.calibration import CalibrationError, load_calibration
from tablet_workcell.devices.camera.capture import FrameGrabber
from tablet_workcell.devices.camera.driver import (
    CameraFrame,
    CameraSource,
    EndOfVideoError,
    SourceKind,
    resolve_source,
)
from tablet_workcell.devices.camera.health import CameraHealth
from tablet_workcell.devices.camera.sim_options import config_from_options
from tablet_workcell.devices.camera.stream_server import MjpegStreamServer
from tablet_workcell.devices.errors import DeviceDisconnectedError, DeviceError, DeviceProtocolError
from tablet_workcell.devices.sim_process import SimulatorProcess, SimulatorStartError
from tablet_workcell.devices.syringe_pump.driver import SyringePumpDriver
from tablet_workcell.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
FILE_RATE_HZ = 20.0
BASE = "image_width: 640\nimage_height: 480\npixel_size_m: 2e-5"  # 2e-5: YAML 1.1 reads a string


def level_frame(level: int, width: int = 160, height: int = 120) -> np.ndarray:
    return np.full((height, width, 3), level, np.uint8)


@pytest.fixture
def video(tmp_path: Path) -> Path:
    """15 frames of 160x120 at 20 fps, frame i at grey level 10 i (MJPG in AVI)."""
    path = tmp_path / "test.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), FILE_RATE_HZ, (160, 120))
    assert writer.isOpened()
    for i in range(15):
        writer.write(level_frame(10 * i))
    writer.release()
    return path


def grey(frame: CameraFrame) -> float:
    return float(frame.image.mean())


# ---------------------------------------------------------------------- sources
def test_sources_are_told_apart_and_a_locator_names_a_url(tmp_path: Path) -> None:
    assert resolve_source(0).kind is SourceKind.DEVICE and resolve_source("2").target == 2
    assert resolve_source("/dev/video3").kind is SourceKind.DEVICE
    assert resolve_source("rtsp://10.0.0.5/live").kind is SourceKind.URL
    assert resolve_source(str(tmp_path / "run.mp4")).kind is SourceKind.FILE
    locator = tmp_path / "camera.url"
    locator.write_text("http://127.0.0.1:9/stream.mjpg\n")
    assert resolve_source(str(locator)).target == "http://127.0.0.1:9/stream.mjpg"
    with pytest.raises(
        DeviceDisconnectedError, match=r"does not exist .yet.; is the camera's simulator running"
    ):
        resolve_source(str(tmp_path / "missing.url"))
    locator.write_text("not a url\n")
    with pytest.raises(DeviceError, match=r"must hold one URL"):
        resolve_source(str(locator))
    with pytest.raises(DeviceError, match=r"no camera source set"):
        resolve_source("  ")


def test_a_video_file_plays_at_its_own_rate_ends_and_loops(video: Path) -> None:
    with CameraSource(str(video)) as source:
        assert "15 frames" in source.identity and source.frame_rate_hz == pytest.approx(FILE_RATE_HZ)
        started = time.monotonic()
        frames = [source.read() for _ in range(15)]
        elapsed = time.monotonic() - started
        with pytest.raises(EndOfVideoError, match=r"ended after 15 frames; set loop"):
            source.read()
    assert [f.image.shape for f in frames] == [(120, 160, 3)] * 15
    assert [round(grey(f) / 10) for f in frames] == list(range(15))
    assert frames[-1].position_s == pytest.approx(14 / FILE_RATE_HZ)
    assert 14 / FILE_RATE_HZ - 0.05 <= elapsed < 14 / FILE_RATE_HZ + 0.5  # paced, not decoded at once

    with CameraSource(str(video), loop=True, realtime=False) as source:
        started = time.monotonic()
        frames = [source.read() for _ in range(20)]
        assert time.monotonic() - started < 0.5  # not paced
    assert round(grey(frames[15]) / 10) == 0 and round(grey(frames[19]) / 10) == 4  # started over


def test_missing_or_broken_sources_raise_typed_errors(tmp_path: Path) -> None:
    with pytest.raises(DeviceError, match=r"does not exist; check the source parameter") as missing:
        CameraSource(str(tmp_path / "none.avi")).open()
    assert missing.value.code == "config" and not isinstance(missing.value, DeviceDisconnectedError)
    junk = tmp_path / "junk.avi"
    junk.write_bytes(b"this is not a video" * 100)
    with pytest.raises(DeviceProtocolError, match=r"cannot be decoded by OpenCV"):
        CameraSource(str(junk)).open()
    with pytest.raises(DeviceDisconnectedError, match=r"cannot open url http://127.0.0.1:9/stream.mjpg"):
        CameraSource("http://127.0.0.1:9/stream.mjpg", open_timeout_s=1.0).open()
    with pytest.raises(DeviceDisconnectedError, match=r"not open"):
        CameraSource(str(tmp_path / "none.avi")).read()
    with pytest.raises(DeviceError, match=r"read_timeout_s 0.0 s must be positive"):
        CameraSource("0", read_timeout_s=0.0)


# ---------------------------------------------------------------------- streams
@pytest.fixture
def server() -> Iterator[MjpegStreamServer]:
    counter = iter(range(10**9))
    with MjpegStreamServer(lambda now: level_frame(next(counter) % 200), frame_rate_hz=40.0) as stream:
        yield stream


def test_an_mjpeg_stream_is_read_by_opencv_and_a_stop_is_noticed(server: MjpegStreamServer) -> None:
    with CameraSource(server.url, read_timeout_s=1.0) as source:
        assert "network stream" in source.identity and "FFMPEG" in source.identity
        frames = [source.read() for _ in range(10)]
        assert [f.image.shape for f in frames] == [(120, 160, 3)] * 10
        levels = [grey(f) for f in frames]
        assert levels == sorted(levels)  # in order, JPEG q95 keeps a flat level to within 1
        server.stop()  # unplugged: the connection closes
        started = time.monotonic()
        with pytest.raises(DeviceDisconnectedError, match=r"no frame from url .* or the stream ended"):
            for _ in range(100):  # frames already in the socket buffer come first
                source.read()
        assert time.monotonic() - started < 1.5


def test_a_hung_stream_raises_within_the_read_timeout(server: MjpegStreamServer) -> None:
    with CameraSource(server.url, read_timeout_s=0.5) as source:
        source.read()
        server.freeze()  # the camera hangs: connection open, nothing sent
        started = time.monotonic()
        with pytest.raises(DeviceDisconnectedError, match=r"within 0.5 s"):
            for _ in range(100):
                source.read()
        waited = time.monotonic() - started
    assert waited < 0.5 + 1.0


def test_the_grabber_reconnects_when_the_camera_returns() -> None:
    first = MjpegStreamServer(lambda now: level_frame(50), frame_rate_hz=40.0)
    url = first.start()
    port = int(url.split(":")[2].split("/")[0])
    health = CameraHealth("camera")
    got: list[CameraFrame] = []
    arrived = threading.Event()

    def on_frame(frame: CameraFrame) -> None:
        got.append(frame)
        if grey(frame) > 100:
            arrived.set()

    source = CameraSource(url, read_timeout_s=0.3, open_timeout_s=1.0)
    source.open()
    health.connected_to(url, source.identity)
    grabber = FrameGrabber(source, health, on_frame, expected_size=(160, 120), reconnect_period_s=0.1)
    grabber.set_streaming(True)
    grabber.start()
    second: MjpegStreamServer | None = None
    try:
        deadline = time.monotonic() + 5.0
        while not got and time.monotonic() < deadline:
            time.sleep(0.01)
        first.stop()
        while health.frames_failed == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert health.frames_failed >= 1 and not health.connected
        second = MjpegStreamServer(lambda now: level_frame(150), frame_rate_hz=40.0, port=port)
        second.start()
        assert arrived.wait(5.0), "no frame from the camera after it came back"
        assert health.connected and health.reconnects >= 1
        assert float(health.values()["fps"]) > 0.0 and health.frames_published == len(got)
    finally:
        assert grabber.stop(5.0)
        first.stop()
        if second is not None:
            second.stop()


def test_frames_of_the_wrong_size_are_dropped_with_a_reason(server: MjpegStreamServer) -> None:
    health = CameraHealth("camera")
    errors: list[DeviceError] = []
    source = CameraSource(server.url)
    source.open()
    grabber = FrameGrabber(
        source, health, lambda frame: None, expected_size=(640, 480), on_error=errors.append
    )
    grabber.set_streaming(True)
    grabber.start()
    try:
        deadline = time.monotonic() + 5.0
        while health.frames_dropped < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        assert grabber.stop(5.0)
    assert health.frames_dropped >= 3 and health.frames_published == 0
    assert "a 160x120 frame arrived where the calibration expects 640x480" in str(errors[0])


# ---------------------------------------------------------------------- the simulated station
def dark_above(image: np.ndarray, tablet_top_row: int) -> int:
    """Dark pixels in a band just above the tablet (the droplet; the needle tip is higher)."""
    band = image[tablet_top_row - tablet_top_row // 12 : tablet_top_row - 2].mean(axis=2)
    return int(np.count_nonzero(band < 100))


def test_the_station_films_the_droplet_the_pump_places(tmp_path: Path) -> None:
    # 320x240 at 40 µm/px: the tablet (8 x 1.5 mm) top is at 0.8 x 240 - 37.5 = 154.5 px.
    options = {"width": 320, "height": 240, "pixel_size_m": 4e-5, "frame_rate_hz": 20, "porosity": 0.09}
    with SimulatorProcess("disintegration_station", options, link_dir=tmp_path, time_scale=2.0) as sim:
        assert sim.ports["camera"].startswith("http://127.0.0.1:")
        assert (tmp_path / "camera.url").read_text().strip() == sim.ports["camera"]
        with CameraSource(str(tmp_path / "camera.url")) as camera:
            dry = [camera.read() for _ in range(3)]
            assert [f.image.shape for f in dry] == [(240, 320, 3)] * 3
            assert max(dark_above(f.image, 154) for f in dry) < 20  # tablet and needle, no droplet
            assert not (tmp_path / "disintegration_truth.json").exists()
            with SyringePumpDriver(sim.ports["syringe_pump"], timeout_s=2.0) as pump:
                assert pump.dispense_droplet(5.0, 300.0, timeout_s=20.0) == pytest.approx(5.0, rel=0.01)
            # Frames sent while nobody read wait in the socket first: read until the droplet shows.
            deadline, wet = time.monotonic() + 5.0, 0
            while wet <= 300 and time.monotonic() < deadline:
                wet = dark_above(camera.read().image, 154)
        assert wet > 300, "the droplet did not show above the tablet"
    truth = json.loads((tmp_path / "disintegration_truth.json").read_text())
    (dispense,) = truth["dispenses"]
    assert dispense["volume_m3"] == pytest.approx(5e-9, rel=0.01)
    assert truth["tablet"]["porosity"] == 0.09 and truth["time_scale"] == 2.0
    assert dispense["truth"]["washburn_coefficient_m2_per_s"] > 0.0
    assert dispense["truth"]["absorption_time_s"] > 1.0 and dispense["truth"]["disintegration_time_s"] > 0.0
    assert dispense["regimes"][0]["regime"] == 0  # spreading first
    series = dispense["series"]
    assert series["side_area_m2"][0] > 0.0 and len(series["time_s"]) == len(series["regime"])
    assert not (tmp_path / "camera.url").exists()  # the locator goes with the station


def test_station_options_are_checked_with_sentences() -> None:
    config = config_from_options(
        {"recipe": "mcc:0.7,lactose:0.3", "frame_rate_hz": "15", "appearance": "test"}
    )
    assert config.frame_rate_hz == 15.0 and dict(config.recipe) == {"mcc": 0.7, "lactose": 0.3}
    with pytest.raises(ConfigError, match=r"unknown disintegration station option.*'fps'"):
        config_from_options({"fps": "30"})
    with pytest.raises(ConfigError, match=r"recipe item 'mcc' must look like material:fraction"):
        config_from_options({"recipe": "mcc"})
    with pytest.raises(ConfigError, match=r"porosity=1.5 must lie between 0 and 1"):
        config_from_options({"porosity": "1.5"})
    with pytest.raises(ConfigError, match=r"appearance='pretty' must be default, train or test"):
        config_from_options({"appearance": "pretty"})
    with pytest.raises(SimulatorStartError, match=r"frame_rate_hz='fast' is not a valid float"):
        SimulatorProcess("disintegration_station", {"frame_rate_hz": "fast"}).start()


# ---------------------------------------------------------------------- calibration
def test_the_shipped_calibration_matches_the_simulated_camera() -> None:
    calibration = load_calibration(REPO / "config" / "camera_calibration.yaml")
    defaults = config_from_options({})
    assert (calibration.image_width, calibration.image_height) == (defaults.width, defaults.height)
    assert calibration.pixel_size_m == defaults.pixel_size_m and calibration.pixel_size_mm == pytest.approx(
        0.02
    )
    assert calibration.frame_id == "camera_optical_frame" and calibration.calibrated_intrinsics
    assert calibration.projection_matrix[0] == calibration.camera_matrix[0] == 5000.0
    assert calibration.size_mismatch(640, 480) == ""
    assert "delivers 1280x720 frames but the calibration" in calibration.size_mismatch(1280, 720)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("image_width: [", "is not valid YAML"),
        ("- a\n- b\n", "must hold a mapping"),
        ("image_width: 640\nimage_height: 480\npixel_size_m: 2e-5\npixel_sise_m: 1", "unknown key"),
        ("image_width: 640\nimage_height: 480\npixel_size_m: 0.02", "was it given in mm or µm"),
        ("image_width: 640\nimage_height: 480", "pixel_size_m is None; give the object-side size"),
        ("image_width: -640\nimage_height: 480\npixel_size_m: 2e-5", "image_width is -640"),
        ("image_width: 640\nimage_height: 480\npixel_size_m: 2e-5\nframe_id: 'my frame'", "without spaces"),
        (
            f"{BASE}\ncamera_matrix: {{rows: 2, cols: 3, data: []}}",
            "camera_matrix is 2x3; it must be 3x3",
        ),
        (
            f"{BASE}\ncamera_matrix: [1, 0, 0, 0, 1, 0, 0, 0]",
            "has 8 numbers; a 3x3 matrix has 9",
        ),
        (
            "image_width: 640\nimage_height: 480\npixel_size_m: 2e-5\ndistortion_model: fisheye9",
            "is not one of",
        ),
    ],
)
def test_bad_calibration_files_are_refused_with_sentences(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "calibration.yaml"
    path.write_text(content)
    with pytest.raises(CalibrationError, match=message) as refused:
        load_calibration(path)
    assert str(path) in str(refused.value)


def test_a_missing_calibration_file_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(CalibrationError, match=r"does not exist; point calibration_path at the file"):
        load_calibration(tmp_path / "absent.yaml")
