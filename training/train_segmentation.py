"""Train the droplet/tablet segmentation U-Net on twin frames and export it to ONNX with its card.

Dev-time only (torch CPU); the runtime reads the ONNX file with onnxruntime
(``tablet_workcell.vision.segmentation.OnnxSegmenter``). Reproducible: the data come from
``tablet_workcell.vision.dataset.generate_frames(count, seed, "train")`` and every random
draw of training (initial weights, batches, augmentation) from ``--seed``.

    .venv/bin/python training/train_segmentation.py                 # the shipped model
    .venv/bin/python training/train_segmentation.py --smoke --out /tmp/x   # CI smoke run

What the network sees: the frame in grey, area-reduced 4x to 160x120 and divided by its
90th-percentile grey level. Targets are the exact labels at 2x the network's resolution
(class fractions of each 2x2 block of the full-resolution mask), compared with the logits
upsampled bilinearly, so the logits learn to cross zero at the true edge between
low-resolution pixel centres (what the runtime's upsampling relies on).

Augmentation beyond the renderer (for real goniometer images): horizontal flips, small
scale/shift, gamma, contrast and brightness (with saturation), illumination gradients and
vignetting, extra noise and blur, dark vertical bars of random width and length (needles,
also over the droplet), bright/dark out-of-focus blobs and thin horizontal bright streaks
(reflections of glossy stages and tablet tops).
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(REPO))

import cv2  # noqa: E402
import onnx  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402, N812 - the usual torch spelling

from tablet_workcell.twin.appearance import appearance_ranges  # noqa: E402
from tablet_workcell.vision import dataset  # noqa: E402
from tablet_workcell.vision.model_card import CARD_FORMAT, CLASSES, file_sha256  # noqa: E402
from tablet_workcell.vision.scoring import score_frame, summarise  # noqa: E402
from tablet_workcell.vision.segmentation import OnnxSegmenter, downsample, to_grey  # noqa: E402

MODEL_NAME = "droplet_segmentation"
INPUT_W, INPUT_H = 160, 120
TARGET_SCALE = 2  # targets at 320x240
PERCENTILE = 90.0
CHANNELS = (8, 16, 32, 64)
OPSET = 17
VERSION = "1.0.0"
WARMUP_STEPS = 100


# ------------------------------------------------------------------ data
def frame_to_sample(image: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Low-resolution grey (float16) and 2x-resolution droplet/tablet pixel counts per 2x2 block."""
    small = downsample(to_grey(image), INPUT_W, INPUT_H).astype(np.float16)
    h, w = INPUT_H * TARGET_SCALE, INPUT_W * TARGET_SCALE
    fy, fx = labels.shape[0] // h, labels.shape[1] // w
    blocks = labels.reshape(h, fy, w, fx)
    counts = np.stack([(blocks == 1).sum(axis=(1, 3)), (blocks == 2).sum(axis=(1, 3))]).astype(np.uint8)
    return small, counts


def load_or_generate(count: int, seed: int, cache_dir: Path | None) -> tuple[np.ndarray, np.ndarray, int]:
    """(grey N x 120 x 160 float16, counts N x 2 x 240 x 320 uint8, pixels per block), cached as .npz."""
    cache = cache_dir / f"segmentation_train_seed{seed}_n{count}.npz" if cache_dir else None
    if cache is not None and cache.is_file():
        with np.load(cache) as data:
            print(f"loaded {count} cached training frames from {cache}", flush=True)
            return data["grey"], data["counts"], int(data["block"])
    start = time.perf_counter()
    grey = np.empty((count, INPUT_H, INPUT_W), np.float16)
    counts = np.empty((count, 2, INPUT_H * TARGET_SCALE, INPUT_W * TARGET_SCALE), np.uint8)
    block = 0
    for i, frame in enumerate(dataset.generate_frames(count, seed, "train")):
        grey[i], counts[i] = frame_to_sample(frame.image, frame.labels)
        block = (frame.labels.shape[0] // (INPUT_H * TARGET_SCALE)) * (
            frame.labels.shape[1] // (INPUT_W * TARGET_SCALE)
        )
        if (i + 1) % 500 == 0:
            print(f"  rendered {i + 1}/{count} frames ({time.perf_counter() - start:.0f} s)", flush=True)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, grey=grey, counts=counts, block=block)
    print(f"rendered {count} training frames in {time.perf_counter() - start:.0f} s", flush=True)
    return grey, counts, block


