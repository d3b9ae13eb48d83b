"""The cell layout the arm works in: station poses, safe travel height, press zone, envelope.

Read from ``config/cell_layout.yaml`` and checked before anything moves, so a typo or a
pose in millimetres fails with one sentence instead of a crash into the press. Positions
are metres in the arm's base frame (the frame its G-code coordinates use, divided by
1000). The press zone is the axis-aligned box the arm must stay out of while the press
moves; the work envelope is the box the driver keeps every target inside (the arm
firmware's soft endstops are a second, outer limit).
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tablet_workcell.errors import ConfigError

Vec3 = tuple[float, float, float]
REQUIRED_STATIONS = ("home", "dispenser", "press", "disintegration_camera", "tablet_tray")
TOP_LEVEL_KEYS = {
    "frame",
    "work_envelope",
    "safe_travel_height_m",
    "press_zone",
    "travel_speed_m_per_s",
    "approach_speed_m_per_s",
    "stations",
}
MAX_REACH_M = 2.0  # a coordinate beyond this is almost surely in millimetres


def default_layout_path() -> Path:
    """``config/cell_layout.yaml`` of the source tree."""
    return Path(__file__).resolve().parents[3] / "config" / "cell_layout.yaml"


@dataclass(frozen=True)
class Box:
    """Axis-aligned box, corners in metres."""

    min_m: Vec3
    max_m: Vec3

    def contains(self, point_m: Vec3, margin_m: float = 0.0) -> bool:
        return all(
            lo - margin_m <= p <= hi + margin_m
            for p, lo, hi in zip(point_m, self.min_m, self.max_m, strict=True)
        )

    def intersects_segment(self, start_m: Vec3, end_m: Vec3) -> bool:
        """Whether the straight path from ``start_m`` to ``end_m`` passes through the box (slab test)."""
        t_low, t_high = 0.0, 1.0
        for a, b, lo, hi in zip(start_m, end_m, self.min_m, self.max_m, strict=True):
            delta = b - a
            if abs(delta) < 1e-12:
                if not lo <= a <= hi:
                    return False
                continue
            t1, t2 = (lo - a) / delta, (hi - a) / delta
            t_low, t_high = max(t_low, min(t1, t2)), min(t_high, max(t1, t2))
            if t_low > t_high:
                return False
        return True


@dataclass(frozen=True)
class Station:
    name: str
    position_m: Vec3


@dataclass(frozen=True)
class CellLayout:
    frame: str
    work_envelope: Box
    safe_travel_height_m: float
    press_zone: Box
    travel_speed_m_per_s: float
    approach_speed_m_per_s: float
    stations: Mapping[str, Station]

    def station(self, name: str) -> Station:
        if name not in self.stations:
            close = difflib.get_close_matches(name, self.stations, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(
                f"no station called {name!r} in the cell layout; known: {sorted(self.stations)}.{hint}"
            )
        return self.stations[name]


def _vector(value: Any, where: str) -> Vec3:
    if not isinstance(value, list | tuple) or len(value) != 3:
        raise ConfigError(f"{where} must be a list of three numbers [x, y, z] in metres, not {value!r}.")
    numbers: list[float] = []
    for item in value:
        if isinstance(item, bool) or not isinstance(item, int | float) or not math.isfinite(item):
            raise ConfigError(f"{where} must hold three finite numbers in metres; {item!r} is not one.")
        numbers.append(float(item))
    if any(abs(n) > MAX_REACH_M for n in numbers):
        raise ConfigError(
            f"{where} {numbers} is more than {MAX_REACH_M} m from the arm's base; positions are in metres, "
            "not millimetres."
        )
    return (numbers[0], numbers[1], numbers[2])


def _box(value: Any, where: str) -> Box:
    if not isinstance(value, Mapping) or set(value) != {"min", "max"}:
        raise ConfigError(f"{where} must have exactly 'min' and 'max' corners, each [x, y, z] in metres.")
    low, high = _vector(value["min"], f"{where}.min"), _vector(value["max"], f"{where}.max")
    for axis, lo, hi in zip("xyz", low, high, strict=True):
        if lo >= hi:
            raise ConfigError(f"{where}: min {axis}={lo} m must be below max {axis}={hi} m.")
    return Box(low, high)


def _positive(data: Mapping[str, Any], key: str, limit: float) -> float:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 < value <= limit:
        raise ConfigError(f"{key}={value!r} must be a number above 0 and at most {limit}.")
    return float(value)


def layout_from_mapping(data: Any, source: str = "cell layout") -> CellLayout:
    """Validate a parsed layout; every problem is one sentence naming the value and the fix."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source} must be a mapping of settings, not {type(data).__name__}.")
    unknown = sorted(set(data) - TOP_LEVEL_KEYS)
    if unknown:
        hints = [difflib.get_close_matches(key, TOP_LEVEL_KEYS, n=1) for key in unknown]
        suggestion = "; ".join(f"{k!r} -> {h[0]!r}?" for k, h in zip(unknown, hints, strict=True) if h)
        raise ConfigError(f"{source}: unknown setting(s) {unknown}. {suggestion}".strip())
    missing = sorted(TOP_LEVEL_KEYS - set(data) - {"frame"})
    if missing:
        raise ConfigError(f"{source}: missing setting(s) {missing}.")
    envelope = _box(data["work_envelope"], "work_envelope")
    press_zone = _box(data["press_zone"], "press_zone")
    safe_z = data["safe_travel_height_m"]
    if (
        isinstance(safe_z, bool)
        or not isinstance(safe_z, int | float)
        or not envelope.min_m[2] < safe_z <= envelope.max_m[2]
    ):
        raise ConfigError(
            f"safe_travel_height_m={safe_z!r} must be a height inside the work envelope "
            f"({envelope.min_m[2]} to {envelope.max_m[2]} m)."
        )
    if safe_z <= press_zone.max_m[2]:
        raise ConfigError(
            f"safe_travel_height_m={safe_z} m must be above the top of the press zone "
            f"({press_zone.max_m[2]} m), so that travel at the safe height never enters the press."
        )
    raw_stations = data["stations"]
    if not isinstance(raw_stations, Mapping):
        raise ConfigError("stations must be a mapping of station name to {position: [x, y, z]}.")
    absent = [name for name in REQUIRED_STATIONS if name not in raw_stations]
    if absent:
        raise ConfigError(f"stations {absent} are missing; the cell needs {list(REQUIRED_STATIONS)}.")
    stations: dict[str, Station] = {}
    for name, entry in raw_stations.items():
        if not isinstance(entry, Mapping) or set(entry) != {"position"}:
            raise ConfigError(f"station {name!r} must be {{position: [x, y, z]}} in metres.")
        position = _vector(entry["position"], f"station {name!r} position")
        if not envelope.contains(position):
            raise ConfigError(
                f"station {name!r} at {list(position)} m is outside the work envelope "
                f"{list(envelope.min_m)}..{list(envelope.max_m)} m; move the station or widen the envelope."
            )
        if position[2] > safe_z:
            raise ConfigError(
                f"station {name!r} is at z={position[2]} m, above the safe travel height {safe_z} m; "
                "raise safe_travel_height_m."
            )
        if name != "press" and press_zone.contains(position):
            raise ConfigError(
                f"station {name!r} at {list(position)} m is inside the press zone; "
                "only the press station may be."
            )
        stations[str(name)] = Station(str(name), position)
    return CellLayout(
        frame=str(data.get("frame", "arm_base")),
        work_envelope=envelope,
        safe_travel_height_m=float(safe_z),
        press_zone=press_zone,
        travel_speed_m_per_s=_positive(data, "travel_speed_m_per_s", 1.0),
        approach_speed_m_per_s=_positive(data, "approach_speed_m_per_s", 1.0),
        stations=stations,
    )


def load_layout(path: Path | None = None) -> CellLayout:
    """Read and validate the layout file (default: :func:`default_layout_path`)."""
    path = path or default_layout_path()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"cannot read the cell layout {path}: {error.strerror or error}.") from error
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"the cell layout {path} is not valid YAML: {error}.") from error
    return layout_from_mapping(data, str(path))
