"""The segmentation model's card: what the shipped ONNX file is, how to feed it, how good it is.

Why a card: an ONNX file alone does not say how its input was preprocessed (grey
conversion, resize method, normalisation), what its output classes are, on which data it
was trained or how well it did on the held-out set. The card (JSON beside the model) says
all that, and its SHA-256 ties it to exactly one model file: a model replaced without its
card, a truncated download or a card of another version is refused with a
:class:`~tablet_workcell.vision.types.ModelError` instead of producing silently wrong masks.

The training script (``training/train_segmentation.py``) writes the card; this module only
reads and checks it, so the runtime needs neither torch nor the training code.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tablet_workcell.vision.types import ModelError

logger = logging.getLogger(__name__)

CARD_FORMAT = 1
CLASSES = ("background", "droplet", "tablet")  # index = LABEL_* in tablet_workcell.vision.types


@dataclass(frozen=True)
class InputContract:
    """How a frame becomes the network's input tensor and what comes out (from the card)."""

    input_name: str
    input_shape: tuple[int, int, int, int]  # N, C, H, W the network was trained at
    input_dtype: str  # "float32"
    channel_order: str  # "grey"
    resize: str  # "INTER_AREA"
    normalisation_percentile: float  # input = grey / percentile(grey, p) of the resized frame
    output_name: str
    output_kind: str  # "logits": argmax over the class axis gives the label
    classes: tuple[str, ...]
    dynamic_spatial: bool  # True: H and W may change (multiples of spatial_multiple)
    spatial_multiple: int

    @property
    def height_px(self) -> int:
        return self.input_shape[2]

    @property
    def width_px(self) -> int:
        return self.input_shape[3]


@dataclass(frozen=True)
class ModelCard:
    """The parsed card: version, file hash, the input contract and the free-form rest."""

    name: str
    version: str
    sha256: str
    contract: InputContract
    raw: dict[str, Any]  # everything else (training data, augmentation, metrics) as written

    @property
    def short_hash(self) -> str:
        return self.sha256[:12]


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks (the model is a few hundred KB)."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def card_path_for(model_path: Path) -> Path:
    """The card beside a model: ``name.onnx`` -> ``name.card.json``."""
    return model_path.with_suffix(".card.json")


def _field(data: dict[str, Any], key: str, kind: type, where: str, path: Path) -> Any:
    value = data.get(key)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise ModelError(
            f"model card {path} has {where}{key} = {value!r}; expected a {kind.__name__}. "
            "Regenerate the card with training/train_segmentation.py or restore the shipped one."
        )
    return value


def _contract(data: dict[str, Any], path: Path) -> InputContract:
    where = "input_contract."
    shape = _field(data, "input_shape", list, where, path)
    if len(shape) != 4 or not all(isinstance(v, int) and v > 0 for v in shape) or shape[1] != 1:
        raise ModelError(
            f"model card {path} has input_contract.input_shape = {shape!r}; expected [1, 1, H, W] "
            "with positive integers (one grey channel). Restore the shipped card."
        )
    classes = tuple(_field(data, "classes", list, where, path))
    if classes != CLASSES:
        raise ModelError(
            f"model card {path} lists classes {classes!r}; this runtime maps labels as {CLASSES!r}. "
            "Use a model trained for these classes."
        )
    percentile = float(_field(data, "normalisation_percentile", float, where, path))
    if not 0.0 < percentile <= 100.0:
        raise ModelError(
            f"model card {path} has input_contract.normalisation_percentile = {percentile}; "
            "it must lie in (0, 100]."
        )
    return InputContract(
        input_name=_field(data, "input_name", str, where, path),
        input_shape=(shape[0], shape[1], shape[2], shape[3]),
        input_dtype=_field(data, "input_dtype", str, where, path),
        channel_order=_field(data, "channel_order", str, where, path),
        resize=_field(data, "resize", str, where, path),
        normalisation_percentile=percentile,
        output_name=_field(data, "output_name", str, where, path),
        output_kind=_field(data, "output_kind", str, where, path),
        classes=classes,
        dynamic_spatial=_field(data, "dynamic_spatial", bool, where, path),
        spatial_multiple=_field(data, "spatial_multiple", int, where, path),
    )


def load_card(card_path: Path) -> ModelCard:
    """Read and validate a card; ModelError with a sentence if it is missing or malformed."""
    try:
        text = card_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ModelError(
            f"model card {card_path} does not exist; every model needs its card beside it "
            "(written by training/train_segmentation.py)."
        ) from None
    except OSError as error:
        raise ModelError(
            f"model card {card_path} cannot be read ({error}); check the path's permissions."
        ) from error
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ModelError(
            f"model card {card_path} is not valid JSON ({error.msg} at line {error.lineno}); "
            "restore the shipped card or retrain."
        ) from None
    if not isinstance(data, dict):
        raise ModelError(f"model card {card_path} holds a {type(data).__name__}, not a JSON object.")
    if data.get("card_format") != CARD_FORMAT:
        raise ModelError(
            f"model card {card_path} has card_format {data.get('card_format')!r}; this runtime reads "
            f"format {CARD_FORMAT}. Use a card written by this version of the training script."
        )
    sha = _field(data, "sha256", str, "", card_path)
    if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
        raise ModelError(f"model card {card_path} has sha256 {sha!r}; expected 64 lowercase hex digits.")
    contract = _contract(_field(data, "input_contract", dict, "", card_path), card_path)
    return ModelCard(
        name=_field(data, "name", str, "", card_path),
        version=_field(data, "version", str, "", card_path),
        sha256=sha,
        contract=contract,
        raw=data,
    )


def verify_model_file(model_path: Path, card: ModelCard) -> None:
    """Check that ``model_path`` exists and is exactly the file the card describes."""
    if not model_path.is_file():
        raise ModelError(
            f"model file {model_path} does not exist; restore models/droplet_segmentation.onnx "
            "or pass the path of a trained model."
        )
    actual = file_sha256(model_path)
    if actual != card.sha256:
        raise ModelError(
            f"model file {model_path} has SHA-256 {actual[:12]}..., but its card names "
            f"{card.sha256[:12]}...; the model and card do not belong together (replaced, truncated "
            "or retrained without its card). Restore the pair or retrain."
        )
    logger.debug("model %s matches its card (sha256 %s)", model_path, card.short_hash)