# ------------------------------------------------------------------ model
def conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


class UNet(nn.Module):
    """Four resolution levels (three 2x poolings), two 3x3 convs per level, nearest upsampling."""

    def __init__(self, channels: tuple[int, ...] = CHANNELS, classes: int = 3) -> None:
        super().__init__()
        c0, c1, c2, c3 = channels
        self.e0 = nn.Sequential(conv(1, c0), conv(c0, c0))
        self.e1 = nn.Sequential(conv(c0, c1), conv(c1, c1))
        self.e2 = nn.Sequential(conv(c1, c2), conv(c2, c2))
        self.e3 = nn.Sequential(conv(c2, c3), conv(c3, c3))
        self.d2 = nn.Sequential(conv(c3 + c2, c2), conv(c2, c2))
        self.d1 = nn.Sequential(conv(c2 + c1, c1), conv(c1, c1))
        self.d0 = nn.Sequential(conv(c1 + c0, c0), conv(c0, c0))
        self.head = nn.Conv2d(c0, classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.e0(x)
        b = self.e1(F.max_pool2d(a, 2))
        c = self.e2(F.max_pool2d(b, 2))
        d = self.e3(F.max_pool2d(c, 2))
        c = self.d2(torch.cat([F.interpolate(d, scale_factor=2.0, mode="nearest"), c], 1))
        b = self.d1(torch.cat([F.interpolate(c, scale_factor=2.0, mode="nearest"), b], 1))
        a = self.d0(torch.cat([F.interpolate(b, scale_factor=2.0, mode="nearest"), a], 1))
        return self.head(a)


# ------------------------------------------------------------------ augmentation
def _u(g: torch.Generator, n: int, low: float, high: float) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=g)


def _gauss_blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    taps = torch.arange(-3, 4, dtype=torch.float32)
    k = torch.exp(-0.5 * (taps[None, :] / sigma[:, None].clamp(min=1e-3)) ** 2)
    k = k / k.sum(1, keepdim=True)
    n = x.shape[0]
    y = F.conv2d(F.pad(x.transpose(0, 1), (3, 3, 0, 0), mode="replicate"), k[:, None, None, :], groups=n)
    y = F.conv2d(F.pad(y, (0, 0, 3, 3), mode="replicate"), k[:, None, :, None], groups=n)
    return y.transpose(0, 1)


