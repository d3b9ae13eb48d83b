"""Benchmark the disintegration analysis on one CPU core: segmentation accuracy, throughput, memory.

Targets (issue #5): end-to-end (frame in, mask + measurements out) >= 60 frames/s at 640x480
on one core, compared in the same run with the naive path (the same network fed the full
frame), the same network without the full-resolution edge step (``refine_edges=False``)
and the classical OpenCV baseline; droplet IoU >= 0.95 and droplet area error <= 3 %
on the held-out twin set (appearance drawn from intervals disjoint from training); peak
memory of the analysis process.

How: the held-out set is ``tablet_workcell.vision.dataset.held_out_frames`` (fixed seed,
``split="test"``). Each path runs in its own freshly spawned process pinned to one CPU
(``os.sched_setaffinity``) with OpenMP, OpenCV and onnxruntime limited to one thread, so
the paths do not share caches or allocations and each reports its own peak RSS
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``). Frames are rendered in the child one at a
time (the analysis is timed, the rendering is not) and dropped after scoring, as a live
camera stream would be. Throughput is frames / summed analysis time after one warm-up frame.

End to end = segment + measure: the measurement is ``tablet_workcell.vision.pipeline``'s
``FrameAnalyser`` when that module exists (frame checks, segmentation, measurement); without
it the benchmark times the segmenters alone and says so in its output.

Accuracy aggregation: see ``tablet_workcell.vision.scoring`` (scored frames have a true
droplet of at least 300 px; small droplets and no-droplet frames are reported separately).

The regime/fit part of the analysis lives in ``bench/disintegration_series.py`` (another
module); when it exists its ``run()`` is called at the end and its results are merged into
the same JSON.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import importlib.util
import json
import math
import os
import platform
import resource
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import cv2
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from tablet_workcell.vision.dataset import HELD_OUT_COUNT, HELD_OUT_SEED, generate_frames
from tablet_workcell.vision.scoring import MIN_DROPLET_PX, score_frame, summarise
from tablet_workcell.vision.segmentation import OnnxSegmenter

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
TARGET_FPS = 60.0
TARGET_IOU = 0.95
TARGET_AREA_ERROR = 0.03
PATHS = ("unet", "unet_unrefined", "unet_full_resolution", "classical")
LABELS = {
    "unet": "U-Net 160x120 + upsampling + edges (ours)",
    "unet_unrefined": "U-Net 160x120 + upsampling, no edge step",
    "unet_full_resolution": "U-Net fed 640x480 (naive)",
    "classical": "classical OpenCV baseline",
}
OVERLAY_FRAMES = 3
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def _pin(cpu: int) -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cpu})


def _segmenter(path: str) -> Any:
    if path == "classical":
        classical = importlib.import_module("tablet_workcell.vision.classical")
        return classical.ClassicalSegmenter()
    return OnnxSegmenter(
        threads=1, full_resolution=path == "unet_full_resolution", refine_edges=path == "unet"
    )


Analysis = tuple[np.ndarray | None, float, str]  # labels, measured droplet area (m^2, NaN: none), status


def _analyser(path: str) -> tuple[Callable[[np.ndarray, float], Analysis], str]:
    """A callable (frame, pixel size) -> (labels, measured area, status) and a sentence on what it times."""
    segmenter = _segmenter(path)
    if importlib.util.find_spec("tablet_workcell.vision.pipeline") is None:

        def segment_only(image: np.ndarray, pixel_size_m: float) -> Analysis:
            return segmenter.segment(image).labels, float("nan"), "not measured"

        return segment_only, "segmentation only (tablet_workcell.vision.pipeline does not exist yet)"
    pipeline = importlib.import_module("tablet_workcell.vision.pipeline")
    analysers: dict[float, Any] = {}  # one per magnification of the held-out set (cheap to build)

    def analyse(image: np.ndarray, pixel_size_m: float) -> Analysis:
        analyser = analysers.get(pixel_size_m)
        if analyser is None:
            analyser = analysers[pixel_size_m] = pipeline.FrameAnalyser(segmenter, pixel_size_m)
        result = analyser.analyse(image, 0.0)
        return result.labels, result.measurement.droplet_area_m2, result.measurement.status.value

    return analyse, "end to end: FrameAnalyser.analyse (frame checks + segmentation + measurement)"


def run_path(path: str, count: int, seed: int, cpu: int, overlay: tuple[int, ...]) -> dict[str, Any]:
    """Child process: analyse the held-out frames with one path, pinned to one CPU."""
    _pin(cpu)
    cv2.setNumThreads(1)
    try:
        analyse, what = _analyser(path)
    except ModuleNotFoundError as error:
        return {"path": path, "skipped": f"{error.name} is not available yet"}
    times: list[float] = []
    statuses: dict[str, int] = {}
    measured_errors: list[float] = []
    scores = []
    overlays: dict[int, np.ndarray] = {}
    for index, frame in enumerate(generate_frames(count, seed, "test")):
        if index == 0:
            analyse(frame.image, frame.pixel_size_m)  # warm-up: first-run allocations
        start = time.perf_counter()
        labels, area_m2, status = analyse(frame.image, frame.pixel_size_m)
        times.append(time.perf_counter() - start)
        statuses[status] = statuses.get(status, 0) + 1
        if frame.droplet_area_px >= MIN_DROPLET_PX and math.isfinite(area_m2):
            measured_errors.append(abs(area_m2 - frame.droplet_area_m2_true) / frame.droplet_area_m2_true)
        predicted = labels if labels is not None else np.zeros_like(frame.labels)
        scores.append(score_frame(predicted, frame.labels))
        if index in overlay:
            overlays[index] = predicted
    seconds = np.asarray(times)
    return {
        "path": path,
        "what_is_timed": what,
        "frames": len(times),
        "frames_per_s": float(len(times) / seconds.sum()),
        "median_ms": float(np.median(seconds) * 1e3),
        "p95_ms": float(np.percentile(seconds, 95) * 1e3),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "accuracy": summarise(scores).as_dict(),
        "statuses": statuses,
        "measured_area_vs_exact_cap": {
            "frames": len(measured_errors),
            "mean_abs_relative_error": float(np.mean(measured_errors)) if measured_errors else float("nan"),
            "note": "FrameAnalyser's droplet_area_m2 vs the exact side area of the twin's cap, scored frames",
        },
        "overlays": overlays,
    }


def _overlay_indices(count: int, seed: int) -> tuple[int, ...]:
    """A large, a medium and a small (but scored) droplet of the held-out set."""
    areas = [f.droplet_area_px for f in generate_frames(count, seed, "test")]
    order = [i for i in np.argsort(areas)[::-1] if areas[i] >= MIN_DROPLET_PX]
    if not order:
        return ()
    picks = {order[0], order[len(order) // 2], order[-1]}
    return tuple(sorted(int(i) for i in picks))[:OVERLAY_FRAMES]


def _figure(
    results: dict[str, dict[str, Any]], overlay: tuple[int, ...], count: int, seed: int, out: Path
) -> None:
    frames = {i: f for i, f in enumerate(generate_frames(count, seed, "test")) if i in overlay}
    colours = {
        "unet": (0, 200, 0),
        "unet_unrefined": (200, 0, 200),
        "unet_full_resolution": (0, 140, 255),
        "classical": (0, 0, 255),
    }
    ran = [p for p in PATHS if "frames_per_s" in results.get(p, {})]
    fig, axes = plt.subplots(1, len(overlay) + 1, figsize=(4.2 * (len(overlay) + 1), 4.0))
    for ax, index in zip(axes, overlay, strict=False):
        frame = frames[index]
        image = frame.image if frame.image.ndim == 3 else cv2.cvtColor(frame.image, cv2.COLOR_GRAY2BGR)
        image = image.copy()
        ys, xs = np.nonzero(frame.labels == 1)
        truth = (frame.labels == 1).astype(np.uint8)
        contours, _ = cv2.findContours(truth, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(image, contours, -1, (255, 255, 255), 1)
        for path in ran:
            labels = results[path]["overlays"].get(index)
            if labels is None:
                continue
            contours, _ = cv2.findContours(
                (labels == 1).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE
            )
            cv2.drawContours(image, contours, -1, colours[path], 1)
        pad = 25
        r0, r1 = max(int(ys.min()) - pad, 0), min(int(ys.max()) + pad, image.shape[0])
        c0, c1 = max(int(xs.min()) - pad, 0), min(int(xs.max()) + pad, image.shape[1])
        ax.imshow(cv2.cvtColor(image[r0:r1, c0:c1], cv2.COLOR_BGR2RGB), interpolation="nearest")
        ax.set_title(f"held-out frame {index}: {frame.droplet_area_px} px droplet", fontsize=9)
        ax.axis("off")
    axes[0].text(
        0.0, -0.08, "white: truth, green: ours, magenta: no edge step, orange: naive, red: classical",
        transform=axes[0].transAxes, fontsize=8, va="top",
    )  # fmt: skip
    ax = axes[-1]
    fps = [results[p]["frames_per_s"] for p in ran]
    bars = ax.bar(
        range(len(ran)),
        fps,
        color=[
            {"unet": "#2a2", "unet_unrefined": "#c2c", "unet_full_resolution": "#f90"}.get(p, "#d22")
            for p in ran
        ],
    )
    ax.axhline(TARGET_FPS, color="k", linestyle="--", linewidth=1, label=f"target {TARGET_FPS:.0f} frames/s")
    for bar, path in zip(bars, ran, strict=True):
        iou = results[path]["accuracy"]["mean_droplet_iou"]
        ax.text(
            bar.get_x() + bar.get_width() / 2,
            bar.get_height(),
            f"IoU {iou:.3f}",
            ha="center",
            va="bottom",
            fontsize=8,
        )
    ax.set_xticks(range(len(ran)), [p.replace("_", "\n") for p in ran], fontsize=8)
    ax.set_ylabel("frames/s on one core (640x480)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def _series_part() -> dict[str, Any] | None:
    """The regimes/fits benchmark of bench/disintegration_series.py, when that module exists."""
    # ---- regimes and fits: bench/disintegration_series.py (another module) plugs in here ----
    sibling = Path(__file__).with_name("disintegration_series.py")
    if not sibling.is_file():
        print("bench/disintegration_series.py does not exist: regimes and fits are not benchmarked here")
        return None
    spec = importlib.util.spec_from_file_location("disintegration_series", sibling)
    if spec is None or spec.loader is None:
        return None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = module.run()
    return result if isinstance(result, dict) else {"result": result}


def _table(results: dict[str, dict[str, Any]]) -> str:
    rows = [
        f"{'path':<42} {'frames/s':>9} {'p95 ms':>7} {'IoU mean':>9} {'IoU pool':>9} {'|dA|/A':>7} "
        f"{'p95':>6} {'tablet':>7} {'RSS MiB':>8}"
    ]
    for path in PATHS:
        r = results.get(path, {})
        if "frames_per_s" not in r:
            rows.append(f"{LABELS[path]:<42} skipped: {r.get('skipped', 'not run')}")
            continue
        a = r["accuracy"]
        rows.append(
            f"{LABELS[path]:<42} {r['frames_per_s']:>9.1f} {r['p95_ms']:>7.1f} {a['mean_droplet_iou']:>9.4f} "
            f"{a['pooled_droplet_iou']:>9.4f} {100 * a['mean_abs_area_error']:>6.2f}% "
            f"{100 * a['p95_abs_area_error']:>5.1f}% {a['mean_tablet_iou']:>7.4f} {r['peak_rss_mib']:>8.0f}"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=HELD_OUT_COUNT, help="held-out frames per path")
    parser.add_argument("--cpu", type=int, default=None, help="CPU to pin to (default: the last allowed)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    for variable in THREAD_VARIABLES:  # inherited by the spawned children before they import numpy
        os.environ[variable] = "1"
    allowed = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else [0]
    cpu = args.cpu if args.cpu is not None else allowed[-1]
    seed = HELD_OUT_SEED
    overlay = _overlay_indices(args.frames, seed)
    results: dict[str, dict[str, Any]] = {}
    for path in PATHS:  # one fresh process per path: isolated timing and peak memory
        with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
            print(f"running {LABELS[path]} on CPU {cpu} ...", flush=True)
            results[path] = pool.submit(run_path, path, args.frames, seed, cpu, overlay).result(timeout=1800)
    print(_table(results))
    ours = results["unet"]
    what = ours.get("what_is_timed", "")
    if "accuracy" in ours:
        a = ours["accuracy"]
        print(
            f"ours: {ours['frames_per_s']:.0f} frames/s ({what}; target >= {TARGET_FPS:.0f}), "
            f"mean droplet IoU {a['mean_droplet_iou']:.4f} over {a['scored_frames']} frames with "
            f">= {a['min_droplet_px']} px "
            f"(target >= {TARGET_IOU}), mean |area error| {100 * a['mean_abs_area_error']:.2f} % "
            f"(target <= {100 * TARGET_AREA_ERROR:.0f} %); small droplets: {a['small_frames']} frames, IoU "
            f"{a['small_mean_droplet_iou']:.3f}, |error| {a['small_mean_abs_area_error_px']:.0f} px; "
            f"no droplet: {a['false_droplet_frames']}/{a['no_droplet_frames']} frames with a false droplet"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    figure = args.out / "disintegration_analysis.png"
    _figure(results, overlay, args.frames, seed, figure)
    series = _series_part()
    report = {
        "benchmark": "disintegration_analysis",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpu_pinned": cpu},
        "held_out_set": (
            f"tablet_workcell.vision.dataset.held_out_frames({args.frames}, seed={seed}), split='test'"
        ),
        "targets": {
            "frames_per_s": TARGET_FPS,
            "droplet_iou": TARGET_IOU,
            "droplet_area_error": TARGET_AREA_ERROR,
        },
        "segmentation": {p: {k: v for k, v in r.items() if k != "overlays"} for p, r in results.items()},
        "parent_peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "series": series,
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }
    path = args.out / "disintegration_analysis.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {path} and {figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
