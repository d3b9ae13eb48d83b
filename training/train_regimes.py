"""Train the learned regime model on measured twin series and export it to ONNX with its card.

Data: ``tablet_workcell.twin.regime_cases.cases(seed, count, "train")``: random blends,
porosities, droplet volumes, tablet geometries, frame rates and record lengths, each
measured with pixel quantisation, edge and area noise and rejected frames
(twin/observation.py); the per-step targets are the twin's own regimes at the bin
centres. Validation: the ``"test"`` split (blend families, porosities and droplet volumes
never used in training). Features and decoding are the runtime's own
(``tablet_workcell.vision.regime_model``), so training and inference cannot drift apart.

Deterministic (torch on one thread, seeded data and initial weights); a few minutes on one
CPU core; ``--smoke`` runs a handful of steps on a handful of series in seconds:

    .venv/bin/python training/train_regimes.py                      # writes models/
    .venv/bin/python training/train_regimes.py --smoke --out /tmp/x  # CI smoke run
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import TypeVar

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(REPO))

import onnx  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402, N812 - the usual torch alias
from torch import nn  # noqa: E402

from tablet_workcell.twin import regime_cases  # noqa: E402
from tablet_workcell.twin.disintegration import DropletSeries  # noqa: E402
from tablet_workcell.twin.observation import ObservedSeries  # noqa: E402
from tablet_workcell.vision import regime_model, regimes  # noqa: E402
from tablet_workcell.vision.regime_model import PhysicsEstimate  # noqa: E402
from tablet_workcell.vision.series import analyse_series  # noqa: E402
from tablet_workcell.vision.series_inputs import PreparedSeries, prepare_series  # noqa: E402

MODEL_NAME = "regime_segmentation"
VERSION = "2.0.0"
OPSET = 17
WIDTH = 32
DILATIONS = (1, 2, 4, 8, 16, 32, 64, 1)
VALIDATION_SEED = 4242
T = TypeVar("T")


class RegimeNet(nn.Module):
    """Dilated residual 1-D convolutions: a receptive field of the whole 256-step record."""

    def __init__(
        self, channels: int = len(regime_model.CHANNELS), classes: int = len(regime_model.CLASSES)
    ) -> None:
        super().__init__()
        self.stem = nn.Conv1d(channels, WIDTH, 5, padding=2)
        self.blocks = nn.ModuleList(nn.Conv1d(WIDTH, WIDTH, 3, padding=d, dilation=d) for d in DILATIONS)
        self.head = nn.Conv1d(WIDTH, classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.stem(x))
        for block in self.blocks:
            h = h + F.relu(block(h))
        return self.head(h)


def step_targets(time_s: np.ndarray, regime: np.ndarray, steps: int) -> np.ndarray:
    """Class index (0 absorption, 1 swelling, 2 complete) of the twin's regime at each bin centre."""
    centres = time_s[0] + (time_s[-1] - time_s[0]) * (np.arange(steps) + 0.5) / steps
    nearest = np.clip(np.searchsorted(time_s, centres), 0, time_s.size - 1)
    labels = np.maximum(regime[nearest].astype(np.int64), regimes.ABSORPTION)  # spreading is not learned
    return labels - regimes.ABSORPTION


def _on_measured(function: Callable[..., T], case: regime_cases.DropCase, observed: ObservedSeries) -> T:
    """Call prepare_series or analyse_series on one measured series and its tablet."""
    return function(
        observed.time_s,
        observed.droplet_volume_m3,
        observed.droplet_area_m2,
        observed.tablet_height_m,
        porosity=case.porosity,
        tablet_thickness_m=case.tablet_thickness_m,
        base_width_m=observed.base_width_m,
        tablet_diameter_m=case.tablet_diameter_m,
    )


def prepared_of(case: regime_cases.DropCase, observed: ObservedSeries) -> PreparedSeries:
    """The measured series prepared as analyse_series prepares it (same base radius, same volumes)."""
    return _on_measured(prepare_series, case, observed)


def physics_of(case: regime_cases.DropCase, observed: ObservedSeries) -> PhysicsEstimate:
    """The fits' view of the series, from analyse_series exactly as the runtime computes it."""
    analysis = _on_measured(analyse_series, case, observed)
    return PhysicsEstimate.from_fits(analysis.fits, analysis.absorption_time_s)


Example = tuple[regime_cases.DropCase, DropletSeries, ObservedSeries]


def example_of(item: Example) -> tuple[np.ndarray, np.ndarray]:
    """Features and per-step targets of one test (runs in a worker process)."""
    case, series, observed = item
    features = regime_model.regime_features(prepared_of(case, observed), physics_of(case, observed))
    return features, step_targets(series.time_s, series.regime, regime_model.STEPS)


def make_set(
    seed: int, count: int, split: regime_cases.Split, workers: int
) -> tuple[np.ndarray, np.ndarray, list]:
    """Features, targets and true regimes of ``count`` tests; the fits run in ``workers`` processes
    (about 0.2 s a test), in a fixed order, so the set does not depend on the worker count."""
    items = list(regime_cases.cases(seed, count, split))
    with ProcessPoolExecutor(max_workers=workers) as pool:
        examples = list(pool.map(example_of, items, chunksize=32))
    truths = [(s.time_s, regimes.intervals_from_labels(s.time_s, s.regime)) for _c, s, _o in items]
    return np.stack([f for f, _ in examples]), np.stack([t for _, t in examples]), truths


