"""Benchmark the regimes and fits of the disintegration analysis on held-out twin tests.

Targets (issue #5): regime boundary error <= 5 % of the test duration (learned model and the
physics baseline, both reported); fitted absorption (Washburn C) and swelling (k_s) rate
constants within 10 % of the twin's truth. Also reported: the absorption time and the
predicted disintegration time against the twin's.

Held-out tests: ``tablet_workcell.twin.regime_cases.cases(seed, n, "test")``: blend
families, porosities and droplet volumes that the learned regime model never saw in
training (model card: ``models/regime_segmentation.card.json``).

Two sets:

* ``pipeline``: each test is rendered by the twin's camera (appearance from the held-out
  ``random_appearance(split="test")`` intervals) and every analysed frame goes through the
  real per-frame pipeline, ``vision.pipeline.FrameAnalyser``, with the shipped ONNX
  segmenter, or with the twin's exact masks while that model's card reports a held-out
  droplet IoU below 0.9 (a placeholder model; the output says which); the series is
  assembled as the node assembles it (``vision.session.series_columns``). At most
  ``--frames`` frames per test: all of the first half, the rest spread over the tail.
* ``observation``: many more tests measured by the fast observation model
  (``twin/observation.py``: pixel quantisation, edge and area noise, rejected frames), for
  statistics the rendering cannot afford.
* ``node_records``: the same observation model on records as long as the cell's
  disintegration node films them with the graph's settings (until 30 s after the droplet
  is gone, at most 120 s: ``regime_cases.cases(..., records="node")``). The two sets above
  mix in records that stop 1.2-4 absorption times after contact, before a slow swelling
  has shown its rate; this set says what the cell itself measures.

Rate constants are reported over all tests and over the tests where the analysis did not
flag the constant as poorly determined (relative standard error above 5 %: a record too
short for the swelling kinetics, a capillary stage of a few frames), because the analysis
says in its messages which numbers not to trust.

Regime boundary error: max over the ABSORPTION, SWELLING and COMPLETE start times of
|found - true| / duration (``vision.regimes.boundary_error``), against the twin's regimes.

    .venv/bin/python bench/disintegration_series.py [--pipeline-tests 12] [--observation-tests 200]
        [--node-tests 200]
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import platform
import sys
import time
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from tablet_workcell.twin import regime_cases
from tablet_workcell.twin.appearance import random_appearance
from tablet_workcell.twin.camera import render
from tablet_workcell.twin.disintegration import DropletSeries
from tablet_workcell.vision import regimes
from tablet_workcell.vision.imbibition import droplet_volume_m3, front_depth_m
from tablet_workcell.vision.pipeline import FrameAnalyser
from tablet_workcell.vision.regime_model import DEFAULT_MODEL, RegimeModel
from tablet_workcell.vision.segmentation import OnnxSegmenter
from tablet_workcell.vision.series import SeriesError, analyse_series
from tablet_workcell.vision.series_inputs import prepare_series
from tablet_workcell.vision.session import series_columns
from tablet_workcell.vision.types import Fit, Segmentation, SeriesAnalysis

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
SEED = 31_337
TARGET_BOUNDARY = 0.05
TARGET_RATE = 0.10
Example = tuple[
    regime_cases.DropCase, DropletSeries, dict[str, np.ndarray], SeriesAnalysis, SeriesAnalysis | None
]
REGIME_COLOURS = {0: "#dddddd", 1: "#9ecae1", 2: "#fdae6b", 3: "#a1d99b"}


MIN_SEGMENTER_IOU = 0.9  # below this (e.g. a smoke-trained placeholder) the exact masks stand in


class _TruthSegmenter:
    """Segmenter protocol over the twin's exact mask of the frame being analysed."""

    name = "twin exact mask"
    version = "exact"

    def __init__(self) -> None:
        self.mask: np.ndarray | None = None

    def segment(self, image: np.ndarray) -> Segmentation:
        if self.mask is None:
            raise RuntimeError("no mask set for this frame")
        return Segmentation(self.mask)