def augment(
    grey: torch.Tensor, target: torch.Tensor, g: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """grey: B x 1 x 120 x 160 in grey levels; target: B x 3 x 240 x 320 class fractions."""
    n, _, h, w = grey.shape
    flip = torch.rand(n, generator=g) < 0.5
    grey = torch.where(flip[:, None, None, None], grey.flip(-1), grey)
    target = torch.where(flip[:, None, None, None], target.flip(-1), target)
    # Small scale and shift (same affine for image and targets).
    moved = torch.rand(n, generator=g) < 0.6
    scale = torch.where(moved, _u(g, n, 0.87, 1.15), torch.ones(n))
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0 / scale
    theta[:, 0, 2] = torch.where(moved, _u(g, n, -0.12, 0.12), torch.zeros(n))
    theta[:, 1, 2] = torch.where(moved, _u(g, n, -0.1, 0.1), torch.zeros(n))
    grid = F.affine_grid(theta, [n, 1, h, w], align_corners=False)
    grey = F.grid_sample(grey, grid, mode="bilinear", padding_mode="border", align_corners=False)
    grid = F.affine_grid(theta, list(target.shape), align_corners=False)
    target = F.grid_sample(target, grid, mode="bilinear", padding_mode="border", align_corners=False)

    x = (grey / 255.0).clamp(0.0, 1.0)
    ys = torch.linspace(-1.0, 1.0, h)[None, None, :, None]
    xs = torch.linspace(-1.0, 1.0, w)[None, None, None, :]

    def per(v: torch.Tensor) -> torch.Tensor:
        return v[:, None, None, None]

    # Illumination: gradients and vignetting.
    field = (1 + per(_u(g, n, -0.3, 0.3)) * xs) * (1 + per(_u(g, n, -0.3, 0.3)) * ys)
    field = field * (1 - per(_u(g, n, 0.0, 0.5)) * (xs**2 + ys**2) / 2)
    x = x * field
    # Out-of-focus blobs (dust, reflections) and thin bright streaks (glossy stage / tablet top).
    for i in range(n):
        if torch.rand(1, generator=g) < 0.4:
            cy, cx = float(_u(g, 1, -1, 1)), float(_u(g, 1, -1, 1))
            sigma = float(_u(g, 1, 0.05, 0.4))
            blob = torch.exp(-0.5 * (((xs - cx) / sigma) ** 2 + ((ys - cy) / (sigma * w / h)) ** 2))
            x[i] = x[i] * (1 + float(_u(g, 1, -0.4, 0.4)) * blob[0])
        if torch.rand(1, generator=g) < 0.25:
            row = float(_u(g, 1, -0.2, 0.9))
            streak = torch.exp(-0.5 * ((ys - row) / float(_u(g, 1, 0.006, 0.03))) ** 2)
            x[i] = x[i] + float(_u(g, 1, 0.05, 0.3)) * streak[0] * (xs[0].abs() < float(_u(g, 1, 0.2, 1.0)))
        if torch.rand(1, generator=g) < 0.35:  # a needle-like dark bar from the top edge
            half = float(_u(g, 1, 0.5, 4.0))
            centre = float(_u(g, 1, 10, w - 10))
            bottom = int(_u(g, 1, 5, 0.85 * h))
            cols = torch.arange(w, dtype=torch.float32)
            cover = (half + 0.5 - (cols - centre).abs()).clamp(0, 1)
            level = float(_u(g, 1, 0.05, 0.5))
            x[i, :, :bottom] = x[i, :, :bottom] * (1 - cover * (1 - level))
    # Gamma, contrast, brightness (saturating).
    x = x.clamp(min=0.0) ** per(torch.exp(_u(g, n, -0.5, 0.5)))
    x = x * per(_u(g, n, 0.5, 1.3)) + per(_u(g, n, -0.12, 0.12))
    blur = torch.rand(n, generator=g) < 0.35
    if blur.any():
        x[blur] = _gauss_blur(x[blur], _u(g, int(blur.sum()), 0.3, 1.2))
    noisy = torch.rand(n, generator=g) < 0.6
    x = x + per(noisy * _u(g, n, 0.0, 0.04)) * torch.randn(x.shape, generator=g)
    x = (x.clamp(0.0, 1.0) * 255.0).round()  # 8-bit sensor
    return x, target


def learning_rate(step: int, total: int, peak: float, warmup: int = WARMUP_STEPS) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay to zero at ``total``."""
    if step < warmup:
        return peak * (step + 1) / warmup
    return cosine_rate((step - warmup) / max(total - warmup, 1), peak)


def cosine_rate(progress: float, peak: float) -> float:
    """Cosine decay from ``peak`` at progress 0 to zero at progress 1."""
    return 0.5 * peak * (1.0 + math.cos(math.pi * min(max(progress, 0.0), 1.0)))


def normalise_batch(grey: torch.Tensor) -> torch.Tensor:
    """The runtime's normalisation (segmentation.normalise), batched: grey / p90, clamped at 1."""
    level = torch.quantile(grey.flatten(1), PERCENTILE / 100.0, dim=1).clamp(min=1.0)
    return grey / level[:, None, None, None]


def loss_fn(logits: torch.Tensor, target: torch.Tensor, per_frame: bool = False) -> torch.Tensor:
    """Soft cross-entropy on bilinearly upsampled logits plus Dice on droplet and tablet (over the
    batch, or per frame and averaged, which weighs small droplets as much as large ones)."""
    up = F.interpolate(logits, size=target.shape[-2:], mode="bilinear", align_corners=False)
    log_p = F.log_softmax(up, 1)
    ce = -(target * log_p).sum(1).mean()
    p = log_p.exp()
    if per_frame:
        inter = (p * target).sum((2, 3))[:, 1:]
        dice = 1 - (2 * inter + 1.0) / (p.sum((2, 3))[:, 1:] + target.sum((2, 3))[:, 1:] + 1.0)
        return ce + 0.5 * dice.mean(0).sum()
    dims = (0, 2, 3)
    inter = (p * target).sum(dims)[1:]
    dice = 1 - (2 * inter + 1.0) / (p.sum(dims)[1:] + target.sum(dims)[1:] + 1.0)
    return ce + 0.5 * dice.sum()


# ------------------------------------------------------------------ export and card
def export(model: nn.Module, path: Path) -> None:
    model.eval()
    torch.onnx.export(
        model,
        (torch.zeros(1, 1, INPUT_H, INPUT_W),),
        str(path),
        input_names=["image"],
        output_names=["logits"],
        dynamic_axes={"image": {2: "height", 3: "width"}, "logits": {2: "height", 3: "width"}},
        opset_version=OPSET,
        dynamo=False,  # the dynamo exporter needs onnxscript, which this environment lacks
    )
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)


