"""The camera's calibration file: image size, optical frame, object-side pixel size, intrinsics.

Format: the ROS camera calibration YAML that ``camera_calibration`` writes and
``camera_info_manager`` reads (``image_width``, ``image_height``, ``camera_name``,
``camera_matrix``, ``distortion_model``, ``distortion_coefficients``,
``rectification_matrix``, ``projection_matrix``; matrices as ``{rows, cols, data}``), plus
two keys of this cell:

* ``pixel_size_m``: the size of one pixel in the droplet's plane [m/px], measured by
  filming a scale (or a gauge pin of known diameter) at the tablet's position. A side-view
  goniometer with a telecentric lens has one scale over the whole field, which a pinhole
  ``camera_matrix`` cannot express without the working distance; the droplet area in mm^2
  needs exactly this number. The camera node publishes it latched on
  ``/camera/pixel_size_m`` (std_msgs/Float64) next to CameraInfo (docs/devices/camera.md).
* ``frame_id``: the optical frame named in every image header (``camera_optical_frame``).

``camera_matrix`` and the rest are optional: without them CameraInfo's K is all zeros,
which ROS defines as "uncalibrated" (sensor_msgs/CameraInfo). Every problem raises
:class:`CalibrationError` with a sentence naming the file, the key, the value and the fix.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tablet_workcell.errors import ConfigError

DISTORTION_MODELS = ("plumb_bob", "rational_polynomial", "equidistant")
KNOWN_KEYS = {
    "image_width",
    "image_height",
    "camera_name",
    "frame_id",
    "pixel_size_m",
    "camera_matrix",
    "distortion_model",
    "distortion_coefficients",
    "rectification_matrix",
    "projection_matrix",
}
MIN_PIXEL_SIZE_M = 1e-7  # 0.1 µm/px: beyond any optical microscope
MAX_PIXEL_SIZE_M = 1e-3  # 1 mm/px: a droplet of a few mm would be a handful of pixels


class CalibrationError(ConfigError):
    """The calibration file is missing, unreadable, or holds a value that cannot be right."""


@dataclass(frozen=True)
class CameraCalibration:
    """What the camera node needs to publish CameraInfo and the pixel scale."""

    image_width: int
    image_height: int
    pixel_size_m: float
    frame_id: str = "camera_optical_frame"
    camera_name: str = "disintegration_camera"
    camera_matrix: tuple[float, ...] = (0.0,) * 9  # row-major 3x3 K; all zeros: uncalibrated
    distortion_model: str = "plumb_bob"
    distortion_coefficients: tuple[float, ...] = ()
    rectification_matrix: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
    projection_matrix: tuple[float, ...] = (0.0,) * 12  # row-major 3x4 P
    source: str = ""  # the file it came from (for messages)

    @property
    def pixel_size_mm(self) -> float:
        """mm per pixel, the unit of the docs and of the operator's scale bar."""
        return self.pixel_size_m * 1e3

    @property
    def calibrated_intrinsics(self) -> bool:
        return any(value != 0.0 for value in self.camera_matrix)

    def size_mismatch(self, width: int, height: int) -> str:
        """A sentence when a frame of ``width`` x ``height`` does not fit this calibration; else ''."""
        if (width, height) == (self.image_width, self.image_height):
            return ""
        return (
            f"the camera delivers {width}x{height} frames but the calibration {self.source or ''} is for "
            f"{self.image_width}x{self.image_height}; set the camera's resolution or recalibrate "
            "(the pixel size would be wrong)."
        )


def load_calibration(path: Path | str) -> CameraCalibration:
    """Read and validate a calibration file (see the module docstring for the format)."""
    file = Path(path)
    if not file.is_file():
        raise CalibrationError(
            f"camera calibration file {file} does not exist; point calibration_path at the file "
            "written for this camera (see docs/devices/camera.md)."
        )
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise CalibrationError(f"camera calibration file {file} is not valid YAML: {error}") from error
    if not isinstance(data, Mapping):
        raise CalibrationError(
            f"camera calibration file {file} must hold a mapping of key: value, not {type(data).__name__}."
        )
    return calibration_from_mapping(data, str(file))