def _segmentation_quality(card_path: Path) -> float:
    """Held-out pooled droplet IoU the segmentation card reports (NaN when it reports none)."""
    try:
        metrics = json.loads(card_path.read_text(encoding="utf-8"))["metrics"]["low_resolution_upsampled"]
        return float(metrics["pooled_droplet_iou"])
    except (OSError, KeyError, TypeError, ValueError):
        return math.nan


def _measurer(segmenter_choice: str) -> tuple[Any, str]:
    """(frame image, mask, time, pixel size) -> DropletMeasurement through FrameAnalyser, and what it is."""
    model_path = REPO / "models" / "droplet_segmentation.onnx"
    iou = _segmentation_quality(model_path.with_suffix(".card.json"))
    use_onnx = segmenter_choice == "onnx" or (
        segmenter_choice == "auto" and model_path.is_file() and not iou < MIN_SEGMENTER_IOU
    )
    truth = _TruthSegmenter()
    segmenter: Any = OnnxSegmenter(model_path, threads=1) if use_onnx else truth
    analysers: dict[float, FrameAnalyser] = {}

    def analyse(image: np.ndarray, mask: np.ndarray, time_s: float, pixel_size_m: float) -> Any:
        truth.mask = mask
        analyser = analysers.setdefault(pixel_size_m, FrameAnalyser(segmenter, pixel_size_m))
        return analyser.analyse(image, time_s).measurement

    if use_onnx:
        return (
            analyse,
            f"FrameAnalyser + OnnxSegmenter {segmenter.card.short_hash} on rendered test-split frames",
        )
    reason = (
        f"the shipped segmentation model reports held-out droplet IoU {iou:.3f} < {MIN_SEGMENTER_IOU}"
        if segmenter_choice == "auto"
        else "asked for"
    )
    return analyse, f"FrameAnalyser on the twin's exact masks of rendered test-split frames ({reason})"


def frame_indices(samples: int, max_frames: int) -> np.ndarray:
    """Every sample of the first half of the budget, then evenly spaced ones over the rest.

    A live test analyses every frame; the benchmark cannot render them all, so it keeps
    the start at the full frame rate (a fast drop is gone within seconds and the capillary
    stage lasts one) and thins the slow swelling tail.
    """
    if samples <= max_frames:
        return np.arange(samples)
    head = max_frames // 2
    tail = np.linspace(head, samples - 1, max_frames - head).round().astype(int)
    return np.unique(np.concatenate([np.arange(head), tail]))


def _filmed(
    case: regime_cases.DropCase,
    series: DropletSeries,
    rng: np.random.Generator,
    max_frames: int,
    measurer: Any,
) -> dict[str, np.ndarray]:
    """The series as the node would report it: rendered frames, FrameAnalyser, session.series_columns."""
    settings = random_appearance(rng, split="test")
    rows = []
    for index in frame_indices(series.time_s.size, max_frames):
        frame = render(series.scene(int(index)), settings, rng)
        time_s = float(series.time_s[index])
        rows.append((time_s, measurer(frame.image, frame.mask, time_s, settings.pixel_size_m)))
    columns = series_columns(rows)
    return {
        "time_s": columns["time_s"],
        "area": columns["droplet_area_m2"],
        "volume": columns["droplet_volume_m3"],
        "width": columns["base_width_m"],
        "height": columns["tablet_height_m"],
    }


