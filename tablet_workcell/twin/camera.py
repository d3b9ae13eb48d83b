"""Side-view camera of the sessile-drop test: rendered frames with exact segmentation masks.

What it imitates: a backlit contact-angle goniometer. A diffuse light panel sits behind
the droplet and the camera looks at it horizontally, so everything solid or liquid
appears as a dark silhouette against a bright background: the stage (dark band at the
bottom), the tablet (a dark rectangle, the side view of a flat cylinder), the droplet (a
dark circular segment, the side view of a spherical cap) and the dispensing needle (a
dark bar from the top edge). The droplet is a lens, so a bright spot of focused
backlight shows inside its silhouette; a glossy tablet top and stage show faint mirror
images. These are exactly the features that confuse a naive threshold segmentation.

Why it exists: the droplet-segmentation network (U-Net, physics notes "sessile-drop
disintegration test") is trained and validated on these frames, and the simulated camera
node publishes them. The mask is the ground truth of which pixel centres lie inside the
droplet or the tablet, computed analytically from the scene (no noise, no blur), so the
droplet's pixel area is known exactly and can be compared with
``DropletScene.droplet_side_area_m2``. Appearance (lighting, noise, blur, colour cast,
reflections, needle, misalignment, clutter) comes from ``RenderSettings``; see
``tablet_workcell.twin.appearance`` for why it varies and which ranges are held out.

Coordinates: pixel (row r, column c) covers x in [c, c + 1), y in [r, r + 1); the point
on the stage top at the tablet axis lies at image (centre_col_px, baseline_row_px) plus
``offset_px``, the scene rotated by ``rotation_deg`` about it; 1 px = ``pixel_size_m``.

Speed: the background of a setting is built once and cached; each frame only touches
the bounding boxes of the objects with vectorised numpy, then blurs and adds noise over
the whole frame (float32), well above 30 frames/s at 640x480 on one core.
"""

from __future__ import annotations

import functools
import logging
import math
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from tablet_workcell.twin.appearance import (
    HELD_OUT_PARAMETERS,
    RenderError,
    RenderSettings,
    appearance_ranges,
    random_appearance,
)
from tablet_workcell.twin.records import DropletScene

__all__ = [
    "HELD_OUT_PARAMETERS",
    "MASK_BACKGROUND",
    "MASK_DROPLET",
    "MASK_TABLET",
    "RenderError",
    "RenderSettings",
    "RenderedFrame",
    "appearance_ranges",
    "random_appearance",
    "render",
]

logger = logging.getLogger(__name__)

MASK_BACKGROUND = 0  # backlight, stage and needle
MASK_DROPLET = 1
MASK_TABLET = 2

F32 = NDArray[np.float32]
F64 = NDArray[np.float64]
_STAGE_SHEEN_DECAY_PX = 15.0  # how far below the baseline the stage's glossy sheen fades


@dataclass(frozen=True, eq=False)
class RenderedFrame:
    """One camera frame and its ground truth.

    ``droplet_area_px`` counts mask pixels labelled droplet; times the pixel area it
    approximates ``droplet_area_m2_true``, the exact side area of the scene's cap.
    """

    image: NDArray[np.uint8]  # HxWx3 BGR or HxW mono
    mask: NDArray[np.uint8]  # HxW: 0 background, 1 droplet, 2 tablet
    droplet_area_px: int
    droplet_area_m2_true: float
    pixel_size_m: float

    @property
    def droplet_area_m2_from_mask(self) -> float:
        """Droplet area as a perfect segmentation would measure it (pixel count x pixel area)."""
        return self.droplet_area_px * self.pixel_size_m**2