def boundary_errors(net: nn.Module, features: np.ndarray, truths: list) -> np.ndarray:
    net.eval()
    with torch.no_grad():
        log_p = F.log_softmax(net(torch.from_numpy(features)), dim=1).numpy()
    errors = []
    for scores, (time_s, truth) in zip(log_p, truths, strict=True):
        found = regime_model.labels_to_regimes(time_s, regime_model.monotone_decode(scores))
        errors.append(regimes.boundary_error(found, truth, float(time_s[0]), float(time_s[-1])))
    return np.asarray(errors)


def export(net: nn.Module, path: Path) -> None:
    net.eval()
    warnings.filterwarnings(
        "ignore", "You are using the legacy TorchScript-based ONNX export", DeprecationWarning
    )
    torch.onnx.export(
        net,
        (torch.zeros(1, len(regime_model.CHANNELS), regime_model.STEPS),),
        str(path),
        input_names=["features"],
        output_names=["logits"],
        opset_version=OPSET,
        dynamo=False,  # the dynamo exporter needs onnxscript, which this environment lacks
    )
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=8000, help="training series")
    parser.add_argument("--validation", type=int, default=400, help="held-out (test split) series")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--out", type=Path, default=REPO / "models")
    parser.add_argument("--smoke", action="store_true", help="a few steps on a handful of series (CI)")
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, help="processes fitting the series"
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.series, args.validation, args.epochs = 64, 16, 1
    torch.manual_seed(args.seed)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    started = time.perf_counter()

    x_train, y_train, _ = make_set(args.seed, args.series, "train", args.workers)
    x_val, y_val, truths = make_set(VALIDATION_SEED, args.validation, "test", args.workers)
    print(
        f"data: {len(x_train)} train, {len(x_val)} held-out series in {time.perf_counter() - started:.1f} s"
    )

    net = RegimeNet()
    optimiser = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-4)
    batches = max(1, len(x_train) // args.batch)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, args.lr, total_steps=args.epochs * batches)
    xs, ys = torch.from_numpy(x_train), torch.from_numpy(y_train)
    generator = torch.Generator().manual_seed(args.seed)
    for epoch in range(args.epochs):
        net.train()
        order = torch.randperm(len(xs), generator=generator)
        total = 0.0
        for b in range(batches):
            index = order[b * args.batch : (b + 1) * args.batch]
            loss = F.cross_entropy(net(xs[index]), ys[index])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            total += float(loss.detach())
        errors = boundary_errors(net, x_val, truths)
        print(
            f"epoch {epoch + 1}/{args.epochs}: loss {total / batches:.4f}, held-out boundary error "
            f"median {100 * np.median(errors):.2f} %, p95 {100 * np.percentile(errors, 95):.2f} %, "
            f"max {100 * errors.max():.2f} % ({time.perf_counter() - started:.0f} s)"
        )

    args.out.mkdir(parents=True, exist_ok=True)
    model_path = args.out / f"{MODEL_NAME}.onnx"
    export(net, model_path)
    net.eval()
    with torch.no_grad():
        accuracy = float((net(torch.from_numpy(x_val)).argmax(1).numpy() == y_val).mean())
    errors = boundary_errors(net, x_val, truths)
    metrics = {
        "held_out_series": len(x_val),
        "boundary_error_fraction_of_duration": {
            "mean": float(errors.mean()),
            "median": float(np.median(errors)),
            "p95": float(np.percentile(errors, 95)),
            "max": float(errors.max()),
            "share_within_5_percent": float((errors <= 0.05).mean()),
        },
        "step_accuracy": accuracy,
        "definition": "max over the ABSORPTION, SWELLING, COMPLETE starts of |predicted - true| / duration",
    }
    write_card(args, model_path, metrics, time.perf_counter() - started)
    seconds = time.perf_counter() - started
    print(f"wrote {model_path} ({model_path.stat().st_size} bytes) and its card in {seconds:.0f} s")
    return 0


def write_card(args: argparse.Namespace, model_path: Path, metrics: dict, seconds: float) -> None:
    card = {
        "card_format": regime_model.CARD_FORMAT,
        "name": MODEL_NAME,
        "version": VERSION,
        "sha256": regime_model.file_sha256(model_path),
        "file": model_path.name,
        "size_bytes": model_path.stat().st_size,
        "task": "per-step regime labels (absorption, swelling, complete) of a resampled sessile-drop series",
        "architecture": (
            f"1-D CNN: 5-tap stem to {WIDTH} channels, residual dilated 3-tap convolutions "
            f"(dilations {list(DILATIONS)}), 1x1 head; monotone (Viterbi) decoding at run time"
        ),
        "input_contract": {
            "input_name": "features",
            "input_shape": [1, len(regime_model.CHANNELS), regime_model.STEPS],
            "input_dtype": "float32",
            "steps": regime_model.STEPS,
            "channels": list(regime_model.CHANNELS),
            "features": "tablet_workcell.vision.regime_model.regime_features (see its module doc)",
            "output_name": "logits",
            "output_shape": [1, len(regime_model.CLASSES), regime_model.STEPS],
            "classes": list(regime_model.CLASSES),
            "decoding": "log-softmax, monotone non-decreasing class sequence (regime_model.monotone_decode)",
        },
        "training": {
            "data": "tablet_workcell.twin.regime_cases.cases(seed, series, 'train') (measured twin series)",
            "seed": args.seed,
            "series": args.series,
            "epochs": args.epochs,
            "batch": args.batch,
            "learning_rate": args.lr,
            "optimiser": "AdamW (weight decay 1e-4), one-cycle schedule, cross-entropy per step",
            "families": [list(f) for f in regime_cases.FAMILIES["train"]],
            "porosity": [list(p) for p in regime_cases.POROSITY["train"]],
            "droplet_volume_m3": [list(v) for v in regime_cases.DROPLET_VOLUME_M3["train"]],
            "seconds": round(seconds, 1),
            "torch": torch.__version__,
            "python": platform.python_version(),
            "date": datetime.date.today().isoformat(),
            "command": "training/train_regimes.py " + " ".join(sys.argv[1:]),
        },
        "held_out": {
            "data": f"tablet_workcell.twin.regime_cases.cases({VALIDATION_SEED}, {args.validation}, 'test')",
            "families": [list(f) for f in regime_cases.FAMILIES["test"]],
            "porosity": [list(p) for p in regime_cases.POROSITY["test"]],
            "droplet_volume_m3": [list(v) for v in regime_cases.DROPLET_VOLUME_M3["test"]],
        },
        "metrics": metrics,
        "onnx": {
            "opset": OPSET,
            "exporter": f"torch.onnx.export (TorchScript, dynamo=False), torch {torch.__version__}",
        },
    }
    card_path = model_path.with_suffix(".card.json")
    card_path.write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    model_path.with_suffix(".card.md").write_text(card_markdown(card), encoding="utf-8")


def card_markdown(card: dict) -> str:
    """The card for people: what the model does, its data, its contract and its numbers."""
    contract, training, held_out = card["input_contract"], card["training"], card["held_out"]
    errors = card["metrics"]["boundary_error_fraction_of_duration"]
    channels = "\n".join(f"{i}. `{name}`" for i, name in enumerate(contract["channels"]))
    row = " | ".join(
        (
            f"{100 * errors['median']:.2f} %",
            f"{100 * errors['mean']:.2f} %",
            f"{100 * errors['p95']:.2f} %",
            f"{100 * errors['max']:.1f} %",
            f"{100 * errors['share_within_5_percent']:.1f} %",
            f"{100 * card['metrics']['step_accuracy']:.2f} %",
        )
    )
    return f"""# {card["name"]} {card["version"]}

Learned regime model of the sessile-drop test: labels each of {contract["steps"]} time steps of a
measured series as absorption, swelling or complete (issue #5; runtime
`tablet_workcell/vision/regime_model.py`, onnxruntime only). The physics baseline
(`vision/regimes.py`) is reported next to it in `bench/disintegration_series.py`.

- file: `{card["file"]}` ({card["size_bytes"]} bytes), SHA-256 `{card["sha256"]}`
- architecture: {card["architecture"]}
- written by `{training["command"].strip()}`
  ({training["seconds"]} s, torch {training["torch"]}, {training["date"]})

## Input contract

`{contract["input_name"]}`: float32 {contract["input_shape"]}, channels from
`regime_model.regime_features(prepare_series(...), PhysicsEstimate.from_fits(...))`
(channels 0-8 measured, 9-11 from the series' own Washburn fit and absorption time):

{channels}

Output `{contract["output_name"]}`: {contract["output_shape"]} logits of {contract["classes"]}; decoding:
{contract["decoding"]}. Spreading is the first 50 ms by definition (not learned).

## Data

Training: {training["series"]} series from `{training["data"]}`, seed {training["seed"]}; blend
families {training["families"]}, porosity {training["porosity"]}, droplet volume
{training["droplet_volume_m3"]} m^3; tablet 6-10 mm x 1-2.5 mm; 15-60 frames/s; records of
10-120 s or 1.2-4 x the absorption time; measured with pixel quantisation (20 um), 0.6-1.4 px
edge noise on the droplet's width and height, 0.03-0.15 px on the tablet height, 0.5-1.5 % area
noise and 0-3 % rejected frames (`twin/observation.py`). The fit channels come from
`analyse_series` on each measured series, as at run time.

Held out (never trained on): `{held_out["data"]}`; families {held_out["families"]},
porosity {held_out["porosity"]}, droplet volume {held_out["droplet_volume_m3"]} m^3.

## Metrics on the held-out series

Boundary error = {card["metrics"]["definition"]}.

| median | mean | p95 | max | within 5 % of the test | per-step accuracy |
|---|---|---|---|---|---|
| {row} |
"""


if __name__ == "__main__":
    sys.exit(main())
