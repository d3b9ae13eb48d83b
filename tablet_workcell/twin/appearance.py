"""How the simulated goniometer camera looks: render settings and their random variation.

The droplet-segmentation network is trained on rendered frames and must then work on
real backlit goniometer images, which differ from instrument to instrument in backlight
brightness, exposure, focus, sensor noise, colour cast, needle, substrate gloss and
alignment. Rather than imitate one instrument exactly, the training set draws these from
wide ranges (domain randomisation), and the benchmark measures generalisation on ranges
the network never saw: for the *held-out* parameters (lighting, contrast, noise, blur and
background) ``random_appearance(rng, split="test")`` draws from intervals disjoint from
the training intervals. Geometry (what is where) never depends on the appearance, so the
ground-truth masks stay exact whatever the settings.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from types import MappingProxyType
from typing import Literal

import numpy as np

from tablet_workcell.errors import WorkcellError

Split = Literal["train", "test"]
NeedleMode = Literal["scene", "none", "above"]


class RenderError(WorkcellError):
    """Render settings or a scene the simulated camera cannot draw; the message names the fix."""


@dataclass(frozen=True)
class RenderSettings:
    """Sensor, optics and appearance of one simulated camera setup (frozen, hashable: cache key).

    Grey levels are of an 8-bit sensor; ``*_level`` values of objects are fractions of the
    local backlight (a backlit silhouette is darker than, but proportional to, the light
    behind it). Misalignment rotates/offsets the whole scene, geometry and mask alike.
    """

    width: int = 640
    height: int = 480
    pixel_size_m: float = 20e-6  # object-side size of one pixel: 640 px = 12.8 mm
    colour: bool = True  # True: HxWx3 BGR uint8; False: HxW mono uint8
    baseline_row: float | None = None  # image row of the stage top; None: 0.8 x height
    centre_col: float | None = None  # image column of the tablet axis; None: width / 2
    # Lighting and optics.
    background_level: float = 215.0  # backlight grey level at the frame centre
    illumination_gain: float = 1.0  # exposure multiplier; above 1 the backlight may saturate
    gradient_x: float = 0.04  # fractional change of the backlight from left to right edge
    gradient_y: float = -0.03  # fractional change of the backlight from top to bottom edge
    vignetting: float = 0.12  # fractional darkening at the frame corners
    noise_sigma: float = 1.5  # sensor noise, grey levels
    blur_sigma_px: float = 0.7  # defocus / optics blur
    tint_bgr: tuple[float, float, float] = (1.0, 1.0, 1.0)  # per-channel gains (colour cast)
    # Objects.
    droplet_level: float = 0.08  # droplet silhouette darkness
    specular_strength: float = 0.65  # bright lens spot inside the droplet, fraction of backlight
    tablet_level: float = 0.12
    stage_level: float = 0.08
    stage_texture: float = 0.05  # relative amplitude of the stage's brushed texture
    texture_seed: int = 0
    reflection_strength: float = 0.1  # mirror images on the glossy tablet top and stage
    # Background clutter: a faint out-of-focus blob (dust on the diffuser, a reflection).
    clutter_strength: float = 0.0  # signed fraction of backlight; negative: dark blob
    clutter_x: float = 0.25  # blob centre, fraction of width
    clutter_y: float = 0.25  # blob centre, fraction of height
    clutter_radius_px: float = 80.0
    # Misalignment of the whole scene.
    rotation_deg: float = 0.0
    offset_px: tuple[float, float] = (0.0, 0.0)  # (x right, y down)
    # Needle: "scene" uses the scene's needle, "none" hides it, "above" puts it above the apex.
    needle: NeedleMode = "scene"
    needle_diameter_m: float | None = None  # None: the scene's needle diameter
    needle_gap_m: float = 0.5e-3  # tip above the droplet apex in "above" mode
    needle_level: float = 0.1

    def __post_init__(self) -> None:
        # Validation here, once, so the renderer's hot path can trust every value.
        for name, value, fix in (
            ("width", self.width, "use a positive integer number of pixels, e.g. 640"),
            ("height", self.height, "use a positive integer number of pixels, e.g. 480"),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise RenderError(f"RenderSettings.{name} is {value!r}; {fix}.")
        for field in fields(self):
            value = getattr(self, field.name)
            values = value if isinstance(value, tuple) else (value,)
            for v in values:
                if isinstance(v, float) and not math.isfinite(v):
                    raise RenderError(f"RenderSettings.{field.name} is {value!r}; use finite numbers.")
        for name in ("pixel_size_m", "background_level", "illumination_gain"):
            if not getattr(self, name) > 0.0:
                raise RenderError(f"RenderSettings.{name} is {getattr(self, name)!r}; it must be positive.")
        if self.needle_diameter_m is not None and not self.needle_diameter_m > 0.0:
            raise RenderError(
                f"RenderSettings.needle_diameter_m is {self.needle_diameter_m!r}; "
                "use a positive diameter or None for the scene's needle."
            )
        non_negative = (
            "noise_sigma", "blur_sigma_px", "vignetting", "specular_strength", "reflection_strength",
            "stage_texture", "clutter_radius_px", "needle_gap_m", "droplet_level", "tablet_level",
            "stage_level", "needle_level",
        )  # fmt: skip
        for name in non_negative:
            if getattr(self, name) < 0.0:
                raise RenderError(f"RenderSettings.{name} is {getattr(self, name)!r}; it must be >= 0.")
        if min(self.tint_bgr) <= 0.0:
            raise RenderError(f"RenderSettings.tint_bgr is {self.tint_bgr!r}; every gain must be positive.")
        if self.needle not in ("scene", "none", "above"):
            raise RenderError(f"RenderSettings.needle is {self.needle!r}; use 'scene', 'none' or 'above'.")

    @property
    def baseline_row_px(self) -> float:
        return 0.8 * self.height if self.baseline_row is None else self.baseline_row

    @property
    def centre_col_px(self) -> float:
        return self.width / 2.0 if self.centre_col is None else self.centre_col


# Intervals (low, high) of the parameters random_appearance draws, per split. The held-out
# parameters have disjoint train and test intervals; the rest are shared. Gradients are
# drawn with a random sign, their interval bounds the magnitude.
_SHARED: dict[str, tuple[float, float]] = {
    "illumination_gain": (0.95, 1.12),
    "specular_strength": (0.2, 0.9),
    "tablet_level": (0.04, 0.35),
    "stage_level": (0.03, 0.3),
    "stage_texture": (0.0, 0.15),
    "reflection_strength": (0.0, 0.3),
    "tint": (0.9, 1.06),
    "rotation_deg": (-1.5, 1.5),
    "offset_x_px": (-25.0, 25.0),
    "offset_y_px": (-12.0, 12.0),
    "needle_diameter_m": (0.3e-3, 0.9e-3),
    "needle_gap_m": (0.0, 1.5e-3),
    "needle_level": (0.03, 0.25),
    "clutter_radius_px": (30.0, 160.0),
}
_HELD_OUT: dict[Split, dict[str, tuple[float, float]]] = {
    "train": {
        "background_level": (165.0, 240.0),
        "droplet_level": (0.02, 0.14),
        "noise_sigma": (0.3, 3.5),
        "blur_sigma_px": (0.0, 1.1),
        "vignetting": (0.0, 0.18),
        "gradient": (0.0, 0.06),
        "clutter_strength": (0.0, 0.08),
    },
    "test": {
        "background_level": (100.0, 135.0),  # dim backlight: x max gain stays below train's
        "droplet_level": (0.16, 0.26),
        "noise_sigma": (4.0, 7.0),
        "blur_sigma_px": (1.3, 2.0),
        "vignetting": (0.22, 0.38),
        "gradient": (0.08, 0.15),
        "clutter_strength": (0.1, 0.18),
    },
}
HELD_OUT_PARAMETERS: tuple[str, ...] = tuple(_HELD_OUT["train"])


def appearance_ranges(split: Split) -> Mapping[str, tuple[float, float]]:
    """The (low, high) intervals ``random_appearance`` draws from for ``split`` (read-only).

    Published so the benchmark can state what "unseen appearance" means and tests can
    check that the held-out intervals of train and test do not overlap.
    """
    if split not in _HELD_OUT:
        raise RenderError(f"split is {split!r}; use 'train' or 'test'.")
    return MappingProxyType({**_SHARED, **_HELD_OUT[split]})


def random_appearance(
    rng: np.random.Generator,
    split: Split = "train",
    *,
    width: int = 640,
    height: int = 480,
    pixel_size_m: float = 20e-6,
    colour: bool = True,
) -> RenderSettings:
    """Draw one varied camera appearance; ``split="test"`` uses the held-out intervals.

    Varies illumination, exposure, noise, blur, colour cast, silhouette contrast, the
    droplet's lens highlight, reflections, stage texture, background gradient, vignetting,
    an out-of-focus blob, misalignment and the needle (scene's, hidden, or above the
    droplet with random thickness), so a network trained on these frames learns the
    droplet's shape rather than one instrument's look.
    """
    r = appearance_ranges(split)

    def draw(name: str) -> float:
        low, high = r[name]
        return float(rng.uniform(low, high))

    def signed(name: str) -> float:
        return draw(name) * (1.0 if rng.random() < 0.5 else -1.0)

    needle_choice: NeedleMode = ("scene", "none", "above")[int(rng.choice(3, p=(0.4, 0.25, 0.35)))]
    return RenderSettings(
        width=width,
        height=height,
        pixel_size_m=pixel_size_m,
        colour=colour,
        background_level=draw("background_level"),
        illumination_gain=draw("illumination_gain"),
        gradient_x=signed("gradient"),
        gradient_y=signed("gradient"),
        vignetting=draw("vignetting"),
        noise_sigma=draw("noise_sigma"),
        blur_sigma_px=draw("blur_sigma_px"),
        tint_bgr=(draw("tint"), draw("tint"), draw("tint")),
        droplet_level=draw("droplet_level"),
        specular_strength=draw("specular_strength"),
        tablet_level=draw("tablet_level"),
        stage_level=draw("stage_level"),
        stage_texture=draw("stage_texture"),
        texture_seed=int(rng.integers(0, 2**31 - 1)),
        reflection_strength=draw("reflection_strength") if rng.random() < 0.7 else 0.0,
        clutter_strength=signed("clutter_strength"),
        clutter_x=float(rng.uniform(0.05, 0.95)),
        clutter_y=float(rng.uniform(0.05, 0.6)),
        clutter_radius_px=draw("clutter_radius_px"),
        rotation_deg=draw("rotation_deg"),
        offset_px=(draw("offset_x_px"), draw("offset_y_px")),
        needle=needle_choice,
        needle_diameter_m=draw("needle_diameter_m"),
        needle_gap_m=draw("needle_gap_m"),
        needle_level=draw("needle_level"),
    )