def evaluate(model_path: Path, card_path: Path, count: int) -> dict[str, object]:
    frames = dataset.held_out_frames(count)
    summaries = {}
    paths = (
        ("low_resolution_upsampled", False, True),
        ("low_resolution_no_edge_step", False, False),
        ("full_resolution_naive", True, False),
    )
    for label, full, edges in paths:
        frames_used = frames[:60] if full else frames  # the naive path is ~15x slower
        segmenter = OnnxSegmenter(
            model_path,
            card_path,
            threads=torch.get_num_threads(),
            full_resolution=full,
            refine_edges=edges,
        )
        scores = [score_frame(segmenter.segment(f.image).labels, f.labels) for f in frames_used]
        summaries[label] = summarise(scores).as_dict()
    return summaries


def write_card(path: Path, model_path: Path, info: dict[str, object]) -> None:
    card = {
        "card_format": CARD_FORMAT,
        "name": MODEL_NAME,
        "version": VERSION,
        "sha256": file_sha256(model_path),
        "file": model_path.name,
        "size_bytes": model_path.stat().st_size,
        "task": "per-pixel classes of a backlit side-view sessile-drop frame: background, droplet, tablet",
        "architecture": (
            f"U-Net, 4 levels (3 max-pool steps), channels {list(CHANNELS)}, two 3x3 conv+BN+ReLU per "
            "level, nearest upsampling with skip concatenation, 1x1 head; BatchNorm folded by onnxruntime"
        ),
        "input_contract": {
            "input_name": "image",
            "input_shape": [1, 1, INPUT_H, INPUT_W],
            "input_dtype": "float32",
            "channel_order": "grey",
            "grey_conversion": "cv2.COLOR_BGR2GRAY of a BGR uint8 frame (mono frames as they are)",
            "resize": "INTER_AREA",
            "resize_note": "the uint8 grey frame as float32, area-reduced to 160x120 (4x for 640x480)",
            "normalisation_percentile": PERCENTILE,
            "normalisation": "grey / max(percentile(grey, 90), 1) of the reduced frame (numpy linear)",
            "output_name": "logits",
            "output_shape": [1, len(CLASSES), INPUT_H, INPUT_W],
            "output_kind": "logits",
            "classes": list(CLASSES),
            "dynamic_spatial": True,
            "spatial_multiple": 8,
            "full_resolution_labels": (
                "bilinear (pixel-centre aligned, cv2.INTER_LINEAR) upsampling of the logits to the frame "
                "size and argmax, only inside the low-resolution foreground's bounding box; then the "
                "droplet/tablet boundary is put on the line fitted to the tablet's visible top edge "
                "(OnnxSegmenter straight_tablet_top=True). With refine_edges=True (the default; "
                "tablet_workcell.vision.edge_refinement) that line is placed on the grey frame's edge "
                "at sub-pixel precision, and the droplet's free edge against the backlight is re-placed "
                "at full resolution within 2 px of the network's, at the mid-level between the "
                "backlight and the droplet's darkness"
            ),
        },
        "onnx": {
            "opset": OPSET,
            "exporter": f"torch.onnx.export (TorchScript, dynamo=False), torch {torch.__version__}",
        },
        **info,
    }
    path.write_text(json.dumps(card, indent=2, sort_keys=False) + "\n", encoding="utf-8")


def appearance_info() -> dict[str, object]:
    return {split: {k: list(v) for k, v in appearance_ranges(split).items()} for split in ("train", "test")}


