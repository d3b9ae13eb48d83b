"""The cell as RViz should draw it, described without ROS: shapes, sizes, colours, labels.

The node turns each :class:`Shape` into a ``visualization_msgs/Marker`` in one fixed
frame. Everything the arm knows is drawn: the work envelope (edges), every station (a
pad with a label above it), the press zone (red while the press holds it, amber while
the arm holds it, faint grey when free), the tool (blue while the suction is on) with
what it carries, and the die and tablets where the arm has put them. The arm knows only
what it moved itself: a tablet the press ejects elsewhere is not drawn.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from tablet_workcell.devices.arm.layout import Box, CellLayout, Vec3
from tablet_workcell.devices.arm.transfer_plan import Payload

ShapeKind = Literal["cube", "cylinder", "text", "lines"]
Rgba = tuple[float, float, float, float]

PRESS_HOLDER = "press"
RED: Rgba = (0.9, 0.1, 0.1, 0.45)
AMBER: Rgba = (1.0, 0.65, 0.0, 0.35)
FREE: Rgba = (0.6, 0.6, 0.6, 0.15)
STATION: Rgba = (0.3, 0.55, 0.3, 0.9)
LABEL: Rgba = (1.0, 1.0, 1.0, 1.0)
ENVELOPE: Rgba = (0.5, 0.7, 1.0, 0.8)
TOOL_IDLE: Rgba = (0.7, 0.7, 0.7, 1.0)
TOOL_SUCTION: Rgba = (0.2, 0.4, 1.0, 1.0)
DIE: Rgba = (0.55, 0.55, 0.6, 1.0)
TABLET: Rgba = (0.97, 0.97, 0.92, 1.0)

STATION_PAD_M = (0.04, 0.04, 0.004)
TOOL_SIZE_M = (0.012, 0.012, 0.03)  # suction cup: diameter, diameter, height
PAYLOAD_SIZE_M = {Payload.DIE: (0.02, 0.02, 0.015), Payload.TABLET: (0.006, 0.006, 0.003)}
PAYLOAD_COLOUR = {Payload.DIE: DIE, Payload.TABLET: TABLET}
LABEL_HEIGHT_M = 0.015


@dataclass(frozen=True)
class Shape:
    namespace: str
    id: int
    kind: ShapeKind
    position_m: Vec3  # centre (text: where it stands)
    size_m: Vec3  # cube/cylinder extents; text: (0, 0, letter height)
    colour: Rgba
    text: str = ""
    points_m: tuple[Vec3, ...] = ()  # lines: pairs of end points


@dataclass
class CellScene:
    """What changes in the picture; :meth:`shapes` draws the whole of it."""

    layout: CellLayout
    tool_m: Vec3 | None = None
    suction_on: bool = False
    carrying: Payload = Payload.NONE
    zone_holder: str = ""
    placed: dict[str, Payload] = field(default_factory=dict)  # station -> what the arm put there

    def key(self) -> tuple[object, ...]:
        """Changes when the picture does (the tool to the nearest millimetre)."""
        tool = tuple(round(v, 3) for v in self.tool_m) if self.tool_m is not None else None
        return (tool, self.suction_on, self.carrying, self.zone_holder, tuple(sorted(self.placed.items())))

    def picked(self, station: str, payload: Payload) -> None:
        self.suction_on = True
        self.carrying = payload
        self.placed.pop(station, None)

    def put_down(self, station: str) -> None:
        self.suction_on = False
        if self.carrying is not Payload.NONE:
            self.placed[station] = self.carrying
        self.carrying = Payload.NONE

    def shapes(self) -> list[Shape]:
        return [
            *static_shapes(self.layout),
            zone_shape(self.layout.press_zone, self.zone_holder),
            *self._tool_shapes(),
            *placed_shapes(self.layout, self.placed),
        ]

    def _tool_shapes(self) -> list[Shape]:
        if self.tool_m is None:
            return []
        x, y, z = self.tool_m
        cup = Shape(
            "tool",
            0,
            "cylinder",
            (x, y, z + TOOL_SIZE_M[2] / 2),
            TOOL_SIZE_M,
            TOOL_SUCTION if self.suction_on else TOOL_IDLE,
        )
        if self.carrying is Payload.NONE:
            return [cup]
        size = PAYLOAD_SIZE_M[self.carrying]
        carried = Shape(
            "payload", 0, "cylinder", (x, y, z - size[2] / 2), size, PAYLOAD_COLOUR[self.carrying]
        )
        return [cup, carried]


def zone_colour(holder: str) -> Rgba:
    if holder == PRESS_HOLDER:
        return RED
    return AMBER if holder else FREE


def zone_shape(zone: Box, holder: str) -> Shape:
    centre = tuple((lo + hi) / 2 for lo, hi in zip(zone.min_m, zone.max_m, strict=True))
    size = tuple(hi - lo for lo, hi in zip(zone.min_m, zone.max_m, strict=True))
    return Shape(
        "press_zone",
        0,
        "cube",
        (centre[0], centre[1], centre[2]),
        (size[0], size[1], size[2]),
        zone_colour(holder),
        text=f"press zone: {holder or 'free'}",
    )


def box_edges(box: Box) -> tuple[Vec3, ...]:
    """The 12 edges of a box as 24 end points (a LINE_LIST)."""
    (x0, y0, z0), (x1, y1, z1) = box.min_m, box.max_m
    corners = [(x, y, z) for z in (z0, z1) for y in (y0, y1) for x in (x0, x1)]
    pairs = [(0, 1), (2, 3), (4, 5), (6, 7), (0, 2), (1, 3), (4, 6), (5, 7), (0, 4), (1, 5), (2, 6), (3, 7)]
    return tuple(point for a, b in pairs for point in (corners[a], corners[b]))


def static_shapes(layout: CellLayout) -> list[Shape]:
    """What never changes: the envelope, the station pads and their labels."""
    edges = box_edges(layout.work_envelope)
    shapes = [Shape("envelope", 0, "lines", (0.0, 0.0, 0.0), (0.002, 0.0, 0.0), ENVELOPE, points_m=edges)]
    for index, name in enumerate(sorted(layout.stations)):
        x, y, z = layout.stations[name].position_m
        pad_z = max(z - PAYLOAD_SIZE_M[Payload.DIE][2] - STATION_PAD_M[2] / 2, STATION_PAD_M[2] / 2)
        shapes.append(Shape("stations", index, "cube", (x, y, pad_z), STATION_PAD_M, STATION))
        shapes.append(
            Shape("labels", index, "text", (x, y, z + 0.05), (0.0, 0.0, LABEL_HEIGHT_M), LABEL, text=name)
        )
    return shapes


def placed_shapes(layout: CellLayout, placed: Mapping[str, Payload]) -> list[Shape]:
    """The die and tablets where the arm has put them (the payload hangs below the cup)."""
    shapes = []
    for index, (station, payload) in enumerate(sorted(placed.items())):
        if payload is Payload.NONE or station not in layout.stations:
            continue
        x, y, z = layout.stations[station].position_m
        size = PAYLOAD_SIZE_M[payload]
        shapes.append(
            Shape(
                "tablets" if payload is Payload.TABLET else "dies",
                index,
                "cylinder",
                (x, y, z - size[2] / 2),
                size,
                PAYLOAD_COLOUR[payload],
                text=f"{payload.name.lower()} at {station}",
            )
        )
    return shapes
