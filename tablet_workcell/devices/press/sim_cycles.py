"""What the simulated press streams for each cycle, computed from the physics twin.

Used only by :mod:`.simulator` (it imports the twin, so the hardware path must not
import it). The compaction and breaking records are the twin's own samples (the twin
samples at the press's streaming rate); the ejection profile, which the twin does not
model sample by sample, is synthesised here from the twin's ejection force: a breakaway
peak, sliding friction while the tablet is in the die, a fall to zero as it emerges, and
a sudden drop at emergence when the tablet capped or laminated.

Samples are rounded to the wire's resolution before the summary is computed, so the
summary agrees with the samples the host receives; a sample whose rounded time equals
the previous one is dropped (the press never sends two samples with one timestamp).
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from tablet_workcell.devices.press.codec import (
    BreakingSummary,
    CompactionSummary,
    EjectionSummary,
    Phase,
    Sample,
)
from tablet_workcell.twin.compaction import CompactionOutcome, Tablet
from tablet_workcell.twin.records import BreakingRecord

EJECTION_SPEED_M_PER_S = 10e-3
EJECTION_NOISE_N = 0.5  # lower-punch load cell (1 kN range)
DISPLACEMENT_NOISE_M = 0.3e-6
SLIDING_SHARE = 0.7  # sliding friction / breakaway force
CAPPING_DROP = 0.25  # force left when the cap separates at emergence
GAP_SMOOTHING = 5  # samples averaged when the press finds the minimum gap


def _on_wire(samples: Iterable[Sample]) -> list[Sample]:
    """Samples rounded as the protocol writes them, without repeated timestamps."""
    out: list[Sample] = []
    last_us = None
    for s in samples:
        time_us = round(s.time_s * 1e6)
        if time_us == last_us:
            continue
        last_us = time_us
        out.append(
            Sample(
                time_us / 1e6,
                round(s.force_n, 2),
                round(s.displacement_m * 1e8) / 1e8,
                s.phase,
            )
        )
    return out


def compaction_samples(outcome: CompactionOutcome) -> list[Sample]:
    """The twin's in-die record (loading, dwell, unloading) as wire samples."""
    record = outcome.record
    phases = (Phase.LOADING, Phase.DWELL, Phase.UNLOADING)
    return _on_wire(
        Sample(float(t), float(f), float(x), phases[int(p)])
        for t, f, x, p in zip(record.time_s, record.force_n, record.displacement_m, record.phase, strict=True)
    )


def min_gap_m(fill_height_m: float, samples: list[Sample]) -> float:
    """Fill height less the largest punch travel, travel smoothed over a few samples."""
    travel = np.array([s.displacement_m for s in samples if s.phase is not Phase.EJECTION])
    if travel.size == 0:
        return fill_height_m
    if travel.size >= GAP_SMOOTHING:
        travel = np.convolve(travel, np.full(GAP_SMOOTHING, 1.0 / GAP_SMOOTHING), mode="valid")
    return fill_height_m - float(np.max(travel))


def ejection_samples(
    tablet: Tablet, fill_height_m: float, start_s: float, rate_hz: float, rng: np.random.Generator
) -> list[Sample]:
    """Lower-punch force against its travel while it pushes the tablet out of the die."""
    travel_total = fill_height_m  # from the fill depth up to the die table
    in_die_height = min(tablet.in_die_min_thickness_m * (1.0 + tablet.elastic_recovery / 2.0), travel_total)
    emerge_at = travel_total - in_die_height
    times = np.arange(0.0, travel_total / EJECTION_SPEED_M_PER_S, 1.0 / rate_hz)
    travel = times * EJECTION_SPEED_M_PER_S
    share = np.interp(travel / travel_total, [0.0, 0.02, 0.06, 0.12], [0.0, 1.0, 1.0, SLIDING_SHARE])
    leaving = np.clip((travel - emerge_at) / max(in_die_height, 1e-9), 0.0, 1.0)
    if tablet.capped:
        share = np.where(travel > emerge_at, share * CAPPING_DROP, share)
    force = tablet.ejection_force_n * share * (1.0 - leaving)
    force = force + rng.normal(0.0, EJECTION_NOISE_N, times.size)
    travel = travel + rng.normal(0.0, DISPLACEMENT_NOISE_M, times.size)
    return _on_wire(
        Sample(start_s + float(t), float(f), float(x), Phase.EJECTION)
        for t, f, x in zip(times, force, travel, strict=True)
    )