def calibration_from_mapping(data: Mapping[str, Any], source: str = "<mapping>") -> CameraCalibration:
    """Validate parsed calibration data; ``source`` names it in error messages."""
    unknown = sorted(str(key) for key in data if key not in KNOWN_KEYS)
    if unknown:
        raise CalibrationError(
            f"{source}: unknown key(s) {unknown}; known keys: {', '.join(sorted(KNOWN_KEYS))}."
        )
    width = _positive_int(data, "image_width", source)
    height = _positive_int(data, "image_height", source)
    pixel = _number(data.get("pixel_size_m"))
    if pixel is None:
        raise CalibrationError(
            f"{source}: pixel_size_m is {data.get('pixel_size_m')!r}; give the object-side size of one pixel "
            "in metres "
            "(e.g. 2.0e-5 for 0.02 mm/px)."
        )
    if not MIN_PIXEL_SIZE_M <= pixel <= MAX_PIXEL_SIZE_M:
        raise CalibrationError(
            f"{source}: pixel_size_m {pixel!r} m/px is outside {MIN_PIXEL_SIZE_M:g}..{MAX_PIXEL_SIZE_M:g}; "
            f"it is in metres per pixel ({pixel!r} m = {float(pixel) * 1e3:g} mm); was it given in mm or µm?"
        )
    frame_id = _text(data, "frame_id", "camera_optical_frame", source)
    model = _text(data, "distortion_model", "plumb_bob", source)
    if model not in DISTORTION_MODELS:
        raise CalibrationError(
            f"{source}: distortion_model {model!r} is not one of {', '.join(DISTORTION_MODELS)}."
        )
    k = _matrix(data, "camera_matrix", 3, 3, source)
    if k is not None and (k[0] < 0.0 or k[4] < 0.0 or k[8] not in (0.0, 1.0)):
        raise CalibrationError(
            f"{source}: camera_matrix {list(k)} must have positive focal lengths (fx, fy) "
            "and 1 in the corner."
        )
    d = _matrix(data, "distortion_coefficients", 1, None, source)
    r = _matrix(data, "rectification_matrix", 3, 3, source)
    p = _matrix(data, "projection_matrix", 3, 4, source)
    defaults = CameraCalibration(width, height, float(pixel))
    return CameraCalibration(
        image_width=width,
        image_height=height,
        pixel_size_m=float(pixel),
        frame_id=frame_id,
        camera_name=_text(data, "camera_name", defaults.camera_name, source),
        camera_matrix=k if k is not None else defaults.camera_matrix,
        distortion_model=model,
        distortion_coefficients=d if d is not None else (),
        rectification_matrix=r if r is not None else defaults.rectification_matrix,
        projection_matrix=p if p is not None else _projection_of(k),
        source=source,
    )


def _projection_of(k: tuple[float, ...] | None) -> tuple[float, ...]:
    """P = [K | 0] for a monocular camera when only K is given (camera_info_manager's habit)."""
    if k is None:
        return (0.0,) * 12
    return (k[0], k[1], k[2], 0.0, k[3], k[4], k[5], 0.0, k[6], k[7], k[8], 0.0)


def _number(value: object) -> float | None:
    """A finite number, or None. Strings that read as numbers count: YAML 1.1 (PyYAML) reads
    ``2e-5`` (no decimal point) as the string '2e-5', which a calibration file will contain."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _positive_int(data: Mapping[str, Any], key: str, source: str) -> int:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= 100_000:
        raise CalibrationError(
            f"{source}: {key} is {value!r}; give the image size in pixels as a positive integer (e.g. 640)."
        )
    return value


def _text(data: Mapping[str, Any], key: str, default: str, source: str) -> str:
    value = data.get(key, default)
    if not isinstance(value, str) or not value.strip() or any(ch.isspace() for ch in value):
        raise CalibrationError(f"{source}: {key} is {value!r}; give a non-empty name without spaces.")
    return value


def _matrix(
    data: Mapping[str, Any], key: str, rows: int, cols: int | None, source: str
) -> tuple[float, ...] | None:
    """A ``{rows, cols, data}`` matrix (or a flat list); None when the key is absent."""
    if key not in data or data[key] is None:
        return None
    raw = data[key]
    values: Any = raw.get("data") if isinstance(raw, Mapping) else raw
    if isinstance(raw, Mapping):
        given = (raw.get("rows"), raw.get("cols"))
        expected_cols = cols if cols is not None else given[1]
        if given != (rows, expected_cols):
            raise CalibrationError(
                f"{source}: {key} is {given[0]}x{given[1]}; it must be {rows}x{cols or 'N'}."
            )
    if not isinstance(values, Sequence) or isinstance(values, str):
        raise CalibrationError(f"{source}: {key} must list its numbers under 'data', not {values!r}.")
    numbers: list[float] = []
    for value in values:
        number = _number(value)
        if number is None:
            raise CalibrationError(f"{source}: {key} holds {value!r}; every entry must be a finite number.")
        numbers.append(number)
    if cols is not None and len(numbers) != rows * cols:
        raise CalibrationError(
            f"{source}: {key} has {len(numbers)} numbers; a {rows}x{cols} matrix has {rows * cols}."
        )
    return tuple(numbers)
