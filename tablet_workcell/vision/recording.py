"""Lossless recording of the frames a disintegration test analysed, for bit-exact re-analysis.

Why: a test's figures must be reproducible from its raw data. The live session writes
every frame it analysed (and only those: frames skipped because the analysis fell behind
are not part of the result, so they are not part of the record), with its camera stamp,
and the analysis settings; :func:`tablet_workcell.vision.reanalysis.reanalyse_recording`
runs the same analysis over it and must give identical numbers.

Layout of a recording named ``<stem>``:

* ``<stem>.mkv``: the frames of the video format (H x W x 3 uint8 BGR, the size of the first
  such frame) as an FFV1 video in Matroska. FFV1 is lossless: OpenCV's FFmpeg back end
  writes and reads it back bit-exactly (tested), at about 16 ms per 640x480 frame on one
  core, off the analysis thread.
* ``<stem>.extra.npz``: frames that do not fit the video (another size, mono, empty) as
  numpy arrays, so a bad frame is re-analysed too, not copied from its live status.
* ``<stem>.json``: the manifest: format version, analysis settings, and one entry per
  frame in analysis order: camera stamp [ns], where its pixels are (``video`` index,
  ``extra`` key, or ``rejected`` with the status and message of a frame that never became
  pixels, e.g. an unsupported encoding on the wire). Written last: a recording without its
  manifest is unfinished.

Writing runs in a thread behind a bounded queue: when the encoder falls behind, ``write``
blocks, which slows the analysis thread, which then skips camera frames explicitly
(counted). Nothing queues without bound.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from tablet_workcell.vision.types import FrameStatus, VisionError

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
VIDEO_SUFFIX = ".mkv"
MANIFEST_SUFFIX = ".json"
EXTRA_SUFFIX = ".extra.npz"
MAX_EXTRA_FRAMES = 200  # bad frames kept as pixels; more than this are kept as their status only
QUEUE_FRAMES = 8  # frames waiting for the encoder before write() blocks
FOURCC = "FFV1"


class RecordingFormatError(VisionError):
    """A frame recording that is missing, unfinished, damaged or of another format version."""


@dataclass(frozen=True)
class RecordedFrame:
    """One frame of a recording, in analysis order."""

    stamp_ns: int
    image: NDArray[np.uint8] | None  # None for a frame rejected before it had pixels
    status: FrameStatus | None = None  # the rejection's status when image is None
    message: str = ""
    encoding: str | None = None  # the sensor_msgs/Image encoding it arrived in (None: from the shape)


def recording_paths(path: Path) -> tuple[Path, Path, Path]:
    """(video, manifest, extra) paths of a recording named by any of its files or its stem."""
    path = Path(path)
    name = path.name
    for suffix in (EXTRA_SUFFIX, VIDEO_SUFFIX, MANIFEST_SUFFIX):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    stem = path.with_name(name)
    return (
        stem.with_name(name + VIDEO_SUFFIX),
        stem.with_name(name + MANIFEST_SUFFIX),
        stem.with_name(name + EXTRA_SUFFIX),
    )


class FrameRecordingWriter:
    """Writes one recording; ``close()`` (or the context manager) finishes it."""

    def __init__(self, path: Path, settings: Mapping[str, Any], fps_hint: float = 30.0) -> None:
        self.video_path, self.manifest_path, self.extra_path = recording_paths(path)
        for existing in (self.video_path, self.manifest_path):
            if existing.exists():
                raise RecordingFormatError(
                    f"{existing} already exists; a recording is never overwritten, choose another name."
                )
        self.video_path.parent.mkdir(parents=True, exist_ok=True)
        self._settings = dict(settings)
        self._fps = fps_hint if fps_hint > 0 else 30.0
        self._entries: list[dict[str, Any]] = []
        self._extra: dict[str, NDArray[np.uint8]] = {}
        self._video_shape: tuple[int, ...] | None = None
        self._video_frames = 0
        self._queue: queue.Queue[NDArray[np.uint8] | None] = queue.Queue(maxsize=QUEUE_FRAMES)
        self._writer: cv2.VideoWriter | None = None
        self._error: str = ""
        self._thread: threading.Thread | None = None
        self._closed = False

    # ------------------------------------------------------------------ writing
    def write(self, stamp_ns: int, image: NDArray[np.uint8], encoding: str | None = None) -> None:
        """Append an analysed frame (blocks while the encoder is QUEUE_FRAMES behind).

        The pixels are stored as they are (an rgb8 frame's channels are not swapped) with
        their ``encoding``, so re-analysis hands the analyser exactly what it got live.
        """
        self._check_open()
        entry: dict[str, Any] = {"stamp_ns": int(stamp_ns)}
        if encoding is not None:
            entry["encoding"] = encoding
        if isinstance(image, np.ndarray) and self._fits_video(image):
            entry["video"] = self._video_frames
            self._entries.append(entry)
            self._video_frames += 1
            self._queue.put(np.array(image, copy=True))  # the caller's buffer may be reused
            return
        key = f"f{len(self._entries)}"
        if len(self._extra) < MAX_EXTRA_FRAMES:
            self._extra[key] = np.array(image, copy=True)
            self._entries.append({**entry, "extra": key})
        else:
            self._entries.append(
                {
                    "stamp_ns": int(stamp_ns),
                    "rejected": FrameStatus.WRONG_SIZE.value,
                    "message": f"frame of shape {image.shape} not kept (over {MAX_EXTRA_FRAMES} bad frames)",
                }
            )

    def write_rejected(self, stamp_ns: int, status: FrameStatus, message: str) -> None:
        """Append a frame that never became pixels (e.g. an unsupported wire encoding)."""
        self._check_open()
        self._entries.append({"stamp_ns": int(stamp_ns), "rejected": status.value, "message": message})

    def _fits_video(self, image: NDArray[np.uint8]) -> bool:
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 or image.size == 0:
            return False
        if self._video_shape is None:
            self._start_video(image.shape)
        return image.shape == self._video_shape

    def _start_video(self, shape: tuple[int, ...]) -> None:
        height, width = shape[0], shape[1]
        writer = cv2.VideoWriter(
            str(self.video_path), cv2.VideoWriter.fourcc(*FOURCC), self._fps, (width, height), True
        )
        if not writer.isOpened():
            raise RecordingFormatError(
                f"OpenCV cannot open an {FOURCC} video writer for {self.video_path}; this OpenCV build "
                "lacks FFmpeg's FFV1 encoder. Install opencv-python (with FFmpeg) or record elsewhere."
            )
        self._writer, self._video_shape = writer, tuple(shape)
        self._thread = threading.Thread(target=self._encode, name="frame-recording", daemon=True)
        self._thread.start()

    def _encode(self) -> None:
        writer = self._writer
        assert writer is not None
        while True:
            frame = self._queue.get()
            if frame is None:
                return
            try:
                writer.write(frame)
            except cv2.error as error:  # keep draining so write() never blocks forever
                self._error = self._error or f"encoding a frame failed: {error}"

    def _check_open(self) -> None:
        if self._closed:
            raise RecordingFormatError(f"the recording {self.manifest_path} is closed; start a new one.")

    # ------------------------------------------------------------------ finishing
    @property
    def frame_count(self) -> int:
        return len(self._entries)

    def close(self, stop_reason: str = "") -> Path:
        """Finish the video, write the extra frames and the manifest; returns the manifest path.

        ``stop_reason``: how the live test ended (a re-analysis that runs out of frames ends
        the same way, e.g. cancelled rather than complete).
        """
        if self._closed:
            return self.manifest_path
        self._closed = True
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
        if self._writer is not None:
            self._writer.release()
        if self._error:
            raise RecordingFormatError(f"the recording {self.video_path} is incomplete: {self._error}.")
        if self._extra:
            with self.extra_path.open("wb") as file:
                np.savez(file, **self._extra)  # type: ignore[arg-type]
        manifest = {
            "format": "tablet_workcell frame recording",
            "version": FORMAT_VERSION,
            "settings": self._settings,
            "video": self.video_path.name if self._video_shape is not None else None,
            "video_shape": list(self._video_shape) if self._video_shape is not None else None,
            "extra": self.extra_path.name if self._extra else None,
            "stop_reason": stop_reason,
            "frames": self._entries,
        }
        temporary = self.manifest_path.with_name(self.manifest_path.name + ".part")
        temporary.write_text(json.dumps(manifest, indent=1))
        temporary.replace(self.manifest_path)
        logger.info(
            "recorded %d frames (%d in the video) to %s",
            len(self._entries),
            self._video_frames,
            self.video_path,
        )
        return self.manifest_path

    def __enter__(self) -> FrameRecordingWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class FrameRecording:
    """A finished recording: its settings and a way to walk its frames."""

    manifest_path: Path
    settings: dict[str, Any]
    entries: tuple[dict[str, Any], ...]
    stop_reason: str = ""  # how the live test ended ("" when not recorded)

    def __len__(self) -> int:
        return len(self.entries)

    def frames(self) -> Iterator[RecordedFrame]:
        """The frames in analysis order, decoded from the video and the extra file."""
        video_path, _, extra_path = recording_paths(self.manifest_path)
        capture = None
        extra: Mapping[str, NDArray[np.uint8]] = {}
        npz = None
        try:
            if any("video" in entry for entry in self.entries):
                capture = cv2.VideoCapture(str(video_path))
                if not capture.isOpened():
                    raise RecordingFormatError(f"{video_path} cannot be opened; the recording is incomplete.")
            if any("extra" in entry for entry in self.entries):
                npz = np.load(extra_path, allow_pickle=False)
                extra = npz
            next_video = 0
            for entry in self.entries:
                stamp = int(entry["stamp_ns"])
                if "video" in entry:
                    assert capture is not None
                    ok, image = capture.read()
                    if not ok or int(entry["video"]) != next_video:
                        raise RecordingFormatError(
                            f"{video_path} ends at frame {next_video} but the manifest lists more; "
                            "the video is truncated."
                        )
                    next_video += 1
                    yield RecordedFrame(
                        stamp, np.asarray(image, dtype=np.uint8), encoding=entry.get("encoding")
                    )
                elif "extra" in entry:
                    pixels = np.asarray(extra[entry["extra"]])
                    yield RecordedFrame(stamp, pixels, encoding=entry.get("encoding"))
                else:
                    yield RecordedFrame(stamp, None, FrameStatus(entry["rejected"]), str(entry["message"]))
        except (OSError, KeyError, ValueError) as error:
            raise RecordingFormatError(f"the recording {self.manifest_path} is damaged: {error}.") from None
        finally:
            if capture is not None:
                capture.release()
            if npz is not None:
                npz.close()


def open_recording(path: Path) -> FrameRecording:
    """Read a recording's manifest (name the .mkv, the .json or the common stem)."""
    _, manifest_path, _ = recording_paths(path)
    if not manifest_path.is_file():
        raise RecordingFormatError(
            f"no recording manifest at {manifest_path}; name a recording's .mkv or .json file "
            "(a recording without its .json was not finished)."
        )
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise RecordingFormatError(
            f"{manifest_path} is not a readable recording manifest: {error}."
        ) from None
    if not isinstance(manifest, dict) or manifest.get("version") != FORMAT_VERSION:
        found = manifest.get("version") if isinstance(manifest, dict) else None
        raise RecordingFormatError(
            f"{manifest_path} is frame recording version {found!r}; this analysis reads version "
            f"{FORMAT_VERSION}. Re-analyse it with the package version that wrote it."
        )
    return FrameRecording(
        manifest_path,
        dict(manifest["settings"]),
        tuple(manifest["frames"]),
        str(manifest.get("stop_reason") or ""),
    )
