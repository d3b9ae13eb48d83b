"""Accuracy and speed of the per-frame measurement and of the classical baseline segmenter.

    .venv/bin/python bench/vision_measurement.py [--scenes 300] [--frames 200] [--output FILE.json]

Why: the tables in docs/disintegration.md ("Measurement and the classical baseline") come
from this script, so they can be re-run after a change. Two parts, one process, OpenCV
limited to one thread, CPU time per call (``time.process_time``: a loaded machine does not
inflate it the way it inflates wall time):

* ``measure()`` on the twin's exact masks against the scene's exact geometry (contact
  angle, base width, apex height, cap volume, tablet height, side area), random scenes
  with tilt and offset: this isolates the measurement from any segmentation error;
* ``ClassicalSegmenter`` on ``tablet_workcell.vision.dataset`` frames of the train and the
  test (held-out appearance) split and on ``held_out_frames()``: pooled and per-frame IoU,
  area error, the contact angle and tablet height measured from its labels against those
  measured from the exact mask, and how often the frame status agrees.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from tablet_workcell.twin.camera import RenderSettings, render
from tablet_workcell.twin.records import DropletScene
from tablet_workcell.vision.classical import ClassicalSegmenter
from tablet_workcell.vision.dataset import LabelledFrame, generate_frames, held_out_frames
from tablet_workcell.vision.measurement import measure, measure_geometry
from tablet_workcell.vision.types import LABEL_DROPLET, LABEL_TABLET, FrameStatus

RESULTS = Path(__file__).resolve().parent / "results" / "vision_measurement.json"
SMALL_DROPLET_PX = 200  # per-frame statistics only for droplets at least this large


def spread(values: Iterable[float]) -> dict[str, float]:
    array = np.abs(np.asarray(list(values), dtype=np.float64))
    array = array[np.isfinite(array)]
    return {
        "median": float(np.median(array)),
        "p95": float(np.percentile(array, 95)),
        "max": float(array.max()),
        "n": int(array.size),
    }


def measurement_accuracy(scenes: int, seed: int = 42) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    errors: dict[str, list[float]] = {
        k: []
        for k in ("area_vs_true", "angle_deg", "base_px", "height_px", "volume", "tablet_px", "sides_deg")
    }
    cpu: list[float] = []
    at_edge = 0
    for _ in range(scenes):
        pixel = float(rng.uniform(15e-6, 25e-6))
        diameter = float(rng.uniform(6e-3, 9e-3))
        base = float(rng.uniform(0.8e-3, 0.45 * diameter))
        angle = float(rng.uniform(20.0, 120.0))
        thickness = float(rng.uniform(2e-3, 4e-3))
        scene = DropletScene(diameter, thickness, base, math.radians(angle))
        offset = (float(rng.uniform(-25, 25)), float(rng.uniform(-12, 12)))
        settings = RenderSettings(
            pixel_size_m=pixel, rotation_deg=float(rng.uniform(-1.5, 1.5)), offset_px=offset, colour=False
        )
        mask = render(scene, settings, rng).mask
        start = time.process_time()
        geometry = measure_geometry(mask, pixel)
        cpu.append(time.process_time() - start)
        m = geometry.measurement
        if m.status is not FrameStatus.OK:
            at_edge += m.status is FrameStatus.DROPLET_AT_EDGE
            continue
        errors["area_vs_true"].append(m.droplet_area_m2 / scene.droplet_side_area_m2 - 1.0)
        errors["angle_deg"].append(math.degrees(m.contact_angle_rad) - angle)
        errors["base_px"].append((m.base_width_m - 2.0 * base) / pixel)
        errors["height_px"].append((m.droplet_height_m - scene.droplet_height_m) / pixel)
        errors["volume"].append(m.droplet_volume_m3 / scene.droplet_volume_m3 - 1.0)
        errors["tablet_px"].append((m.tablet_height_m - thickness) / pixel)
        sides = (geometry.angle_left_rad, geometry.angle_right_rad)
        errors["sides_deg"].append(max(abs(math.degrees(s) - angle) for s in sides))
    return {
        "scenes": scenes,
        "droplet_at_edge": at_edge,
        "errors": {name: spread(values) for name, values in errors.items()},
        "cpu_ms": spread(1e3 * t for t in cpu),
    }


def classical_accuracy(name: str, frames: Iterable[LabelledFrame]) -> dict[str, Any]:
    segmenter = ClassicalSegmenter()
    sums = {"droplet_i": 0, "droplet_u": 0, "tablet_i": 0, "tablet_u": 0}
    per_frame, area, angle, tablet, cpu = [], [], [], [], []
    agree = count = 0
    for frame in frames:
        start = time.process_time()
        labels = segmenter.segment(frame.image).labels
        cpu.append(time.process_time() - start)
        predicted, truth = labels == LABEL_DROPLET, frame.labels == LABEL_DROPLET
        both, either = np.count_nonzero(predicted & truth), np.count_nonzero(predicted | truth)
        sums["droplet_i"] += int(both)
        sums["droplet_u"] += int(either)
        sums["tablet_i"] += int(np.count_nonzero((labels == LABEL_TABLET) & (frame.labels == LABEL_TABLET)))
        sums["tablet_u"] += int(np.count_nonzero((labels == LABEL_TABLET) | (frame.labels == LABEL_TABLET)))
        expected, measured = measure(frame.labels, frame.pixel_size_m), measure(labels, frame.pixel_size_m)
        count += 1
        agree += expected.status is measured.status
        tablet.append((measured.tablet_height_m - expected.tablet_height_m) / frame.pixel_size_m)
        ok = expected.status is FrameStatus.OK and measured.status is FrameStatus.OK
        if ok and frame.droplet_area_px >= SMALL_DROPLET_PX:
            per_frame.append(both / either)
            area.append(np.count_nonzero(predicted) / frame.droplet_area_px - 1.0)
            angle.append(math.degrees(measured.contact_angle_rad - expected.contact_angle_rad))
    ious = np.array(per_frame)
    return {
        "set": name,
        "frames": count,
        "pooled_droplet_iou": sums["droplet_i"] / max(sums["droplet_u"], 1),
        "pooled_tablet_iou": sums["tablet_i"] / max(sums["tablet_u"], 1),
        "per_frame_droplet_iou": {"mean": float(ious.mean()), "p10": float(np.percentile(ious, 10))},
        "area_error_vs_mask": {**spread(area), "mean": float(np.mean(np.abs(area)))},
        "angle_vs_mask_deg": spread(angle),
        "tablet_height_vs_mask_px": spread(tablet),
        "status_agrees": f"{agree}/{count}",
        "cpu_ms": spread(1e3 * t for t in cpu),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=300)
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    result: dict[str, Any] = {"measurement": measurement_accuracy(args.scenes)}
    print(json.dumps(result["measurement"], indent=1))
    result["classical"] = []
    for name, frames in (
        (f"train split, seed 7, {args.frames} frames", generate_frames(args.frames, 7, "train")),
        (f"test split, seed 7, {args.frames} frames", generate_frames(args.frames, 7, "test")),
        ("held_out_frames()", held_out_frames()),
    ):
        result["classical"].append(classical_accuracy(name, frames))
        print(json.dumps(result["classical"][-1], indent=1))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=1) + "\n")
    print(f"written to {args.output}")


if __name__ == "__main__":
    main()
