"""The shipped learned regime model: its card, its contract, its accuracy, and that it can be retrained."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tablet_workcell.twin import regime_cases
from tablet_workcell.twin.disintegration import DropletSeries
from tablet_workcell.twin.observation import ObservedSeries
from tablet_workcell.vision import regime_model, regimes
from tablet_workcell.vision.imbibition import boundary_time_s
from tablet_workcell.vision.regime_model import PhysicsEstimate, RegimeModel, file_sha256, monotone_decode
from tablet_workcell.vision.series import analyse_series
from tablet_workcell.vision.types import ModelError

REPO = Path(__file__).resolve().parents[2]
MODEL = REPO / "models" / "regime_segmentation.onnx"
CARD = REPO / "models" / "regime_segmentation.card.json"


def test_shipped_model_matches_its_card_and_the_runtime_contract() -> None:
    card = json.loads(CARD.read_text(encoding="utf-8"))
    assert card["sha256"] == file_sha256(MODEL)
    assert card["file"] == MODEL.name
    assert MODEL.stat().st_size == card["size_bytes"] < 1_000_000
    contract = card["input_contract"]
    assert tuple(contract["channels"]) == regime_model.CHANNELS
    assert tuple(contract["classes"]) == regime_model.CLASSES
    assert contract["input_shape"] == [1, len(regime_model.CHANNELS), regime_model.STEPS]
    assert {"name", "version", "training", "metrics", "held_out"} <= set(card)
    # The card's own held-out measurement meets the target it is shipped for.
    assert card["metrics"]["boundary_error_fraction_of_duration"]["median"] <= 0.05


def test_card_markdown_names_the_shipped_hash() -> None:
    text = (REPO / "models" / "regime_segmentation.card.md").read_text(encoding="utf-8")
    assert file_sha256(MODEL) in text


def test_model_refuses_a_file_that_is_not_the_one_its_card_names(tmp_path: Path) -> None:
    copy = tmp_path / MODEL.name
    shutil.copy(MODEL, copy)
    shutil.copy(CARD, tmp_path / CARD.name)
    with copy.open("r+b") as stream:
        stream.seek(-1, 2)
        last = stream.read(1)
        stream.seek(-1, 2)
        stream.write(bytes([last[0] ^ 0xFF]))
    with pytest.raises(ModelError, match=r"SHA-256 .* does not belong together"):
        RegimeModel(copy)
    (tmp_path / CARD.name).unlink()
    with pytest.raises(ModelError, match=r"card .* does not exist"):
        RegimeModel(copy)


def test_card_of_another_contract_is_refused(tmp_path: Path) -> None:
    card = json.loads(CARD.read_text(encoding="utf-8"))
    card["input_contract"]["channels"] = ["volume", "area"]
    (tmp_path / CARD.name).write_text(json.dumps(card), encoding="utf-8")
    shutil.copy(MODEL, tmp_path / MODEL.name)
    with pytest.raises(ModelError, match="this runtime feeds"):
        RegimeModel(tmp_path / MODEL.name)


def test_monotone_decoding_never_goes_back_and_ignores_a_flicker() -> None:
    steps = 40
    scores = np.full((3, steps), -5.0)
    scores[0, :15] = 0.0
    scores[1, 15:30] = 0.0
    scores[2, 30:] = 0.0
    scores[:, 8] = (-5.0, -5.0, -0.1)  # one step that looks complete in the middle of absorption
    labels = monotone_decode(scores)
    assert np.all(np.diff(labels) >= 0)
    assert labels.tolist() == [0] * 15 + [1] * 15 + [2] * 10


def held_out(count: int) -> list[tuple[regime_cases.DropCase, DropletSeries, ObservedSeries]]:
    return list(regime_cases.cases(97, count, "test"))


def test_learned_model_finds_held_out_boundaries_within_five_percent() -> None:
    model = RegimeModel(MODEL)
    errors = []
    for case, series, observed in held_out(40):
        analysis = analyse_series(
            observed.time_s,
            observed.droplet_volume_m3,
            observed.droplet_area_m2,
            observed.tablet_height_m,
            porosity=case.porosity,
            tablet_thickness_m=case.tablet_thickness_m,
            base_width_m=observed.base_width_m,
            tablet_diameter_m=case.tablet_diameter_m,
            regime_model=model,
        )
        found = analysis.regimes
        labels = [interval.regime for interval in found]
        assert labels == sorted(labels) and labels[0] == regimes.SPREADING
        truth = regimes.intervals_from_labels(series.time_s, series.regime)
        errors.append(regimes.boundary_error(found, truth, 0.0, float(series.time_s[-1])))
    errors_array = np.asarray(errors)
    assert np.median(errors_array) <= 0.01
    assert np.mean(errors_array <= 0.05) >= 0.95


def test_physics_channels_mark_the_fitted_boundary_and_the_droplets_end() -> None:
    c, v_s = 4e-7, 2e-4
    boundary = boundary_time_s(c, v_s)
    centres, width = np.linspace(0.0, 2.0 * boundary, 401, retstep=True)
    gone = 1.5 * boundary
    balance, gone_channel, certainty = PhysicsEstimate(c, v_s, 0.01, gone).channels(centres, width)
    crossing = centres[np.argmax(balance >= 0.0)]
    assert crossing == pytest.approx(boundary, abs=width)
    assert np.all(np.diff(balance) >= 0.0)
    assert gone_channel[centres < gone - width].max() == 0.0
    assert gone_channel[centres > gone + width].min() == 1.0
    assert certainty[0] == pytest.approx(2.0 / 3.0)  # 1 % relative error: two decades of three
    rigid = PhysicsEstimate(c, 0.0, math.inf, math.nan).channels(centres, width)
    assert np.all(rigid[0] == -3.0) and not rigid[1].any() and rigid[2][0] == pytest.approx(-1.0 / 3.0)
    unfitted = PhysicsEstimate.from_fit(None, math.nan)
    assert math.isnan(unfitted.c_m2_per_s) and not unfitted.channels(centres, width)[0].any()


def test_analyse_series_uses_the_learned_model_when_given() -> None:
    case, _series, observed = held_out(1)[0]
    analysis = analyse_series(
        observed.time_s,
        observed.droplet_volume_m3,
        observed.droplet_area_m2,
        observed.tablet_height_m,
        porosity=case.porosity,
        tablet_thickness_m=case.tablet_thickness_m,
        regime_model=MODEL,
    )
    assert any(m.startswith("regimes from the learned model regime_segmentation") for m in analysis.messages)


def test_smoke_training_run_writes_a_loadable_model_and_card(tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, str(REPO / "training" / "train_regimes.py"), "--smoke", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=REPO,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    model = RegimeModel(tmp_path / "regime_segmentation.onnx")
    assert model.version == file_sha256(tmp_path / "regime_segmentation.onnx")
