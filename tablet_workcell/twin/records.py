"""Plain data records the twin produces and the analyses consume (SI units throughout).

The compaction and breaking records are defined by the analysis
(:mod:`tablet_workcell.analysis.records`, re-exported here), so the press node can build
them from a measured record without importing the twin; the droplet scene (what the
camera renders) is the twin's own.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tablet_workcell.analysis.records import BreakingRecord, CompactionPhase, CompactionRecord, FloatArray

__all__ = ["BreakingRecord", "CompactionPhase", "CompactionRecord", "DropletScene", "FloatArray"]


@dataclass(frozen=True)
class DropletScene:
    """Side-view geometry at one instant of the sessile-drop test (what the camera sees).

    The tablet is a flat cylinder standing on the stage; the droplet is a spherical cap
    resting centred on the tablet's top face. Heights are measured from the stage.
    """

    tablet_diameter_m: float
    tablet_height_m: float  # current (possibly swollen) height under the droplet
    droplet_base_radius_m: float  # radius of the wetted base circle; 0 when no droplet
    droplet_contact_angle_rad: float
    needle_tip_height_m: float | None = None  # dispensing needle tip above the stage; None if retracted
    needle_diameter_m: float = 0.5e-3

    @property
    def has_droplet(self) -> bool:
        return self.droplet_base_radius_m > 0.0 and self.droplet_contact_angle_rad > 0.0

    @property
    def droplet_sphere_radius_m(self) -> float:
        return float(self.droplet_base_radius_m / np.sin(self.droplet_contact_angle_rad))

    @property
    def droplet_height_m(self) -> float:
        """Apex height of the cap above the tablet's top face."""
        return float(self.droplet_base_radius_m * np.tan(self.droplet_contact_angle_rad / 2.0))

    @property
    def droplet_side_area_m2(self) -> float:
        """Projected (side-view) area of the cap: a circular segment of half-angle theta."""
        if not self.has_droplet:
            return 0.0
        theta = self.droplet_contact_angle_rad
        radius = self.droplet_sphere_radius_m
        return float(radius**2 * (theta - np.sin(theta) * np.cos(theta)))

    @property
    def droplet_volume_m3(self) -> float:
        if not self.has_droplet:
            return 0.0
        a, h = self.droplet_base_radius_m, self.droplet_height_m
        return float(np.pi * h * (3.0 * a**2 + h**2) / 6.0)
