"""Benchmark of the physics twin: ground-truth evaluations per second and frames per second.

    .venv/bin/python bench/twin_speed.py [--experiments 200] [--frames 300] [--output FILE.json]

Why: the optimiser benchmarks evaluate thousands of experiments and the simulated camera
must render in real time (30 frames/s at 640x480), both on one core. Everything runs in
this one process with OpenCV limited to one thread. Baselines named in the same run:

* ground truth per experiment, split into its stages (dosing, compaction,
  sessile drop), so a regression shows where it is;
* frame rendering for a fixed appearance (the simulated camera's case) and with a new
  random appearance every frame (the training-data case), colour and mono, against the
  30 frames/s real-time requirement.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import platform
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np

from tablet_workcell.twin.blend import Formulation
from tablet_workcell.twin.camera import RenderSettings, random_appearance, render
from tablet_workcell.twin.compaction import compact
from tablet_workcell.twin.disintegration import sessile_drop
from tablet_workcell.twin.experiment import ExperimentSpec, simulate_experiment

LOG = logging.getLogger("twin_speed")
IR_BLEND = {"mcc": 0.6, "lactose": 0.35, "ccs": 0.04, "mgst": 0.01}
REAL_TIME_FPS = 30.0


def rate(label: str, count: int, run: Callable[[int], object]) -> dict[str, float]:
    """Run ``run(i)`` for i in range(count); report per-second rate and per-call times."""
    durations = []
    for index in range(count):
        start = time.perf_counter()
        run(index)
        durations.append(time.perf_counter() - start)
    total = sum(durations)
    result = {
        "count": count,
        "per_second": count / total,
        "median_ms": statistics.median(durations) * 1e3,
        "p95_ms": float(np.percentile(durations, 95)) * 1e3,
    }
    LOG.info(
        "%-44s %9.1f /s   median %7.3f ms   p95 %7.3f ms",
        label,
        result["per_second"],
        result["median_ms"],
        result["p95_ms"],
    )
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--experiments", type=int, default=200)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument(
        "--output", type=Path, default=Path(__file__).resolve().parent / "results" / "twin_speed.json"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    cv2.setNumThreads(1)

    spec = ExperimentSpec(IR_BLEND)
    blend = Formulation.of(IR_BLEND).properties
    outcome = compact(blend, 100e-6, 8e-3, 150e6, 0.5, np.random.default_rng(0))
    tablet = outcome.tablet
    drop_test = functools.partial(
        sessile_drop,
        blend,
        tablet.diameter_m,
        tablet.thickness_m,
        tablet.porosity,
        tablet.tensile_strength_pa,
        5e-9,
        60.0,
        1 / 30,
    )
    series = drop_test()
    scenes = [series.scene(i) for i in range(0, 300)]
    fixed = RenderSettings()
    mono = RenderSettings(colour=False)
    rng = np.random.default_rng(0)

    LOG.info(
        "twin speed on %d cores (%s), one thread", os.cpu_count(), platform.processor() or platform.machine()
    )
    results = {
        "ground_truth_experiment": rate(
            "whole experiment (dose+compact+drop)", args.experiments, lambda i: simulate_experiment(spec, i)
        ),
        "stage_compaction": rate(
            "  compaction + breaking test",
            args.experiments,
            lambda i: compact(blend, 100e-6, 8e-3, 150e6, 0.5, np.random.default_rng(i)),
        ),
        "stage_sessile_drop": rate(
            "  sessile drop, 60 s at 30 frames/s",
            args.experiments,
            lambda i: drop_test(),
        ),
        "render_colour_fixed": rate(
            "render 640x480 colour, fixed appearance",
            args.frames,
            lambda i: render(scenes[i % len(scenes)], fixed, rng),
        ),
        "render_mono_fixed": rate(
            "render 640x480 mono, fixed appearance",
            args.frames,
            lambda i: render(scenes[i % len(scenes)], mono, rng),
        ),
        "render_colour_random": rate(
            "render 640x480 colour, new appearance each",
            args.frames,
            lambda i: render(scenes[i % len(scenes)], random_appearance(rng), rng),
        ),
    }
    dosing_share = (
        1.0
        - (results["stage_compaction"]["median_ms"] + results["stage_sessile_drop"]["median_ms"])
        / (results["ground_truth_experiment"]["median_ms"])
    )
    real_time = results["render_colour_fixed"]["per_second"] >= REAL_TIME_FPS
    LOG.info(
        "dosing simulation is %.0f %% of an experiment; rendering %s real time (%.0f frames/s needed)",
        100 * dosing_share,
        "meets" if real_time else "MISSES",
        REAL_TIME_FPS,
    )
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "processor": platform.processor(),
        },
        "threads": 1,
        "results": results,
        "real_time_fps_required": REAL_TIME_FPS,
        "rendering_meets_real_time": real_time,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    LOG.info("written %s", args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