def _pct(value: object) -> str:
    return f"{100 * float(value):.2f} %" if isinstance(value, int | float) else "n/a"


def _num(value: object, digits: int = 4) -> str:
    return f"{float(value):.{digits}f}" if isinstance(value, int | float) else "n/a"


def write_markdown(card_path: Path) -> Path:
    """The human-readable model card (models/droplet_segmentation.md), generated from the JSON card."""
    card = json.loads(card_path.read_text(encoding="utf-8"))
    contract, training = card["input_contract"], card["training"]
    metrics = card.get("metrics", {})
    lines = [
        f"# Model card: {card['name']} {card['version']}",
        "",
        "Generated from `" + card_path.name + "` by `training/train_segmentation.py`; do not edit by hand.",
        "",
        f"- File: `{card['file']}`, {card['size_bytes']:,} bytes, SHA-256 `{card['sha256']}`",
        f"- Task: {card['task']}",
        f"- Architecture: {card['architecture']}",
        f"- ONNX: opset {card['onnx']['opset']}, {card['onnx']['exporter']}; runs on onnxruntime (CPU)",
        "",
        "## Input contract",
        "",
        f"- Input `{contract['input_name']}`: {contract['input_dtype']} {contract['input_shape']} "
        "(N, C, H, W); "
        f"height and width dynamic (multiples of {contract['spatial_multiple']}), trained at 160x120",
        f"- Channel: {contract['channel_order']} ({contract['grey_conversion']})",
        f"- Resize: {contract['resize']}: {contract['resize_note']}",
        f"- Normalisation: {contract['normalisation']}",
        f"- Output `{contract['output_name']}`: {contract['output_kind']} {contract['output_shape']}, "
        "classes " + ", ".join(f"{i} {name}" for i, name in enumerate(contract["classes"])),
        f"- Full-resolution labels: {contract['full_resolution_labels']}",
        "",
        "## Training data",
        "",
        f"- Generator: `{training['generator']}`, seed {training['seed']}, {training['frames']} frames "
        f"(640x480, {int(100 * training['scene_ranges']['colour_probability'])} % BGR colour, the rest mono)",
        "- Scenes: random blends (MCC, lactose, DCPA, paracetamol, optional croscarmellose or SSG, "
        "magnesium stearate), tablet diameter "
        f"{[round(v * 1e3, 2) for v in training['scene_ranges']['tablet_diameter_m']]} mm, thickness "
        f"{[round(v * 1e3, 2) for v in training['scene_ranges']['tablet_thickness_m']]} mm, porosity "
        f"{training['scene_ranges']['porosity']}, droplet "
        f"{[round(v * 1e9, 1) for v in training['scene_ranges']['droplet_volume_m3']]} uL, pixel size "
        f"{[round(v * 1e6, 1) for v in training['scene_ranges']['pixel_size_m']]} um",
        f"- Instants: phases of the test drawn with probabilities {training['scene_ranges']['phases']} "
        "(spreading under the needle; absorbing/swelling on a pinned base; the last 12 % before the droplet "
        "vanishes; no droplet)",
        "- Appearance: `tablet_workcell.twin.appearance.random_appearance(rng, 'train')`; the held-out test "
        "split draws lighting, contrast, noise, blur and background from disjoint intervals:",
        "",
        "  | parameter | train | test (held out) |",
        "  |---|---|---|",
    ]
    ranges = training["appearance_ranges"]
    for name in ranges["train"]:
        train, test = ranges["train"][name], ranges["test"][name]
        marker = "" if train == test else " **(disjoint)**"
        lines.append(f"  | {name} | {train[0]:g} to {train[1]:g} | {test[0]:g} to {test[1]:g}{marker} |")
    lines += ["", "## Augmentation (beyond the renderer, for real goniometer images)", ""]
    lines += [f"- {item}" for item in card["augmentation"]]
    lines += [
        "",
        "## Training",
        "",
        f"- Command: `{training['command']}`",
        f"- {training['steps']} steps of batch {training['batch']}, {training['optimiser']}; "
        f"loss: {training['loss']}",
        f"- Time: {training['data_seconds']} s rendering, {training['train_seconds']} s training on "
        f"{training['threads']} CPU thread(s) ({training['machine']}), {training['date']}",
    ]
    first = training.get("initial_training")
    if first:
        lines += [
            f"- Started from the weights of an earlier run (`{training['initial_weights']}`, "
            f"Dice {training.get('dice', 'per batch')} here): `{first['command']}`, "
            f"{first['steps']} steps of "
            f"batch {first['batch']} on {first['frames']} frames of seed {first['seed']}, "
            f"{first['train_seconds']} s training, {first['optimiser']}",
        ]
    lines += [
        "",
        "## Metrics on the held-out set",
        "",
        f"{metrics.get('held_out_set', 'not measured')}.",
        "",
        f"Aggregation: {metrics.get('aggregation', '')}.",
        "",
        "| path | scored frames | mean droplet IoU | pooled droplet IoU | min IoU | mean abs area error "
        "| p95 | signed mean | tablet IoU | small droplets (n, IoU, abs error px) | false droplets |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for label, m in ((k, v) for k, v in metrics.items() if isinstance(v, dict)):
        lines.append(
            f"| {label} | {m['scored_frames']} of {m['frames']} (>= {m['min_droplet_px']} px) | "
            f"{_num(m['mean_droplet_iou'])} | {_num(m['pooled_droplet_iou'])} | "
            f"{_num(m['min_droplet_iou'])} | {_pct(m['mean_abs_area_error'])} | "
            f"{_pct(m['p95_abs_area_error'])} | {_pct(m['mean_area_error'])} | "
            f"{_num(m['mean_tablet_iou'])} | {m['small_frames']}, {_num(m['small_mean_droplet_iou'], 3)}, "
            f"{_num(m['small_mean_abs_area_error_px'], 1)} | "
            f"{m['false_droplet_frames']} of {m['no_droplet_frames']} |"
        )
    lines += [
        "",
        "`low_resolution_upsampled` is the runtime default (with the full-resolution edge step); "
        "`low_resolution_no_edge_step` is the same without it (`refine_edges=False`). "
        "`full_resolution_naive` is the same network fed the whole 640x480 frame (first 60 frames only): "
        "it was trained at 160x120, so at 4x the scale its receptive field covers a quarter of the "
        "objects it learned; it is the comparison the benchmark asks for, not a usable mode.",
        "",
        "## Limits",
        "",
        "- Trained on rendered backlit side views only; real images should be checked against a few "
        "hand-labelled frames before the numbers are trusted (the classical baseline is the fallback).",
        "- Droplets under about 300 px (the last moments before one vanishes) are segmented with a "
        "few-pixel absolute error, reported separately above.",
        "- The frame must be a whole multiple of 160x120 px (640x480: 4x) for the fast path.",
        "",
    ]
    path = card_path.with_name(card_path.name.replace(".card.json", ".md"))
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


# ------------------------------------------------------------------ main
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000, help="optimiser steps (the most, with --minutes)")
    parser.add_argument("--minutes", type=float, default=0.0, help="train for this long (cosine over time)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--frames", type=int, default=3000, help="rendered training frames")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--lr", type=float, default=4e-3)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--eval-frames", type=int, default=dataset.HELD_OUT_COUNT)
    parser.add_argument(
        "--out", type=Path, help="folder for the .onnx and card (models/; --smoke: a temp dir)"
    )
    parser.add_argument("--cache", type=Path, default=REPO / "training" / "cache")
    parser.add_argument("--smoke", action="store_true", help="a few steps on a handful of frames (CI)")
    parser.add_argument("--init", type=Path, help="start from these weights (a .pt saved by a run)")
    parser.add_argument("--dice-per-frame", action="store_true", help="Dice per frame, not per batch")
    parser.add_argument("--warmup", type=int, default=WARMUP_STEPS, help="linear warm-up steps")
    parser.add_argument("--markdown-only", type=Path, help="only regenerate the .md from this card")
    parser.add_argument(
        "--evaluate-only", type=Path, help="re-measure the held-out metrics of the model in this folder"
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.steps, args.frames, args.batch, args.eval_frames, args.cache, args.minutes = (
            3,
            6,
            4,
            4,
            None,
            0.0,
        )
        if args.out is None:  # never overwrite the shipped model with a 3-step one
            args.out = Path(tempfile.mkdtemp(prefix="segmentation_smoke_"))
    if args.out is None:
        args.out = REPO / "models"
    return args


def train(args: argparse.Namespace, grey_all: torch.Tensor, counts_all: torch.Tensor, block: int) -> UNet:
    """The training loop. With --steps the cosine decay runs over steps (bit-reproducible for a given
    thread count); with --minutes it runs over the elapsed fraction of that time budget instead, so a
    shared, busy machine still ends with a fully decayed rate (the card records the steps done; the same
    seed with --steps that number gives a similar, not bit-identical, model)."""
    model = UNet()
    if args.init is not None:
        model.load_state_dict(torch.load(args.init, weights_only=True))
        print(f"starting from the weights in {args.init}", flush=True)
    optimiser = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    g = torch.Generator().manual_seed(args.seed)
    start = time.perf_counter()
    budget_s = 60.0 * args.minutes
    model.train()
    running, step, warm_s = 0.0, 0, 0.0
    while step < args.steps:
        elapsed = time.perf_counter() - start
        if budget_s and step >= args.warmup and elapsed >= budget_s:
            break
        if step == args.warmup:
            warm_s = elapsed
        if budget_s and step >= args.warmup:
            progress = (elapsed - warm_s) / max(budget_s - warm_s, 1.0)
            lr = cosine_rate(progress, args.lr)
        else:
            lr = learning_rate(step, args.steps, args.lr, args.warmup)
        for group in optimiser.param_groups:
            group["lr"] = lr
        index = torch.randint(0, grey_all.shape[0], (args.batch,), generator=g)
        counts = counts_all[index].float() / block
        target = torch.cat([(1 - counts.sum(1, keepdim=True)).clamp(min=0), counts], 1)
        x, target = augment(grey_all[index], target, g)
        loss = loss_fn(model(normalise_batch(x)), target, args.dice_per_frame)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        running = 0.98 * running + 0.02 * loss.item() if step else loss.item()
        step += 1
        if step % 100 == 0:
            print(f"step {step} loss {running:.4f} lr {lr:.5f} ({elapsed:.0f} s)", flush=True)
    args.steps = step
    print(
        f"trained {step} steps in {time.perf_counter() - start:.0f} s, final loss {running:.4f}", flush=True
    )
    return model


def initial_training(weights: Path) -> object:
    """The training section of the card beside the weights a run started from (its history)."""
    card = weights.with_name(f"{MODEL_NAME}.card.json")
    if not card.is_file():
        return None
    return json.loads(card.read_text(encoding="utf-8"))["training"]


def training_info(args: argparse.Namespace, command: str, data_s: float, train_s: float) -> dict[str, object]:
    return {
        "training": {
            "command": command,
            "generator": "tablet_workcell.vision.dataset.generate_frames(count, seed, split='train')",
            "seed": args.seed,
            "frames": args.frames,
            "steps": args.steps,
            "minutes_budget": args.minutes or None,
            "initial_weights": str(args.init) if args.init else None,
            "initial_training": initial_training(args.init) if args.init else None,
            "dice": "per frame" if args.dice_per_frame else "per batch",
            "batch": args.batch,
            "optimiser": (
                f"AdamW, peak lr {args.lr}, {args.warmup} linear warm-up steps, then cosine to 0 over "
                + ("the time budget" if args.minutes else "the steps")
                + ", weight decay 1e-4"
            ),
            "loss": (
                "soft cross-entropy on 2x bilinearly upsampled logits vs 2x2-block class fractions "
                "+ 0.5 x Dice"
            ),
            "data_seconds": round(data_s, 1),
            "train_seconds": round(train_s, 1),
            "threads": args.threads,
            "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
            "date": datetime.date.today().isoformat(),
            "smoke": args.smoke,
            "scene_ranges": {
                "pixel_size_m": list(dataset.PIXEL_SIZE_RANGE_M),
                "tablet_diameter_m": list(dataset.TABLET_DIAMETER_RANGE_M),
                "tablet_thickness_m": list(dataset.TABLET_THICKNESS_RANGE_M),
                "porosity": list(dataset.POROSITY_RANGE),
                "droplet_volume_m3": list(dataset.DROPLET_VOLUME_RANGE_M3),
                "phases": dict(zip(dataset.PHASES, dataset.PHASE_PROBABILITIES, strict=True)),
                "colour_probability": dataset.COLOUR_PROBABILITY,
            },
            "appearance_ranges": appearance_info(),
        },
        "augmentation": AUGMENTATION,
    }


AUGMENTATION = [
    "horizontal flip (p 0.5)",
    "scale 0.87-1.15 and shift up to 12 % (p 0.6)",
    "illumination gradient +-30 % per axis and vignetting up to 50 % at the corners",
    "bright or dark out-of-focus blob, +-40 %, sigma 5-40 % of the frame (p 0.4)",
    "thin bright horizontal streak (glossy stage / tablet reflection), +5-30 % (p 0.25)",
    "dark vertical bar from the top edge, 1-8 low-res px wide, 5-85 % of the height, "
    "5-50 % of the local light, labels unchanged (needle; p 0.35)",
    "gamma 0.6-1.65, contrast 0.5-1.3, brightness +-12 % of full scale, saturating",
    "Gaussian blur sigma 0.3-1.2 low-res px (p 0.35)",
    "Gaussian noise sigma up to 4 % of full scale (p 0.6), 8-bit quantisation",
]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.markdown_only:
        print(f"wrote {write_markdown(args.markdown_only)}")
        return 0
    if args.evaluate_only:
        model_path = args.evaluate_only / f"{MODEL_NAME}.onnx"
        card_path = args.evaluate_only / f"{MODEL_NAME}.card.json"
        old = json.loads(card_path.read_text(encoding="utf-8"))
        info = {key: old[key] for key in ("training", "augmentation")}
        initial = old["training"].get("initial_weights")
        if initial and "initial_training" not in old["training"]:
            old["training"]["initial_training"] = initial_training(Path(initial))
        measure_into(info, model_path, card_path, args.eval_frames)
        return 0
    words = [Path(sys.executable).name, "training/train_segmentation.py"]
    command = " ".join(shlex.quote(a) for a in [*words, *(argv if argv is not None else sys.argv[1:])])
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(1)
    started = time.perf_counter()
    grey_np, counts_np, block = load_or_generate(args.frames, args.seed, args.cache)
    data_s = time.perf_counter() - started
    train_start = time.perf_counter()
    model = train(
        args, torch.from_numpy(grey_np.astype(np.float32))[:, None], torch.from_numpy(counts_np), block
    )
    train_s = time.perf_counter() - train_start

    args.out.mkdir(parents=True, exist_ok=True)
    model_path = args.out / f"{MODEL_NAME}.onnx"
    card_path = args.out / f"{MODEL_NAME}.card.json"
    if not args.smoke and args.cache is not None:  # weights for fine-tuning, beside the cached data
        torch.save(model.state_dict(), args.out / f"{MODEL_NAME}.pt")
    export(model, model_path)
    info = training_info(args, command, data_s, train_s)
    write_card(card_path, model_path, info)  # provisional (the runtime needs a card to load the model)
    measure_into(info, model_path, card_path, args.eval_frames)
    return 0


def measure_into(info: dict[str, object], model_path: Path, card_path: Path, count: int) -> None:
    """Measure the held-out metrics with the runtime segmenter and (re)write the card and its .md."""
    eval_start = time.perf_counter()
    metrics = evaluate(model_path, card_path, count)
    info["metrics"] = {
        "held_out_set": (
            f"tablet_workcell.vision.dataset.held_out_frames({count}, "
            f"seed={dataset.HELD_OUT_SEED}): split='test' appearance (lighting, contrast, noise, blur, "
            "background disjoint from training)"
        ),
        "aggregation": (
            "scored frames: true droplet >= min_droplet_px; mean and pooled droplet IoU over them; "
            "area error = |predicted - true droplet px| / true px, mean/p95/max over them; smaller droplets "
            "reported separately (small_*); false_droplet_frames: no true droplet but > 20 px predicted"
        ),
        **metrics,
        "evaluation_seconds": round(time.perf_counter() - eval_start, 1),
    }
    write_card(card_path, model_path, info)
    write_markdown(card_path)
    print(json.dumps(metrics["low_resolution_upsampled"], indent=1))
    print(f"wrote {model_path} ({model_path.stat().st_size} bytes) and {card_path}")


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    sys.exit(main())