def plan_compaction(outcome: CompactionOutcome, dwell_s: float, rate_hz: float, rng: np.random.Generator) -> (
    tuple[list[Sample], CompactionSummary]
):  # fmt: skip
    """Everything a complete CMP cycle streams, and its END summary."""
    in_die = compaction_samples(outcome)
    start = in_die[-1].time_s + 1.0 / rate_hz
    ejection = ejection_samples(outcome.tablet, outcome.record.fill_height_m, start, rate_hz, rng)
    samples = in_die + ejection
    summary = CompactionSummary(
        capped=outcome.tablet.capped,
        max_force_n=max(s.force_n for s in in_die),
        min_gap_m=round(min_gap_m(outcome.record.fill_height_m, in_die), 8),
        fill_height_m=round(outcome.record.fill_height_m, 8),
        tablet_thickness_m=round(outcome.tablet.thickness_m, 8),
        ejection_force_n=max(s.force_n for s in ejection),
        dwell_s=dwell_s,
        sample_count=len(samples),
    )
    return samples, summary


def plan_ejection(
    tablet: Tablet, fill_height_m: float, rate_hz: float, rng: np.random.Generator
) -> tuple[list[Sample], EjectionSummary]:
    """An EJT cycle of a compact left in the die."""
    samples = ejection_samples(tablet, fill_height_m, 0.0, rate_hz, rng)
    return samples, EjectionSummary(
        capped=tablet.capped,
        ejection_force_n=max(s.force_n for s in samples),
        tablet_thickness_m=round(tablet.thickness_m, 8),
        sample_count=len(samples),
    )


def plan_breaking(
    record: BreakingRecord | None, platen_speed_m_per_s: float, rate_hz: float, rng: np.random.Generator
) -> tuple[list[Sample], BreakingSummary]:
    """A BRK cycle: the twin's record, or (capped tablet, no record) pieces pushed aside."""
    if record is None:
        times = np.arange(0.0, 0.2, 1.0 / rate_hz)
        force = np.abs(rng.normal(0.0, 0.3, times.size))
        travel = times * platen_speed_m_per_s
    else:
        times, force, travel = record.time_s, record.force_n, record.displacement_m
    samples = _on_wire(
        Sample(float(t), float(f), float(x), Phase.BREAKING)
        for t, f, x in zip(times, force, travel, strict=True)
    )
    peak = max(range(len(samples)), key=lambda i: samples[i].force_n)
    return samples, BreakingSummary(
        fractured=record is not None,
        breaking_force_n=samples[peak].force_n,
        travel_at_break_m=samples[peak].displacement_m,
        sample_count=len(samples),
    )


def partial_tablet(tablet: Tablet, fill_height_m: float, samples: list[Sample], target_force_n: float) -> (
    Tablet | None
):  # fmt: skip
    """The compact a stopped cycle leaves in the die, scaled by the force it reached.

    None when the punch hardly loaded the powder (it stays a loose fill). An approximation:
    the twin models complete cycles only.
    """
    in_die = [s for s in samples if s.phase is not Phase.EJECTION]
    reached = max((s.force_n for s in in_die), default=0.0)
    fraction = min(reached / target_force_n, 1.0) if target_force_n > 0 else 0.0
    if fraction < 0.05:
        return None
    gap = min_gap_m(fill_height_m, in_die)
    return dataclasses.replace(
        tablet,
        in_die_min_thickness_m=gap,
        thickness_m=gap * (1.0 + tablet.elastic_recovery * fraction),
        ejection_force_n=tablet.ejection_force_n * fraction,
        breaking_force_n=tablet.breaking_force_n * fraction**2,
    )


@dataclass
class CycleStream:
    """A running cycle in the simulator: samples not yet sent, and what ends it."""

    start_s: float  # server time of the acknowledgement
    samples: deque[Sample]  # not yet sent, in time order
    end: bytes  # the END line
    on_end: Callable[[], None]  # state change when the cycle completes
    on_stop: Callable[[list[Sample]], None]  # state change when it is cut; gets the samples sent
    fault: tuple[float, str, str] | None = None  # (instrument time, code, detail) that cuts it
    sent: list[Sample] = field(default_factory=list)

    def due(self, elapsed_s: float) -> tuple[list[Sample], tuple[str, str] | None]:
        """Samples due by ``elapsed_s`` instrument seconds, and (code, detail) if a fault cuts in."""
        out: list[Sample] = []
        while self.samples and self.samples[0].time_s <= elapsed_s:
            if self.fault is not None and self.samples[0].time_s >= self.fault[0]:
                return out, (self.fault[1], self.fault[2])
            sample = self.samples.popleft()
            self.sent.append(sample)
            out.append(sample)
        return out, None

    @property
    def finished(self) -> bool:
        return not self.samples