def _score(
    case: regime_cases.DropCase,
    series: DropletSeries,
    measured: dict[str, np.ndarray],
    model: RegimeModel | None,
) -> tuple[dict[str, float], SeriesAnalysis | None, SeriesAnalysis | None]:
    """Boundary errors of both methods and the fit / figure-of-merit errors of one test."""
    common: dict[str, Any] = {
        "porosity": case.porosity,
        "tablet_thickness_m": case.tablet_thickness_m,
        "droplet_volume_dispensed_m3": case.droplet_volume_m3,
        "base_width_m": measured["width"],
        "tablet_diameter_m": case.tablet_diameter_m,
        "tensile_strength_pa": case.tensile_strength_pa,
        "soluble_fraction": case.soluble_fraction,
    }
    args = (measured["time_s"], measured["volume"], measured["area"], measured["height"])
    truth = regimes.intervals_from_labels(series.time_s, series.regime)
    end = float(series.time_s[-1])
    try:
        baseline = analyse_series(*args, **common)
    except SeriesError as error:
        print(f"  test not analysable: {error}")
        return {"duration_s": end, "not_analysable": 1.0, **_misses(series)}, None, None
    row: dict[str, float] = {
        "duration_s": end,
        "baseline_boundary_error": regimes.boundary_error(baseline.regimes, truth, 0.0, end),
        "swelling_truth": float(series.swelling_rate_per_s > 0),
    }
    learned = analyse_series(*args, regime_model=model, **common) if model is not None else None
    if learned is not None:
        row["learned_boundary_error"] = regimes.boundary_error(learned.regimes, truth, 0.0, end)
    fits = {(f.model, f.series): f for f in baseline.fits}
    washburn = fits.get(("washburn", "droplet_volume"))
    row["c_relative_error"] = (
        washburn.value("C") / series.washburn_coefficient_m2_per_s - 1.0 if washburn else math.nan
    )
    if washburn is not None and not any(m.startswith("C = ") for m in baseline.messages):
        row["c_relative_error_trusted"] = row["c_relative_error"]  # not flagged poorly determined
    swelling = fits.get(("first_order", "tablet_height"))
    if series.swelling_rate_per_s > 0:
        row["k_s_relative_error"] = (
            swelling.value("k_s") / series.swelling_rate_per_s - 1 if swelling else math.nan
        )
        if swelling is not None and not any(m.startswith("k_s = ") for m in baseline.messages):
            row["k_s_relative_error_trusted"] = row["k_s_relative_error"]
    if math.isfinite(series.absorption_time_s) and series.absorption_time_s < end:
        row["absorption_time_error_fraction"] = (baseline.absorption_time_s - series.absorption_time_s) / end
    row["disintegration_relative_error"] = (
        baseline.predicted_disintegration_time_s / series.disintegration_time_s - 1.0
    )
    return row, baseline, learned


def _observed_rows(tests: Any, model: RegimeModel | None) -> list[dict[str, float]]:
    """Scores of tests measured by the observation model (twin/observation.py)."""
    rows = []
    for case, series, observed in tests:
        measured = {
            "time_s": observed.time_s,
            "area": observed.droplet_area_m2,
            "volume": observed.droplet_volume_m3,
            "width": observed.base_width_m,
            "height": observed.tablet_height_m,
        }
        rows.append(_score(case, series, measured, model)[0])
    return rows


def _misses(series: DropletSeries) -> dict[str, float]:
    """Every figure of a test that could not be analysed counts as a miss (NaN)."""
    row = dict.fromkeys(("learned_boundary_error", "baseline_boundary_error", "c_relative_error"), math.nan)
    if series.swelling_rate_per_s > 0:
        row["k_s_relative_error"] = math.nan
    return row


def _summary(rows: list[dict[str, float]]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "tests": len(rows),
        "not_analysable": int(sum(r.get("not_analysable", 0) for r in rows)),
    }
    for key, target in (
        ("learned_boundary_error", TARGET_BOUNDARY),
        ("baseline_boundary_error", TARGET_BOUNDARY),
        ("c_relative_error", TARGET_RATE),
        ("c_relative_error_trusted", TARGET_RATE),
        ("k_s_relative_error", TARGET_RATE),
        ("k_s_relative_error_trusted", TARGET_RATE),
        ("absorption_time_error_fraction", TARGET_BOUNDARY),
        ("disintegration_relative_error", TARGET_RATE),
    ):
        present = [r[key] for r in rows if key in r]
        values = np.abs(np.asarray(present, dtype=np.float64))
        if not values.size:
            continue
        finite = values[np.isfinite(values)]
        out[key] = {
            "n": int(values.size),
            "missing_fit": int(values.size - finite.size),
            "median_abs": float(np.median(finite)) if finite.size else math.nan,
            "p95_abs": float(np.percentile(finite, 95)) if finite.size else math.nan,
            "max_abs": float(finite.max()) if finite.size else math.nan,
            "share_within_target": float(np.mean(values <= target)),  # a missing fit counts as a miss
            "target": target,
        }
    return out


