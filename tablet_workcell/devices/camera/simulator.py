"""The disintegration station simulated: the NE-1000 syringe pump and the camera on one world.

The pump (``syringe_pump`` port, a pty: :mod:`tablet_workcell.devices.syringe_pump.simulator`)
places the droplet; the camera (``camera`` port, an MJPEG stream over HTTP:
:mod:`tablet_workcell.devices.camera.stream_server`) films the twin's sessile-drop scene:

* before a droplet: the dry tablet with the needle above it;
* when the pump completes an infusion of volume V, the world starts the twin's
  :func:`~tablet_workcell.twin.disintegration.sessile_drop` for V on the configured tablet
  and the camera shows ``series.scene(t)``: spreading, absorption, swelling, the needle
  retracting after 0.3 s. Each new droplet starts a new test (the arm brought a fresh
  tablet). A stopped or stalled run leaves its droplet hanging on the needle: no test.

Frames are rendered by :func:`tablet_workcell.twin.camera.render` in instrument time
(wall time x the server's ``--time-scale``, the clock the pump runs on), with one
appearance for the whole run. The twin's truth of every droplet (when it landed, the
Washburn coefficient, swelling rate, absorption and disintegration times, regimes and a
coarse area/height series) goes to a JSON file for tests and benchmarks; no node reads it.

    python -m tablet_workcell.devices.serve disintegration_station --link-dir /tmp/cell \\
        --option recipe=mcc:0.69,lactose:0.3,mgst:0.01 --option frame_rate_hz=15

Options: :mod:`tablet_workcell.devices.camera.sim_options`. Faults: ``disconnect_after_s``
closes the stream (and the pump's port) as an unplugged station; the option
``freeze_after_s`` makes the camera stop sending while its connection stays open.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from tablet_workcell.devices.camera.sim_options import StationConfig, config_from_options, split_options
from tablet_workcell.devices.camera.stream_server import MjpegStreamServer
from tablet_workcell.devices.faults import FaultSettings
from tablet_workcell.devices.simulated_instrument import SimulatedInstrument
from tablet_workcell.devices.syringe_pump import simulator as pump_simulator
from tablet_workcell.twin.camera import RenderSettings, random_appearance, render
from tablet_workcell.twin.disintegration import DisintegrationError, DropletSeries, sessile_drop
from tablet_workcell.twin.records import DropletScene

LOG = logging.getLogger(__name__)
TRUTH_FILE = "disintegration_truth.json"
TRUTH_SERIES_STEP_S = 0.5  # coarse series in the truth file (tests compare areas/heights)
UL_TO_M3 = 1e-9


@dataclass(frozen=True)
class _Droplet:
    series: DropletSeries
    landed_s: float  # instrument time (world clock)


class DisintegrationWorld:
    """The tablet, the droplet on it and the camera's view, shared by the pump and camera threads."""

    def __init__(self, config: StationConfig) -> None:
        self.config = config
        formulation = config.formulation
        self.blend = formulation.properties
        self.soluble_fraction = sum(
            fraction for material, fraction in formulation.components if material.soluble
        )
        self.settings = self._appearance(config)
        self._rng = np.random.default_rng(config.seed)
        self._lock = threading.Lock()
        self._droplet: _Droplet | None = None
        self._records: list[dict[str, Any]] = []
        self._origin = time.monotonic()
        self.time_scale = 1.0
        self.truth_path: Path | None = Path(config.truth_path) if config.truth_path else None

    @staticmethod
    def _appearance(config: StationConfig) -> RenderSettings:
        size = {"width": config.width, "height": config.height, "pixel_size_m": config.pixel_size_m}
        if config.appearance == "default":
            return RenderSettings(**size)  # type: ignore[arg-type]
        rng = np.random.default_rng(config.appearance_seed)
        return random_appearance(rng, config.appearance, **size)  # type: ignore[arg-type]

    # ------------------------------------------------------------------ clock
    def start_clock(self, time_scale: float) -> None:
        self._origin, self.time_scale = time.monotonic(), time_scale

    def now_s(self) -> float:
        """Instrument time: wall seconds since start x time scale (the camera's X-Timestamp)."""
        return (time.monotonic() - self._origin) * self.time_scale

    # ------------------------------------------------------------------ the pump's droplet
    def on_dispensed(self, pump_now_s: float, volume_ul: float) -> None:
        """The pump finished an infusion of ``volume_ul``: the droplet lands on the tablet now."""
        landed, monotonic, unix = self.now_s(), time.monotonic(), time.time()
        config = self.config
        record: dict[str, Any] = {
            "index": len(self._records),
            "volume_m3": volume_ul * UL_TO_M3,
            "instrument_time_s": landed,
            "monotonic_s": monotonic,
            "unix_time_s": unix,
            "pump_time_s": pump_now_s,
        }
        series: DropletSeries | None = None
        try:
            series = sessile_drop(
                self.blend,
                config.tablet_diameter_mm * 1e-3,
                config.tablet_thickness_mm * 1e-3,
                config.porosity,
                config.tensile_strength_mpa * 1e6,
                volume_ul * UL_TO_M3,
                config.test_duration_s,
                config.sample_interval_s,
                soluble_fraction=self.soluble_fraction,
            )
        except DisintegrationError as error:
            LOG.error("disintegration station: droplet of %.3f µL cannot be filmed: %s", volume_ul, error)
            record["error"] = str(error)
        if series is not None:
            record.update(_truth(series))
            LOG.info(
                "disintegration station: %.3f µL droplet landed at %.3f s (absorbed after %.1f s)",
                volume_ul,
                landed,
                series.absorption_time_s,
            )
        with self._lock:
            self._droplet = _Droplet(series, landed) if series is not None else None
            self._records.append(record)
            records = list(self._records)
        try:
            self._write_truth(records)
        except (OSError, ValueError) as error:  # the pump's thread must live on
            LOG.error("disintegration station: cannot write the truth file %s: %s", self.truth_path, error)

    def _write_truth(self, records: list[dict[str, Any]]) -> None:
        if self.truth_path is None:
            return
        config = self.config
        document = {
            "simulator": "disintegration_station",
            "clock": "instrument_time_s: seconds since the station started x time_scale "
            "(camera X-Timestamp); monotonic_s: CLOCK_MONOTONIC; unix_time_s: time.time()",
            "time_scale": self.time_scale,
            "recipe": dict(config.recipe),
            "tablet": {
                "diameter_m": config.tablet_diameter_mm * 1e-3,
                "thickness_m": config.tablet_thickness_mm * 1e-3,
                "porosity": config.porosity,
                "tensile_strength_pa": config.tensile_strength_mpa * 1e6,
                "soluble_fraction": self.soluble_fraction,
            },
            "camera": {
                "width": config.width,
                "height": config.height,
                "pixel_size_m": config.pixel_size_m,
                "frame_rate_hz": config.frame_rate_hz,
                "appearance": config.appearance,
            },
            "dispenses": records,
        }
        # Atomic replace: a reader never sees half a file.
        partial = self.truth_path.with_name(self.truth_path.name + ".partial")
        partial.write_text(json.dumps(document, indent=1, allow_nan=False), encoding="utf-8")
        os.replace(partial, self.truth_path)

    # ------------------------------------------------------------------ the camera's view
    def scene(self, now_s: float) -> DropletScene:
        config = self.config
        with self._lock:
            droplet = self._droplet
        if droplet is None:
            thickness = config.tablet_thickness_mm * 1e-3
            return DropletScene(
                config.tablet_diameter_mm * 1e-3, thickness, 0.0, 0.0, thickness + config.needle_gap_mm * 1e-3
            )
        series = droplet.series
        index = round(max(0.0, now_s - droplet.landed_s) / config.sample_interval_s)
        return series.scene(min(index, series.time_s.size - 1))

    def frame(self, now_s: float) -> NDArray[np.uint8]:
        """The camera's image at instrument time ``now_s`` (called by the stream's producer thread)."""
        return render(self.scene(now_s), self.settings, self._rng).image


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _truth(series: DropletSeries) -> dict[str, Any]:
    step = max(1, round(TRUTH_SERIES_STEP_S / float(series.time_s[1] - series.time_s[0])))
    return {
        "truth": {
            "washburn_coefficient_m2_per_s": series.washburn_coefficient_m2_per_s,
            "swelling_velocity_m_per_s": series.swelling_velocity_m_per_s,
            "swelling_rate_per_s": series.swelling_rate_per_s,
            "swelling_strain": series.swelling_strain,
            "absorption_time_s": _finite(series.absorption_time_s),
            "disintegration_time_s": series.disintegration_time_s,
        },
        "regimes": [
            {"regime": regime, "start_s": start, "end_s": end} for regime, start, end in series.segments()
        ],
        "series": {
            "time_s": series.time_s[::step].round(6).tolist(),
            "side_area_m2": series.side_area_m2[::step].tolist(),
            "tablet_height_m": series.tablet_height_m[::step].tolist(),
            "regime": series.regime[::step].astype(int).tolist(),
        },
    }