@dataclass(frozen=True)
class _Pose:
    """Maps scene pixel coordinates (u right, v up, origin at the tablet axis on the stage
    top) to image coordinates and back, including the settings' rotation and offset."""

    cx: float
    by: float
    cos: float
    sin: float
    width: int
    height: int

    @classmethod
    def of(cls, s: RenderSettings) -> _Pose:
        phi = math.radians(s.rotation_deg)
        return cls(
            s.centre_col_px + s.offset_px[0],
            s.baseline_row_px + s.offset_px[1],
            math.cos(phi),
            math.sin(phi),
            s.width,
            s.height,
        )

    def to_image(self, u: float, v: float) -> tuple[float, float]:
        return self.cx + self.cos * u - self.sin * v, self.by - (self.sin * u + self.cos * v)

    def to_scene(self, x: float, y: float) -> tuple[float, float]:
        dx, dy = x - self.cx, self.by - y
        return self.cos * dx + self.sin * dy, -self.sin * dx + self.cos * dy

    def grid(self, rows: F64, cols: F64) -> tuple[F64, F64]:
        """Scene coordinates (u, v) of the pixel centres of the given rows and columns
        (pixel ``c`` spans ``[c, c + 1)``, so its centre is at ``c + 0.5``)."""
        dx = (cols + 0.5 - self.cx)[None, :]
        dy = (self.by - rows - 0.5)[:, None]
        return self.cos * dx + self.sin * dy, -self.sin * dx + self.cos * dy

    def box(self, u0: float, u1: float, v0: float, v1: float) -> tuple[slice, slice, F64, F64] | None:
        """Image window covering a scene rectangle (plus an anti-aliasing margin), clipped
        to the frame, with the scene coordinates of its pixels; None when off-frame."""
        corners = [self.to_image(u, v) for u in (u0, u1) for v in (v0, v1)]
        xs, ys = [c[0] for c in corners], [c[1] for c in corners]
        c0, c1 = max(math.floor(min(xs)) - 2, 0), min(math.ceil(max(xs)) + 2, self.width)
        r0, r1 = max(math.floor(min(ys)) - 2, 0), min(math.ceil(max(ys)) + 2, self.height)
        if c0 >= c1 or r0 >= r1:
            return None
        u, v = self.grid(np.arange(r0, r1, dtype=np.float64), np.arange(c0, c1, dtype=np.float64))
        return slice(r0, r1), slice(c0, c1), u, v

    def top_v(self) -> float:
        """Highest scene height visible anywhere in the frame (needle extends to it)."""
        corners = (0.0, float(self.width)), (0.0, float(self.height))
        return max(self.to_scene(x, y)[1] for x in corners[0] for y in corners[1]) + 2.0


def _coverage(distance: F64) -> F64:
    """Anti-aliased coverage from a signed distance in pixels (negative inside):
    0.5 exactly on the edge, so coverage >= 0.5 agrees with the pixel-centre mask."""
    return np.clip(0.5 - distance, 0.0, 1.0)


@dataclass(frozen=True, eq=False)
class _Background:
    light: F32  # backlight behind each pixel (after gain, before objects)
    image: F32  # backlight with the stage drawn over it
    sheen: F32  # glossy stage reflection of the backlight (to remove where mirrored objects are)


