"""ROS messages of the press node: driver results and figures in, tablet_workcell messages out.

Pure conversion and rate limiting, no science (that is :mod:`tablet_workcell.devices.press.
evaluation`). The compaction result's record is the in-die part (loading, dwell,
unloading: the PHASE_* values of ForceDisplacementRecord), which is what the Heckel and
Kawakita analyses re-derive from a recording (tablet_workcell.data.provenance); the
ejection is summarised by ``ejection_force_n``. A breaking record has no phases.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np
from geometry_msgs.msg import WrenchStamped
from rclpy.clock import Clock

from tablet_workcell.devices.press.codec import Phase, Sample
from tablet_workcell.devices.press.evaluation import BreakingFigures, CompactionFigures
from tablet_workcell.devices.press.results import StreamedRecord
from tablet_workcell.msg import BreakingTestResult, CompactionResult, ForceDisplacementRecord

PHASE_NAMES = {
    Phase.LOADING: "loading",
    Phase.DWELL: "dwell",
    Phase.UNLOADING: "unloading",
    Phase.EJECTION: "ejection",
    Phase.BREAKING: "breaking",
}


class Throttle:
    """True at most ``rate_hz`` times a second (wall clock), and always for the first call."""

    def __init__(self, rate_hz: float) -> None:
        self.period_s = 1.0 / rate_hz
        self._next = 0.0
        self._lock = threading.Lock()

    def due(self) -> bool:
        now = time.monotonic()
        with self._lock:
            if now < self._next:
                return False
            self._next = now + self.period_s
            return True


class SampleStreamer:
    """The driver's ``on_sample``: live force on a topic and action feedback, each rate-limited.

    Runs on the action's thread inside the driver's read loop, so it only publishes.
    """

    def __init__(
        self,
        publish_force: Callable[[WrenchStamped], None],
        publish_feedback: Callable[[Sample], None],
        clock: Clock,
        frame_id: str,
        force_rate_hz: float,
        feedback_rate_hz: float,
    ) -> None:
        self._publish_force = publish_force
        self._publish_feedback = publish_feedback
        self._clock = clock
        self._frame_id = frame_id
        self._force = Throttle(force_rate_hz)
        self._feedback = Throttle(feedback_rate_hz)
        self.samples = 0

    def __call__(self, sample: Sample) -> None:
        self.samples += 1
        if self._force.due():
            wrench = WrenchStamped()
            wrench.header.stamp = self._clock.now().to_msg()
            wrench.header.frame_id = self._frame_id
            wrench.wrench.force.z = sample.force_n
            self._publish_force(wrench)
        if self._feedback.due():
            self._publish_feedback(sample)


def record_message(record: StreamedRecord, with_phases: bool = True) -> ForceDisplacementRecord:
    message = ForceDisplacementRecord()
    message.time_s = np.asarray(record.time_s, dtype=np.float64)
    message.force_n = np.asarray(record.force_n, dtype=np.float64)
    message.displacement_m = np.asarray(record.displacement_m, dtype=np.float64)
    if with_phases:
        message.phase = np.asarray(record.phase, dtype=np.uint8)
    return message


def compaction_message(
    figures: CompactionFigures,
    in_die: StreamedRecord,
    dwell_s: float,
    fill_mass_kg: float,
    true_density_kg_per_m3: float,
) -> CompactionResult:
    """A successful compaction's result (header, experiment id and target are the caller's)."""
    return CompactionResult(
        max_pressure_pa=figures.max_pressure_pa,
        max_force_n=figures.max_force_n,
        dwell_time_s=dwell_s,
        ejection_force_n=figures.ejection_force_n,
        tablet_thickness_m=figures.tablet_thickness_m,
        tablet_diameter_m=figures.tablet_diameter_m,
        tablet_mass_kg=fill_mass_kg,
        fill_height_m=figures.fill_height_m,
        true_density_kg_per_m3=true_density_kg_per_m3,
        solid_fraction=figures.solid_fraction,
        in_die_min_thickness_m=figures.in_die_min_thickness_m,
        elastic_recovery=figures.elastic_recovery,
        work_of_compaction_j=figures.work_of_compaction_j,
        heckel_yield_pressure_pa=figures.heckel_yield_pressure_pa,
        heckel_region_start_pa=figures.heckel_region_start_pa,
        heckel_region_end_pa=figures.heckel_region_end_pa,
        kawakita_a=figures.kawakita_a,
        kawakita_b_per_pa=figures.kawakita_b_per_pa,
        record=record_message(in_die),
        success=True,
        message=_sentence("compacted", figures.notes),
    )


def breaking_message(figures: BreakingFigures, record: StreamedRecord) -> BreakingTestResult:
    return BreakingTestResult(
        breaking_force_n=figures.breaking_force_n,
        tablet_diameter_m=figures.tablet_diameter_m,
        tablet_thickness_m=figures.tablet_thickness_m,
        tensile_strength_pa=figures.tensile_strength_pa,
        failure_mode=int(figures.failure_mode),
        record=record_message(record, with_phases=False),
        success=True,
        message=_sentence(f"broken ({figures.failure_mode.name.lower()})", figures.notes),
    )


def _sentence(done: str, notes: tuple[str, ...]) -> str:
    return f"{done}; " + "; ".join(notes) + "." if notes else f"{done}."