class SimulatedCamera:
    """The station's camera as a network instrument: serve.py starts it instead of a pty."""

    name = "camera"

    def __init__(self, world: DisintegrationWorld, faults: FaultSettings) -> None:
        self.world = world
        self.faults = faults
        self.disconnected = threading.Event()
        self.server: MjpegStreamServer | None = None
        self._timers: list[threading.Timer] = []

    def start(self, time_scale: float = 1.0, link_dir: Path | None = None) -> str:
        """Start streaming; returns the URL (``serve`` announces it and writes ``camera.url``)."""
        world, config = self.world, self.world.config
        world.start_clock(time_scale)
        if world.truth_path is None and link_dir is not None:
            world.truth_path = link_dir / TRUTH_FILE
        self.server = MjpegStreamServer(
            world.frame,
            frame_rate_hz=config.frame_rate_hz,
            jpeg_quality=config.jpeg_quality,
            host=config.host,
            port=config.port,
            clock=world.now_s,
            name="disintegration camera",
        )
        url = self.server.start()
        if self.faults.disconnect_after_s > 0.0:
            self._after(self.faults.disconnect_after_s, self._unplug)
        if config.freeze_after_s > 0.0:
            self._after(config.freeze_after_s, self.server.freeze)
        return url

    def _after(self, delay_s: float, action: Any) -> None:
        timer = threading.Timer(delay_s, action)
        timer.daemon = True
        timer.start()
        self._timers.append(timer)

    def _unplug(self) -> None:
        LOG.warning("disintegration camera: stream disappears (injected fault)")
        if self.server is not None:
            self.server.stop()
        self.disconnected.set()

    def stop(self) -> None:
        for timer in self._timers:
            timer.cancel()
        if self.server is not None:
            self.server.stop()


def make_simulators(
    options: Mapping[str, Any], faults: FaultSettings
) -> dict[str, SimulatedInstrument | SimulatedCamera]:
    """``{"syringe_pump": NE-1000 on a pty, "camera": MJPEG stream}`` on one world."""
    pump_options, station_options = split_options(options)
    world = DisintegrationWorld(config_from_options(station_options))
    pump = pump_simulator.make_simulators(pump_options, faults)["syringe_pump"]
    if not isinstance(pump, pump_simulator.SyringePumpSimulator):  # the factory's contract
        raise TypeError(f"the syringe pump factory returned {type(pump).__name__}")
    pump.dispense_listeners.append(world.on_dispensed)
    instruments: dict[str, SimulatedInstrument | SimulatedCamera] = {
        "syringe_pump": pump,
        "camera": SimulatedCamera(world, faults),
    }
    return instruments
