"""``workcell analyse-video``: re-analyse a recorded disintegration test.

    workcell analyse-video RECORDING.mkv [--json]
    workcell analyse-video --bag FILE.mcap [--topic /camera/image_raw] --porosity 0.13 \\
        --thickness-m 1.5e-3 [--diameter-m 8e-3] [--tensile-strength-pa 2e6] [--json]

A frame recording (what the disintegration node writes for every test) carries its
settings and the names of the models it was analysed with: the re-analysis uses the same
ones and prints the same numbers. A bag (MCAP from the recorder node) carries only the
frames and the pixel scale; the tablet comes from the options. ``--json`` prints the full
result (every series value, regime, fit) as JSON, the form to compare two analyses with.
Problems are one line ``error: ...`` on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from tablet_workcell.errors import WorkcellError
from tablet_workcell.vision.node_parameters import IMAGE_TOPIC, SEGMENTER_KINDS

if TYPE_CHECKING:
    from tablet_workcell.vision.reanalysis import Reanalysis

REGIME_NAMES = ("spreading", "absorption", "swelling", "complete")


def _out(line: str = "") -> None:
    sys.stdout.write(line + "\n")


def add_vision_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``analyse-video`` to a parser's subcommands; run it with :func:`run_analyse_video`."""
    text = "re-analyse a recorded disintegration test (the node's frame recording, or an MCAP bag)"
    parser = subparsers.add_parser("analyse-video", help=text, description=text)
    parser.add_argument(
        "recording", nargs="?", type=Path, help="the node's frame recording (.mkv or its .json manifest)"
    )
    parser.add_argument("--bag", type=Path, metavar="FILE", help="an MCAP recording of the camera topic")
    parser.add_argument(
        "--topic", default=IMAGE_TOPIC, help=f"image topic in the bag (default {IMAGE_TOPIC})"
    )
    parser.add_argument("--json", action="store_true", help="print the whole result as JSON")
    parser.add_argument(
        "--segmenter", choices=SEGMENTER_KINDS, help="segmenter (default: the recorded one; onnx for a bag)"
    )
    parser.add_argument("--model", type=Path, help="segmentation model (default: the shipped one)")
    parser.add_argument(
        "--regime-model",
        type=Path,
        help="learned regime model (default: none, the physics baseline; a recording names its own)",
    )
    parser.add_argument(
        "--baseline-regimes",
        action="store_true",
        help="regimes from the physics baseline even if the recording used the learned model",
    )
    parser.add_argument(
        "--allow-other-models",
        action="store_true",
        help="re-analyse a recording with models other than the recorded ones (numbers will differ)",
    )
    bag = parser.add_argument_group("bag settings (a bag does not carry them)")
    bag.add_argument("--porosity", type=float, default=math.nan, help="tablet porosity (0-1)")
    bag.add_argument("--thickness-m", type=float, default=math.nan, help="tablet thickness [m]")
    bag.add_argument("--diameter-m", type=float, default=math.nan, help="tablet diameter [m]")
    bag.add_argument(
        "--tensile-strength-pa", type=float, default=math.nan, help="tablet tensile strength [Pa]"
    )
    bag.add_argument("--soluble-fraction", type=float, default=0.0, help="soluble mass fraction of the blend")
    bag.add_argument(
        "--droplet-volume-m3", type=float, default=math.nan, help="dispensed droplet volume [m^3]"
    )
    bag.add_argument(
        "--max-duration-s",
        type=float,
        default=1e6,
        help="end of the test after contact [s] (default: the bag's end)",
    )
    bag.add_argument(
        "--pixel-size-m", type=float, help="pixel size [m] (default: the bag's /camera/pixel_size_m)"
    )
    bag.add_argument("--time-scale", type=float, default=1.0, help="instrument seconds per stamp second")
    parser.set_defaults(vision_handler=command_analyse_video)


def run_analyse_video(args: argparse.Namespace) -> int:
    try:
        return command_analyse_video(args)
    except WorkcellError as error:
        sys.stderr.write(f"error: {error}\n")
        return 2


def command_analyse_video(args: argparse.Namespace) -> int:
    # Imported here: the analysis (scipy, OpenCV, onnxruntime) would slow every other command.
    from tablet_workcell.vision.reanalysis import (  # noqa: PLC0415
        load_regime_model,
        load_segmenter,
        reanalyse_bag,
        reanalyse_recording,
    )
    from tablet_workcell.vision.session import SessionSettings, TabletInfo  # noqa: PLC0415

    if (args.recording is None) == (args.bag is None):
        raise WorkcellError("name either a frame recording or --bag FILE (exactly one).")
    regime_model = load_regime_model(args.regime_model) if args.regime_model else None
    if args.recording is not None:
        kind = args.segmenter or ("onnx" if args.model else None)
        segmenter = load_segmenter(kind, args.model) if kind else None
        done = reanalyse_recording(
            args.recording,
            segmenter,
            regime_model,
            allow_other_models=args.allow_other_models,
            baseline_regimes=args.baseline_regimes,
        )
    else:
        template = SessionSettings(
            pixel_size_m=1.0e-5,  # replaced by --pixel-size-m or the bag's pixel scale
            expected_shape=None,
            max_duration_s=args.max_duration_s,
            droplet_volume_m3=args.droplet_volume_m3,
            time_scale=args.time_scale,
            tablet=TabletInfo(
                args.thickness_m,
                args.porosity,
                args.diameter_m,
                args.tensile_strength_pa,
                args.soluble_fraction,
            ),
        )
        segmenter = load_segmenter(args.segmenter or "onnx", args.model)
        done = reanalyse_bag(
            args.bag,
            None,
            segmenter,
            regime_model,
            topic=args.topic,
            pixel_size_m=args.pixel_size_m,
            template=template,
        )
    if args.json:
        _out(json.dumps(done.result.to_json(), indent=1))
    else:
        _print(done)
    return 0 if done.result.success else 1


def _print(done: Reanalysis) -> None:
    result = done.result
    _out(f"{'succeeded' if result.success else 'failed'}: {result.message}")
    _out(f"segmenter {result.segmenter}; {done.frames} frames read, {result.frames_analysed} analysed")
    _out("frame statuses: " + ", ".join(f"{k} {v}" for k, v in sorted(result.frame_statuses.items())))
    analysis = result.analysis
    if analysis is None:
        return
    _out(f"absorption time: {analysis.absorption_time_s:.3f} s")
    _out(f"predicted disintegration time: {analysis.predicted_disintegration_time_s:.1f} s")
    for regime in analysis.regimes:
        name = REGIME_NAMES[regime.regime] if 0 <= regime.regime < len(REGIME_NAMES) else str(regime.regime)
        _out(f"regime {name}: {regime.start_s:.3f} - {regime.end_s:.3f} s")
    for fit in analysis.fits:
        values = ", ".join(
            f"{name} = {value:.4g} ± {error:.2g} {unit}"
            for name, value, error, unit in zip(
                fit.parameter_names, fit.values, fit.standard_errors, fit.parameter_units, strict=True
            )
        )
        _out(
            f"fit {fit.model} of {fit.series} ({fit.start_s:.2f}-{fit.end_s:.2f} s, "
            f"R² {fit.r_squared:.4f}): {values}"
        )
    for caveat in analysis.messages:
        _out(f"note: {caveat}")