@functools.lru_cache(maxsize=16)
def _background(s: RenderSettings) -> _Background:
    """Everything that depends on the settings alone: built once, then copied per frame."""
    logger.debug("building camera background for %dx%d", s.width, s.height)
    h, w = s.height, s.width
    y = np.linspace(-1.0, 1.0, h, dtype=np.float32)[:, None]
    x = np.linspace(-1.0, 1.0, w, dtype=np.float32)[None, :]
    light = (1.0 + 0.5 * s.gradient_x * x) * (1.0 + 0.5 * s.gradient_y * y)
    light = light * (1.0 - s.vignetting * (x * x + y * y) / 2.0)
    if s.clutter_strength != 0.0:
        bx, by = (s.clutter_x - 0.5) * 2.0, (s.clutter_y - 0.5) * 2.0
        rx, ry = 2.0 * s.clutter_radius_px / w, 2.0 * s.clutter_radius_px / h
        light = light * (
            1.0 + s.clutter_strength * np.exp(-0.5 * (((x - bx) / rx) ** 2 + ((y - by) / ry) ** 2))
        )
    light = (light * np.float32(s.background_level * s.illumination_gain)).astype(np.float32)

    pose = _Pose.of(s)
    _, v = pose.grid(np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64))
    stage = _coverage(v).astype(np.float32)  # stage occupies v <= 0
    texture = np.random.default_rng(s.texture_seed).standard_normal((h // 6 + 2, w // 40 + 2))
    streaks = cv2.resize(texture.astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    stage_tone = light * np.float32(s.stage_level) * (1.0 + np.float32(s.stage_texture) * streaks)
    sheen = stage * light * np.float32(s.reflection_strength)
    sheen *= np.exp(np.minimum(v, 0.0) / _STAGE_SHEEN_DECAY_PX).astype(np.float32)
    image = (light * (1.0 - stage) + stage * np.maximum(stage_tone, 0.0) + sheen).astype(np.float32)
    sheen = sheen.astype(np.float32)
    for array in (light, image, sheen):
        array.setflags(write=False)  # shared by every frame of these settings
    return _Background(light, image, sheen)


def _check_scene(scene: DropletScene) -> None:
    checks = (
        ("tablet_diameter_m", scene.tablet_diameter_m, scene.tablet_diameter_m > 0.0, "positive"),
        ("tablet_height_m", scene.tablet_height_m, scene.tablet_height_m >= 0.0, ">= 0"),
        ("droplet_base_radius_m", scene.droplet_base_radius_m, scene.droplet_base_radius_m >= 0.0, ">= 0"),
        ("needle_diameter_m", scene.needle_diameter_m, scene.needle_diameter_m > 0.0, "positive"),
    )
    for name, value, ok, rule in checks:
        if not (ok and math.isfinite(value)):
            raise RenderError(f"DropletScene.{name} is {value!r}; it must be finite and {rule}.")
    angle = scene.droplet_contact_angle_rad
    if scene.droplet_base_radius_m > 0.0 and not 0.0 <= angle < math.pi:
        raise RenderError(
            f"DropletScene.droplet_contact_angle_rad is {angle!r}; a spherical cap needs an angle "
            "in [0, pi) rad (0 or a zero base radius for no droplet)."
        )


@dataclass(frozen=True)
class _Geometry:
    """The scene in scene pixel units (u right, v up from the stage top at the tablet axis)."""

    half_d: float  # tablet half-diameter
    top: float  # tablet top
    cap_h: float  # droplet apex above the tablet top (0 without droplet)
    sphere_r: float
    centre_v: float  # sphere centre: tablet top minus (R - h)
    half_w: float  # half-width of the cap: R above 90 deg, else the base radius

    @classmethod
    def of(cls, scene: DropletScene, pixel_size_m: float) -> _Geometry:
        px = 1.0 / pixel_size_m
        half_d, top = 0.5 * scene.tablet_diameter_m * px, scene.tablet_height_m * px
        if not scene.has_droplet:
            return cls(half_d, top, 0.0, 0.0, top, 0.0)
        cap_h, sphere_r = scene.droplet_height_m * px, scene.droplet_sphere_radius_m * px
        obtuse = scene.droplet_contact_angle_rad >= math.pi / 2
        half_w = sphere_r if obtuse else scene.droplet_base_radius_m * px
        return cls(half_d, top, cap_h, sphere_r, top + cap_h - sphere_r, half_w)


def render(scene: DropletScene, settings: RenderSettings, rng: np.random.Generator) -> RenderedFrame:
    """Render one side-view frame of ``scene`` and its exact mask.

    The only random draw per frame is the sensor noise: one integer from ``rng`` seeds
    OpenCV's (per-thread) generator, so a given rng state gives the identical frame.
    Objects partly or wholly outside the frame are clipped; a needle dipping into the
    droplet hides it in the image while the mask keeps the droplet.
    """
    _check_scene(scene)
    bg = _background(settings)
    pose = _Pose.of(settings)
    g = _Geometry.of(scene, settings.pixel_size_m)
    img = bg.image.copy()
    mask = np.zeros((settings.height, settings.width), dtype=np.uint8)
    _draw_tablet(img, mask, bg, pose, g, settings)
    droplet_px = _draw_droplet(img, mask, bg.light, pose, g, settings) if g.sphere_r > 0.0 else 0
    _draw_needle(img, bg.light, pose, scene, settings, g.top + g.cap_h)
    image = _finish(img, settings, rng)
    return RenderedFrame(image, mask, droplet_px, scene.droplet_side_area_m2, settings.pixel_size_m)


def _draw_tablet(
    img: F32, mask: NDArray[np.uint8], bg: _Background, pose: _Pose, g: _Geometry, s: RenderSettings
) -> None:
    """Dark rectangle standing on the stage; its glossy top mirrors the backlight and the
    droplet, and the glossy stage shows the tablet's mirror image (no sheen there)."""
    window = pose.box(-g.half_d, g.half_d, -g.top, 0.0)
    if window is not None and s.reflection_strength > 0.0:
        rs, cs, u, v = window
        a = _coverage(np.maximum(np.abs(u) - g.half_d, np.maximum(-g.top - v, v)))
        img[rs, cs] -= a.astype(np.float32) * bg.sheen[rs, cs]

    window = pose.box(-g.half_d, g.half_d, 0.0, g.top)
    if window is None or g.top <= 0.0:
        return
    rs, cs, u, v = window
    light = bg.light[rs, cs]
    level = light * np.float32(s.tablet_level)
    if s.reflection_strength > 0.0:
        decay = min(max(2.0, 0.3 * g.cap_h), 10.0)
        gloss = s.reflection_strength * np.exp(-np.maximum(g.top - v, 0.0) / decay)
        if g.sphere_r > 0.0:
            mirror_v = 2.0 * g.top - g.centre_v
            gloss *= 1.0 - np.minimum(_coverage(np.hypot(u, v - mirror_v) - g.sphere_r), _coverage(v - g.top))
        level = level + light * gloss.astype(np.float32)
    a = _coverage(np.maximum(np.abs(u) - g.half_d, np.maximum(v - g.top, -v))).astype(np.float32)
    region = img[rs, cs]
    region += a * (level - region)
    inside = (np.abs(u) <= g.half_d) & (v <= g.top) & (v >= 0.0)
    mask[rs, cs][inside] = MASK_TABLET


def _draw_droplet(
    img: F32, mask: NDArray[np.uint8], light: F32, pose: _Pose, g: _Geometry, s: RenderSettings
) -> int:
    """Dark circular segment above the tablet top with a flat-topped lens highlight;
    returns its pixel count in the mask (pixel centres inside the cap)."""
    window = pose.box(-g.half_w, g.half_w, g.top, g.top + g.cap_h)
    if window is None:
        return 0
    rs, cs, u, v = window
    dv = v - g.centre_v
    a = np.minimum(_coverage(np.hypot(u, dv) - g.sphere_r), _coverage(g.top - v)).astype(np.float32)
    su, sv, spot_v = 0.3 * g.half_w + 0.5, 0.22 * g.cap_h + 0.5, g.top + 0.42 * g.cap_h
    spot = np.exp(-0.5 * ((u / su) ** 2 + ((v - spot_v) / sv) ** 2) ** 1.5)
    level = light[rs, cs] * (s.droplet_level + s.specular_strength * spot).astype(np.float32)
    region = img[rs, cs]
    region += a * (level - region)
    inside = (u * u + dv * dv <= g.sphere_r * g.sphere_r) & (v > g.top)
    mask[rs, cs][inside] = MASK_DROPLET
    return int(np.count_nonzero(inside))


def _draw_needle(
    img: F32, light: F32, pose: _Pose, scene: DropletScene, s: RenderSettings, apex_v: float
) -> None:
    """A dark metal bar from the top edge to the tip, with a bright stripe along its axis.
    Drawn last: a needle dipping into the droplet hides it, while the mask keeps the droplet."""
    px = 1.0 / s.pixel_size_m
    if s.needle == "none" or (s.needle == "scene" and scene.needle_tip_height_m is None):
        return
    tip = apex_v + s.needle_gap_m * px if s.needle == "above" else (scene.needle_tip_height_m or 0.0) * px
    half = 0.5 * (s.needle_diameter_m or scene.needle_diameter_m) * px
    top = pose.top_v()
    if tip >= top:
        return
    window = pose.box(-half, half, tip, top)
    if window is None:
        return
    rs, cs, u, v = window
    a = _coverage(np.maximum(np.abs(u) - half, tip - v)).astype(np.float32)
    stripe = 0.35 * np.exp(-0.5 * ((u - 0.25 * half) / (0.15 * half + 0.3)) ** 2)
    level = light[rs, cs] * (s.needle_level + stripe).astype(np.float32)
    region = img[rs, cs]
    region += a * (level - region)


def _finish(img: F32, s: RenderSettings, rng: np.random.Generator) -> NDArray[np.uint8]:
    """Optics blur, colour cast, sensor noise and 8-bit quantisation (saturating)."""
    if s.blur_sigma_px > 0.05:
        img = np.asarray(cv2.GaussianBlur(img, (0, 0), s.blur_sigma_px), dtype=np.float32)
    if s.colour:
        img = np.asarray(cv2.merge([img * np.float32(gain) for gain in s.tint_bgr]), dtype=np.float32)
    if s.noise_sigma > 0.0:
        # OpenCV's generator is ~3x faster than numpy's for a full frame; seeding it from
        # rng keeps the frame a function of the rng state (it is per thread in OpenCV).
        cv2.setRNGSeed(int(rng.integers(0, 2**31 - 1)))
        noise = np.empty_like(img)
        channels = img.shape[2] if img.ndim == 3 else 1
        cv2.randn(noise, np.zeros(channels), np.full(channels, s.noise_sigma))
        img += noise
    img += np.float32(0.5)  # round to nearest on the truncating conversion below
    np.clip(img, 0.0, 255.0, out=img)
    return img.astype(np.uint8)
