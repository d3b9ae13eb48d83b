"""The cell layout file: the shipped one is valid, and each kind of mistake gets a sentence."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from tablet_workcell.devices.arm.layout import (
    REQUIRED_STATIONS,
    Box,
    default_layout_path,
    layout_from_mapping,
    load_layout,
)
from tablet_workcell.devices.arm.simulator import ArmFirmwareConfig
from tablet_workcell.errors import ConfigError


def shipped() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(default_layout_path().read_text())
    return data


def test_the_shipped_layout_is_valid_and_complete() -> None:
    layout = load_layout()
    assert set(REQUIRED_STATIONS) <= set(layout.stations)
    for station in layout.stations.values():
        assert layout.work_envelope.contains(station.position_m)
        assert station.position_m[2] <= layout.safe_travel_height_m
    assert layout.safe_travel_height_m > layout.press_zone.max_m[2]
    assert layout.press_zone.contains(layout.station("press").position_m)
    assert not layout.press_zone.contains(layout.station("home").position_m)


def test_the_shipped_envelope_is_inside_the_simulated_firmwares_soft_endstops() -> None:
    layout, firmware = load_layout(), ArmFirmwareConfig()
    for axis in range(3):
        assert firmware.min_mm[axis] / 1000.0 <= layout.work_envelope.min_m[axis]
        assert layout.work_envelope.max_m[axis] <= firmware.max_mm[axis] / 1000.0


def mutate(path: str, value: Any) -> dict[str, Any]:
    data = copy.deepcopy(shipped())
    *parents, last = path.split(".")
    node = data
    for key in parents:
        node = node[key]
    if value is KeyError:
        del node[last]
    else:
        node[last] = value
    return data


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("stations.press", KeyError, r"stations \['press'\] are missing"),
        ("stations.tablet_tray.position", [120.0, -200.0, 30.0], "metres, not millimetres"),
        ("stations.dispenser.position", [0.5, 0.0, 0.05], "outside the work envelope"),
        ("stations.dispenser.position", [0.3, 0.1, 0.05], "inside the press zone"),
        ("stations.home.position", [0.15, 0.0, 0.25], "above the safe travel height"),
        ("stations.home.position", [0.15, 0.0], "three numbers"),
        ("stations.home.position", [0.15, "x", 0.1], "finite numbers"),
        ("stations.home", [0.15, 0.0, 0.1], r"must be \{position: \[x, y, z\]\}"),
        ("work_envelope.min", [0.5, -0.3, 0.0], "min x=0.5 m must be below max x=0.4 m"),
        ("work_envelope", {"min": [0, 0, 0]}, "exactly 'min' and 'max'"),
        ("safe_travel_height_m", 0.5, "inside the work envelope"),
        ("safe_travel_height_m", 0.13, "above the top of the press zone"),
        ("travel_speed_m_per_s", 0.0, "travel_speed_m_per_s=0.0 must be a number above 0"),
        ("approach_speed_m_per_s", KeyError, r"missing setting\(s\) \['approach_speed_m_per_s'\]"),
        ("safe_travel_hieght_m", 0.2, "'safe_travel_hieght_m' -> 'safe_travel_height_m'"),
        ("stations", [1, 2], "mapping of station name"),
    ],
)
def test_each_mistake_is_refused_with_a_sentence(path: str, value: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        layout_from_mapping(mutate(path, value))


def test_unreadable_and_malformed_files_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the cell layout"):
        load_layout(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("stations: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_layout(bad)
    bad.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_layout(bad)


def test_an_unknown_station_name_suggests_the_closest() -> None:
    with pytest.raises(ConfigError, match="Did you mean 'tablet_tray'"):
        load_layout().station("tablet_try")


def test_segments_through_and_around_a_box() -> None:
    box = Box((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    assert box.intersects_segment((-1.0, 0.5, 0.5), (2.0, 0.5, 0.5))
    assert box.intersects_segment((0.5, 0.5, 2.0), (0.5, 0.5, 0.5))  # ends inside
    assert not box.intersects_segment((-1.0, 2.0, 0.5), (2.0, 2.0, 0.5))
    assert not box.intersects_segment((0.5, 0.5, 1.5), (0.6, 0.6, 1.2))  # above
    assert not box.intersects_segment((-1.0, -1.0, 0.5), (-0.1, 2.0, 0.5))