def _plot(
    case: regime_cases.DropCase,
    series: DropletSeries,
    measured: dict[str, np.ndarray],
    baseline: SeriesAnalysis,
    learned: SeriesAnalysis | None,
    path: Path,
) -> None:
    t = measured["time_s"]
    fig, axes = plt.subplots(3, 1, figsize=(9, 8), sharex=True, height_ratios=[3, 3, 1])
    fits = {(f.model, f.series): f for f in baseline.fits}
    axes[0].plot(t, measured["volume"] * 1e9, ".", ms=3, color="0.4", label="measured (pipeline)")
    axes[0].plot(series.time_s, series.volume_m3 * 1e9, "-", lw=0.8, color="k", label="twin truth")
    washburn = fits.get(("washburn", "droplet_volume"))
    if washburn is not None:
        prepared = prepare_series(
            t,
            measured["volume"],
            measured["area"],
            measured["height"],
            porosity=case.porosity,
            tablet_thickness_m=case.tablet_thickness_m,
            base_width_m=measured["width"],
            tablet_diameter_m=case.tablet_diameter_m,
        )
        dense = np.linspace(0.0, t[-1], 600)
        model = droplet_volume_m3(
            dense, washburn.value("V0"), washburn.value("C"), washburn.value("v_s"), prepared.geometry
        )
        axes[0].plot(dense, model * 1e9, "-", color="tab:blue", label=_label(washburn))
    axes[0].set_ylabel("droplet volume (uL)")
    axes[0].legend(fontsize=8)
    axes[1].plot(t, measured["height"] * 1e3, ".", ms=3, color="0.4", label="measured")
    swelling = fits.get(("first_order", "tablet_height"))
    if swelling is not None and washburn is not None:
        dense = np.linspace(0.0, t[-1], 600)
        h0 = swelling.value("h0")
        depth = front_depth_m(dense, washburn.value("C"), washburn.value("v_s"))
        curve = h0 * (
            1 + swelling.value("S") * (1 - np.exp(-swelling.value("k_s") * dense)) * np.minimum(1, depth / h0)
        )
        axes[1].plot(dense, curve * 1e3, "-", color="tab:orange", label=_label(swelling))
    axes[1].set_ylabel("tablet height (mm)")
    axes[1].legend(fontsize=8)
    lanes = [
        ("truth", regimes.intervals_from_labels(series.time_s, series.regime)),
        ("baseline", baseline.regimes),
    ]
    if learned is not None:
        lanes.append(("learned", learned.regimes))
    for lane, (name, intervals) in enumerate(lanes):
        for interval in intervals:
            axes[2].barh(
                lane,
                interval.end_s - interval.start_s,
                left=interval.start_s,
                color=REGIME_COLOURS[interval.regime],
            )
        axes[2].text(t[-1], lane, f" {name}", va="center", fontsize=8)
    for interval in baseline.regimes:
        for ax in axes[:2]:
            ax.axvspan(
                interval.start_s, interval.end_s, color=REGIME_COLOURS[interval.regime], alpha=0.25, lw=0
            )
    axes[2].set_yticks([])
    axes[2].set_xlabel(
        "time since contact (s); regimes: spreading grey, absorption blue, swelling orange, complete green"
    )
    blend = ", ".join(f"{k} {v:.2f}" for k, v in case.fractions.items())
    fig.suptitle(
        f"held-out test: {blend}; porosity {case.porosity:.3f}; {case.droplet_volume_m3 * 1e9:.1f} uL",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _label(fit: Fit) -> str:
    parts = [
        f"{n}={v:.3g}+-{e:.2g} {u}"
        for n, v, e, u in zip(
            fit.parameter_names, fit.values, fit.standard_errors, fit.parameter_units, strict=True
        )
        if n not in {"V0", "h0"}
    ]
    return f"{fit.model}: " + ", ".join(parts)


def run(
    pipeline_tests: int = 12,
    observation_tests: int = 200,
    max_frames: int = 300,
    node_tests: int = 200,
    seed: int = SEED,
    out_dir: Path = RESULTS,
    segmenter: str = "auto",
) -> dict[str, Any]:
    """Run both sets, print a table, save JSON and a PNG to ``out_dir``; returns the results."""
    started = time.perf_counter()
    model = RegimeModel(DEFAULT_MODEL) if DEFAULT_MODEL.is_file() else None
    measurer, measured_by = _measurer(segmenter)
    rng = np.random.default_rng(seed)
    pipeline_rows: list[dict[str, float]] = []
    example: Example | None = None
    for case, series, _observed in regime_cases.cases(seed, pipeline_tests, "test"):
        measured = _filmed(case, series, rng, max_frames, measurer)
        row, baseline, learned = _score(case, series, measured, model)
        pipeline_rows.append(row)
        if example is None and series.swelling_rate_per_s > 0 and baseline is not None:
            example = (case, series, measured, baseline, learned)
    observation_rows = _observed_rows(regime_cases.cases(seed + 1, observation_tests, "test"), model)
    node_rows = _observed_rows(regime_cases.cases(seed + 2, node_tests, "test", records="node"), model)
    results: dict[str, Any] = {
        "benchmark": "disintegration_series",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "held_out": "tablet_workcell.twin.regime_cases.cases(seed, n, 'test')",
        "seed": seed,
        "regime_model": model.version if model is not None else "missing: learned model not evaluated",
        "pipeline": {
            "measured_by": measured_by,
            "max_frames_per_test": max_frames,
            **_summary(pipeline_rows),
        },
        "observation": {"measured_by": "twin/observation.py noise model", **_summary(observation_rows)},
        "node_records": {
            "measured_by": "twin/observation.py noise model, records as the node films them",
            **_summary(node_rows),
        },
        "seconds": round(time.perf_counter() - started, 1),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "disintegration_series.json").write_text(
        json.dumps(results, indent=2) + "\n", encoding="utf-8"
    )
    if example is not None:
        case, series, measured, baseline, learned = example
        _plot(case, series, measured, baseline, learned, out_dir / "disintegration_series.png")
    print(_table(results))
    return results


def _table(results: dict[str, Any]) -> str:
    lines = [f"regimes and fits on held-out twin tests ({results['seconds']} s)"]
    for name in ("pipeline", "observation", "node_records"):
        part = results[name]
        lines.append(f"\n{name}: {part['tests']} tests, measured by {part['measured_by']}")
        lines.append(
            f"{'quantity':<34} {'median':>8} {'p95':>8} {'max':>8} {'within':>8} {'target':>7} {'missing':>8}"
        )
        for key, label in (
            ("learned_boundary_error", "regime boundary, learned model"),
            ("baseline_boundary_error", "regime boundary, physics baseline"),
            ("c_relative_error", "Washburn C, relative"),
            ("c_relative_error_trusted", "  C not flagged uncertain"),
            ("k_s_relative_error", "swelling k_s, relative"),
            ("k_s_relative_error_trusted", "  k_s not flagged uncertain"),
            ("absorption_time_error_fraction", "absorption time / duration"),
            ("disintegration_relative_error", "predicted disintegration, relative"),
        ):
            if key not in part:
                lines.append(f"{label:<34} not evaluated")
                continue
            s = part[key]
            within = (
                f"{100 * s['share_within_target']:>7.1f}% {100 * s['target']:>6.0f}% {s['missing_fit']:>8d}"
            )
            lines.append(
                f"{label:<34} {100 * s['median_abs']:>7.2f}% {100 * s['p95_abs']:>7.2f}% "
                f"{100 * s['max_abs']:>7.2f}% {within}"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipeline-tests", type=int, default=12)
    parser.add_argument("--observation-tests", type=int, default=200)
    parser.add_argument(
        "--node-tests", type=int, default=200, help="observation tests with records as long as the node's"
    )
    parser.add_argument("--frames", type=int, default=300, help="most analysed frames per filmed test")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--segmenter",
        choices=("auto", "onnx", "exact"),
        default="auto",
        help="auto: the shipped ONNX model unless its card reports held-out droplet IoU < 0.9",
    )
    args = parser.parse_args(argv)
    run(
        args.pipeline_tests,
        args.observation_tests,
        args.frames,
        args.node_tests,
        args.seed,
        args.out,
        args.segmenter,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
