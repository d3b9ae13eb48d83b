"""One sessile-drop disintegration test: frames with stamps in, live values and the result out.

:class:`DisintegrationSession` is the deterministic core: it analyses each frame with a
:class:`~tablet_workcell.vision.pipeline.FrameAnalyser`, finds the droplet's contact,
accumulates the series, decides when the test is over, and at the end runs the series
analysis (regimes, fits, figures). Given the same frames and stamps it gives the same
numbers, which is what makes re-analysis of a recording exact. The threaded wrapper that
keeps up with a live camera is :class:`tablet_workcell.vision.live.LiveSession`.

Time: the series time t is instrument time since droplet contact. The first droplet frame
is the first analysed frame with a measured droplet of at least a quarter of the
dispensed volume (0.2 uL when the volume is unknown): stray droplet pixels near the
needle before the droplet arrives do not count. The droplet landed between the previous
analysed frame and that one; contact (t = 0) is the midpoint of their stamps, the
unbiased estimate (the first droplet frame itself is on average half a frame interval
late, which biases the early-time absorption fit), or the first frame's stamp when it is
the first frame of the test. The pump's completion time would be the alternative, but it
comes from another process and clock, is not in a camera recording, and lags the
droplet's arrival by the pump's polling; the frame stamps are in any recording of the
camera alone.
``time_scale`` converts stamp seconds into instrument seconds: 1 on hardware and with a
simulated ROS clock (stamps are then already instrument time); the simulators' time scale
when the stamps are wall time.

End of the test: ``max_duration_s`` after contact; or the droplet fully absorbed (no
droplet in view for ``absorbed_margin_s`` without interruption); or no contact within
``max_duration_s`` of the first frame (a failed test); or from outside (cancel, e-stop),
or, offline, when a bag's frames run out. "A droplet in view" is a droplet cut by the
frame edge or one measured at least MIN_DROPLET_HEIGHT_PX tall: a flat strip of droplet
pixels along a glossy tablet top is a segmentation artefact, not a droplet.

Frames stamped at or before the previous frame are counted and left out: the series
time must increase strictly.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from tablet_workcell.vision.series import analyse_series
from tablet_workcell.vision.session_types import (
    ENDED_NORMALLY,
    FrameAnalyser,
    LiveSample,
    SessionResult,
    SessionSettings,
    StopReason,
    TabletInfo,
)
from tablet_workcell.vision.types import (
    DropletMeasurement,
    FrameAnalysis,
    FrameStatus,
    SeriesAnalysis,
    VisionError,
)

__all__ = [
    "DisintegrationSession",
    "FrameAnalyser",
    "LiveSample",
    "SessionResult",
    "SessionSettings",
    "StopReason",
    "TabletInfo",
    "series_columns",
]

if TYPE_CHECKING:
    from tablet_workcell.vision.regime_model import RegimeModel

logger = logging.getLogger(__name__)

NS_PER_S = 1_000_000_000
CONTACT_VOLUME_FRACTION = 0.25  # a droplet this share of the dispensed volume has landed
MIN_CONTACT_VOLUME_M3 = 2e-10  # ... or, when the volume is unknown, the smallest test droplet (0.2 uL)
MIN_DROPLET_HEIGHT_PX = 3.0  # a "droplet" flatter than this is a segmentation artefact, not a droplet
REGIME_SPREADING, REGIME_ABSORPTION, REGIME_SWELLING, REGIME_COMPLETE = 0, 1, 2, 3
SPREADING_S = 0.05  # the twin's and the literature's spreading stage lasts tens of milliseconds


class DisintegrationSession:
    """The deterministic core of one test; not thread-safe (one analysis thread feeds it).

    ``regime_model``: what :func:`~tablet_workcell.vision.series.analyse_series` takes (a
    loaded learned model or its path); None for the physics baseline.
    """

    def __init__(
        self,
        analyser: FrameAnalyser,
        settings: SessionSettings,
        segmenter: str,
        regime_model: RegimeModel | None = None,
    ) -> None:
        self.analyser = analyser
        self.settings = settings
        self.segmenter = segmenter
        self.regime_model = regime_model
        self._first_stamp_ns: int | None = None
        self._contact_ns: int | None = None
        self._absent_since_s: float | None = None
        self._statuses: Counter[str] = Counter()
        self._rows: list[tuple[float, DropletMeasurement]] = []
        self._first_heights: list[float] = []
        self._stop = StopReason.RUNNING
        self._last_stamp_ns: int | None = None
        self.frames_analysed = 0
        self.frames_out_of_order = 0

    @property
    def stop_reason(self) -> StopReason:
        return self._stop

    @property
    def done(self) -> bool:
        return self._stop is not StopReason.RUNNING

    @property
    def contact_stamp_ns(self) -> int | None:
        return self._contact_ns

    def elapsed_s(self, stamp_ns: int) -> float:
        """Instrument seconds since contact at ``stamp_ns`` (NaN before contact)."""
        if self._contact_ns is None:
            return math.nan
        return (stamp_ns - self._contact_ns) / NS_PER_S * self.settings.time_scale

    # ------------------------------------------------------------------ frames
    def add_frame(self, image: NDArray[np.uint8], stamp_ns: int, encoding: str | None = None) -> LiveSample:
        """Analyse one frame; never raises for a bad frame (its status says what was wrong).

        ``encoding``: the sensor_msgs/Image encoding when known (the analyser converts rgb8
        and rejects what it cannot take); None infers it from the array's shape.
        """
        self._check_running()
        time_s = self.elapsed_s(stamp_ns)
        try:
            analysis = self.analyser.analyse(image, 0.0 if math.isnan(time_s) else time_s, encoding)
        except VisionError as error:  # the analyser reports bad frames as statuses; this is a bug guard
            analysis = FrameAnalysis(time_s, DropletMeasurement(FrameStatus.MODEL_ERROR, str(error)), None)
        return self._account(stamp_ns, analysis)

    def add_rejected(self, stamp_ns: int, status: FrameStatus, message: str) -> LiveSample:
        """A frame that never became pixels (undecodable on the wire): counted, not measured."""
        self._check_running()
        analysis = FrameAnalysis(self.elapsed_s(stamp_ns), DropletMeasurement(status, message), None)
        return self._account(stamp_ns, analysis)

    def _check_running(self) -> None:
        if self.done:
            raise VisionError(f"the test is over ({self._stop.value}); start a new session for more frames.")

    def _account(self, stamp_ns: int, analysis: FrameAnalysis) -> LiveSample:
        if self._last_stamp_ns is not None and stamp_ns <= self._last_stamp_ns:
            # Series time must increase strictly; a frame stamped at or before the previous
            # one (a camera clock jump, a mixed-up bag) is counted and left out.
            self.frames_out_of_order += 1
            logger.warning("frame stamped %d ns is not after the previous frame; left out", stamp_ns)
            return LiveSample(stamp_ns, self.elapsed_s(stamp_ns), analysis, REGIME_SPREADING, self._stop)
        previous_ns, self._last_stamp_ns = self._last_stamp_ns, stamp_ns
        self.frames_analysed += 1
        status = analysis.measurement.status
        self._statuses[status.value] += 1
        if self._first_stamp_ns is None:
            self._first_stamp_ns = stamp_ns
        if self._contact_ns is None and self._is_contact(analysis.measurement):
            # The droplet landed between the previous analysed frame and this one: the
            # midpoint is the unbiased estimate (this frame's stamp would be late by half a
            # frame interval on average, which biases the early-time absorption fit).
            self._contact_ns = stamp_ns if previous_ns is None else (previous_ns + stamp_ns) // 2
            logger.info(
                "droplet contact at stamp %d ns (first droplet frame %d ns)", self._contact_ns, stamp_ns
            )
        elapsed = self.elapsed_s(stamp_ns)
        if self._contact_ns is None:
            waited = (stamp_ns - self._first_stamp_ns) / NS_PER_S * self.settings.time_scale
            if waited >= self.settings.max_duration_s:
                self._stop = StopReason.NO_CONTACT
            return LiveSample(stamp_ns, elapsed, analysis, REGIME_SPREADING, self._stop)
        if analysis.time_s != elapsed:  # analysed before contact was known: restamp
            analysis = FrameAnalysis(elapsed, analysis.measurement, analysis.labels)
        self._rows.append((elapsed, analysis.measurement))
        if status is FrameStatus.OK and len(self._first_heights) < 5:
            self._first_heights.append(analysis.measurement.tablet_height_m)
        self._track_absorption(elapsed, analysis.measurement)
        if self._stop is StopReason.RUNNING and elapsed >= self.settings.max_duration_s:
            self._stop = StopReason.MAX_DURATION
        return LiveSample(stamp_ns, elapsed, analysis, self._live_regime(elapsed, analysis), self._stop)

    def _is_contact(self, measurement: DropletMeasurement) -> bool:
        """The droplet has landed: a measured droplet of at least CONTACT_VOLUME_FRACTION of the
        dispensed volume (MIN_CONTACT_VOLUME_M3 when that is unknown). A few stray droplet
        pixels near the needle before the droplet arrives must not start the clock."""
        if measurement.status is not FrameStatus.OK or not self.droplet_in_view(measurement):
            return False
        dispensed = self.settings.droplet_volume_m3
        floor = CONTACT_VOLUME_FRACTION * dispensed if dispensed > 0 else MIN_CONTACT_VOLUME_M3
        return measurement.droplet_volume_m3 >= floor

    def droplet_in_view(self, measurement: DropletMeasurement) -> bool:
        """A droplet is in view: cut by the frame edge, or measured at least MIN_DROPLET_HEIGHT_PX tall.

        The height floor keeps a one-pixel strip along a glossy tablet top (a segmentation
        artefact seen after absorption, measured with status OK but no height) from counting
        as a droplet for contact and for the end.
        """
        if measurement.status is FrameStatus.DROPLET_AT_EDGE:
            return True
        if measurement.status is not FrameStatus.OK:
            return False
        height = measurement.droplet_height_m  # NaN: no droplet shape could be measured, an artefact
        return math.isfinite(height) and height >= MIN_DROPLET_HEIGHT_PX * self.settings.pixel_size_m

    def _track_absorption(self, elapsed: float, measurement: DropletMeasurement) -> None:
        status = measurement.status
        if self.droplet_in_view(measurement):
            self._absent_since_s = None
        elif status in (FrameStatus.NO_DROPLET, FrameStatus.OK):
            if self._absent_since_s is None:
                self._absent_since_s = elapsed
            if elapsed - self._absent_since_s >= self.settings.absorbed_margin_s:
                self._stop = StopReason.ABSORBED
        # other statuses (dark, wrong size, ...) say nothing about the droplet: no change

    def _live_regime(self, elapsed: float, analysis: FrameAnalysis) -> int:
        """A cheap running estimate for feedback; the result's regimes come from the series analysis.

        Spreading for the first 50 ms, complete while no droplet is seen, swelling once the
        tablet has grown by 2 % of its first measured height, absorption otherwise.
        """
        if elapsed < SPREADING_S:
            return REGIME_SPREADING
        if self._absent_since_s is not None:
            return REGIME_COMPLETE
        height = analysis.measurement.tablet_height_m
        heights = [h for h in self._first_heights if math.isfinite(h)]
        if heights and math.isfinite(height) and height > 1.02 * float(np.median(heights)):
            return REGIME_SWELLING
        return REGIME_ABSORPTION

    # ------------------------------------------------------------------ the end
    def stop(self, reason: StopReason = StopReason.STOPPED) -> None:
        """End the test from outside (cancel, e-stop: STOPPED; a bag's end: END_OF_DATA)
        unless it already ended on its own."""
        if self._stop is StopReason.RUNNING:
            self._stop = reason

    def finish(self) -> SessionResult:
        """The series and its analysis; call once the test is over (or to stop it)."""
        self.stop()
        columns = series_columns(self._rows)
        settings = self.settings
        analysis: SeriesAnalysis | None = None
        success, message = False, ""
        measured = int(self._statuses[FrameStatus.OK.value])
        if self._contact_ns is None:
            message = (
                f"no droplet landed in {self.frames_analysed} analysed frames (statuses: "
                f"{dict(self._statuses)}); check that the pump placed a droplet, that the tablet is in "
                "the camera's view, the lighting and the segmentation model"
            )
        elif measured < MIN_MEASURED_FRAMES:
            message = (
                f"only {measured} frames had a measurable droplet, fewer than the {MIN_MEASURED_FRAMES} a "
                f"series analysis needs; frame statuses: {dict(self._statuses)}"
            )
        elif not settings.tablet.known:
            message = (
                f"tablet porosity {settings.tablet.porosity!r} and thickness "
                f"{settings.tablet.thickness_m!r} m are needed for the absorption fits; give them in the "
                "goal (from the press) or as the node's defaults"
            )
        else:
            try:
                analysis = self._analyse(columns)
            except VisionError as error:
                message = f"the series analysis failed: {error}"
            else:
                success = self._stop in ENDED_NORMALLY
                message = self._summary(analysis, measured)
        return SessionResult(
            experiment_id=settings.experiment_id,
            time_s=columns["time_s"],
            droplet_area_m2=columns["droplet_area_m2"],
            contact_angle_rad=columns["contact_angle_rad"],
            tablet_height_m=columns["tablet_height_m"],
            droplet_volume_m3=columns["droplet_volume_m3"],
            base_width_m=columns["base_width_m"],
            analysis=analysis,
            droplet_volume_dispensed_m3=settings.droplet_volume_m3,
            segmenter=self.segmenter,
            contact_stamp_ns=self._contact_ns,
            frames_analysed=self.frames_analysed,
            frame_statuses=dict(self._statuses),
            frames_out_of_order=self.frames_out_of_order,
            stop_reason=self._stop,
            success=success,
            message=message,
        )

    def _analyse(self, columns: dict[str, NDArray[np.float64]]) -> SeriesAnalysis:
        tablet, settings = self.settings.tablet, self.settings
        dispensed = settings.droplet_volume_m3
        return analyse_series(
            columns["time_s"],
            columns["droplet_volume_m3"],
            columns["droplet_area_m2"],
            columns["tablet_height_m"],
            porosity=tablet.porosity,
            tablet_thickness_m=tablet.thickness_m,
            droplet_volume_dispensed_m3=dispensed if math.isfinite(dispensed) and dispensed > 0 else None,
            regime_model=self.regime_model,
            base_width_m=columns["base_width_m"],
            tablet_diameter_m=tablet.diameter_m if math.isfinite(tablet.diameter_m) else None,
            tensile_strength_pa=tablet.tensile_strength_pa
            if math.isfinite(tablet.tensile_strength_pa)
            else None,
            soluble_fraction=tablet.soluble_fraction,
        )

    def _summary(self, analysis: SeriesAnalysis, measured: int) -> str:
        bad = self.frames_analysed - measured
        ending = {
            StopReason.ABSORBED: "droplet fully absorbed",
            StopReason.MAX_DURATION: f"stopped at max_duration {self.settings.max_duration_s:g} s",
            StopReason.STOPPED: "stopped before the end",
            StopReason.END_OF_DATA: "end of the recorded frames",
        }.get(self._stop, self._stop.value)
        absorption = analysis.absorption_time_s
        predicted = analysis.predicted_disintegration_time_s
        notes = "".join(f" Note: {note}" for note in analysis.messages)  # caveats of the analysis
        return (
            f"{ending}; {measured} frames measured, {bad} without a measurement; absorption time "
            f"{'not reached' if math.isnan(absorption) else f'{absorption:.2f} s'}, predicted disintegration "
            f"{'unknown' if math.isnan(predicted) else f'{predicted:.1f} s'}.{notes}"
        )


MIN_MEASURED_FRAMES = 5


def series_columns(rows: list[tuple[float, DropletMeasurement]]) -> dict[str, NDArray[np.float64]]:
    """One value per frame since contact, in the series analysis's input contract.

    OK frames give their measurement; NO_DROPLET frames give 0 for the droplet's area,
    volume and base width (the droplet is gone) and keep the tablet height when it was
    measured; every other status gives NaN (nothing trustworthy in that frame).
    """
    nan = math.nan
    columns: dict[str, list[float]] = {name: [] for name in COLUMNS}
    for time_s, m in rows:
        if m.status is FrameStatus.OK:
            values = (
                m.droplet_area_m2,
                m.contact_angle_rad,
                m.tablet_height_m,
                m.droplet_volume_m3,
                m.base_width_m,
            )
        elif m.status is FrameStatus.NO_DROPLET:
            values = (0.0, nan, m.tablet_height_m, 0.0, 0.0)
        else:
            values = (nan, nan, nan, nan, nan)
        columns["time_s"].append(time_s)
        for name, value in zip(COLUMNS[1:], values, strict=True):
            columns[name].append(value)
    return {name: np.asarray(values, dtype=np.float64) for name, values in columns.items()}


COLUMNS = (
    "time_s",
    "droplet_area_m2",
    "contact_angle_rad",
    "tablet_height_m",
    "droplet_volume_m3",
    "base_width_m",
)
