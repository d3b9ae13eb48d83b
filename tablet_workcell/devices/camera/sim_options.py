"""Options of the simulated disintegration station, from the command line's ``name=value`` strings.

``python -m tablet_workcell.devices.serve disintegration_station --option recipe=mcc:0.7,lactose:0.3
--option porosity=0.12 --option frame_rate_hz=15`` — every option has a default; unknown names
and unparsable values are refused with a :class:`ConfigError` naming them. The syringe pump's
own options (``address``, ``diameter_mm``, ``stall_after_ul``, ``alarm_at_power_on``) pass
through to its simulator.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from tablet_workcell.errors import ConfigError, WorkcellError
from tablet_workcell.twin.blend import Formulation

PUMP_OPTIONS = frozenset({"address", "diameter_mm", "stall_after_ul", "alarm_at_power_on"})
Appearance = Literal["default", "train", "test"]


@dataclass(frozen=True)
class StationConfig:
    """The tablet under the needle, the camera, and what the twin needs to film the test."""

    recipe: Mapping[str, float] = field(default_factory=lambda: {"mcc": 0.69, "lactose": 0.3, "mgst": 0.01})
    tablet_diameter_mm: float = 8.0
    tablet_thickness_mm: float = 1.5
    porosity: float = 0.13
    tensile_strength_mpa: float = 2.0
    test_duration_s: float = 900.0  # the twin's series ends here; the last frame holds after
    sample_interval_s: float = 1.0 / 60.0  # the series' time step; frames show the nearest sample
    # Camera.
    width: int = 640
    height: int = 480
    pixel_size_m: float = 20e-6  # must match config/camera_calibration.yaml
    frame_rate_hz: float = 30.0  # frames per wall second (each spans time_scale/rate instrument s)
    jpeg_quality: int = 95
    appearance: Appearance = "default"  # default RenderSettings, or random_appearance(split)
    appearance_seed: int = 0  # draws the appearance once per run (fixed for the run)
    seed: int = 0  # sensor noise
    needle_gap_mm: float = 1.0  # needle tip above the dry tablet before the droplet
    host: str = "127.0.0.1"
    port: int = 0  # 0: a free port (announced, and written to <link dir>/camera.url)
    truth_path: str = ""  # JSON truth file; empty: <link dir>/disintegration_truth.json if linked
    freeze_after_s: float = 0.0  # > 0: the camera stops sending (connections stay open), wall s

    def __post_init__(self) -> None:
        positive = (
            "tablet_diameter_mm", "tablet_thickness_mm", "tensile_strength_mpa", "test_duration_s",
            "sample_interval_s", "pixel_size_m", "frame_rate_hz", "needle_gap_mm",
        )  # fmt: skip
        for name in positive:
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0.0):
                raise ConfigError(
                    f"disintegration station option {name}={value!r} must be a positive number."
                )
        if not 0.0 < self.porosity < 1.0:
            raise ConfigError(
                f"disintegration station option porosity={self.porosity!r} must lie between 0 and 1."
            )
        if not (self.width > 0 and self.height > 0):
            raise ConfigError(
                f"disintegration station options width={self.width}, height={self.height} "
                "must be positive numbers of pixels."
            )
        if not 1 <= self.jpeg_quality <= 100:
            raise ConfigError(
                f"disintegration station option jpeg_quality={self.jpeg_quality} must be 1..100."
            )
        if self.appearance not in ("default", "train", "test"):
            raise ConfigError(
                f"disintegration station option appearance={self.appearance!r} "
                "must be default, train or test."
            )
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"disintegration station option port={self.port} must be 0 (free) or 1..65535.")
        if not (math.isfinite(self.freeze_after_s) and self.freeze_after_s >= 0.0):
            raise ConfigError(
                f"disintegration station option freeze_after_s={self.freeze_after_s!r} must be >= 0."
            )
        try:
            Formulation.of(dict(self.recipe))
        except WorkcellError as error:
            raise ConfigError(f"disintegration station option recipe: {error}") from error

    @property
    def formulation(self) -> Formulation:
        return Formulation.of(dict(self.recipe))


def parse_recipe(text: str) -> dict[str, float]:
    """``"mcc:0.69,lactose:0.3,mgst:0.01"`` as mass fractions by material name."""
    recipe: dict[str, float] = {}
    for part in text.split(","):
        name, sep, value = part.partition(":")
        try:
            fraction = float(value)
        except ValueError:
            sep = ""
        if not sep or not name.strip():
            raise ConfigError(
                f"disintegration station option recipe item {part!r} must look like material:fraction "
                "(e.g. recipe=mcc:0.69,lactose:0.3,mgst:0.01)."
            )
        recipe[name.strip()] = fraction
    return recipe


def split_options(options: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(pump options, station options)."""
    pump = {name: value for name, value in options.items() if name in PUMP_OPTIONS}
    station = {name: value for name, value in options.items() if name not in PUMP_OPTIONS}
    return pump, station


def config_from_options(options: Mapping[str, Any]) -> StationConfig:
    """A :class:`StationConfig` from string (or typed) options."""
    types = {f.name: f.type for f in fields(StationConfig)}
    unknown = sorted(set(options) - set(types))
    if unknown:
        raise ConfigError(
            f"unknown disintegration station option(s) {unknown}; known: {sorted({*types, *PUMP_OPTIONS})}."
        )
    values: dict[str, Any] = {}
    for name, raw in options.items():
        text = str(raw).strip()
        kind = types[name]
        try:
            if name == "recipe":
                values[name] = dict(raw) if isinstance(raw, Mapping) else parse_recipe(text)
            elif kind == "int":
                values[name] = int(text)
            elif kind == "float":
                values[name] = float(text)
            else:
                values[name] = text
        except ValueError as error:
            raise ConfigError(
                f"disintegration station option {name}={text!r} is not a valid {kind}: {error}."
            ) from error
    return StationConfig(**values)
