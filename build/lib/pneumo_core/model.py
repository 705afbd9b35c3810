"""The classifier: Keras's DenseNet121 base + pooling + dropout head + sigmoid, built flat.

:func:`to_model_input` is the model's side of preprocessing (see :mod:`pneumo_core.preprocess`).
The model is built functionally on one graph (``input_tensor=``), not as a
nested base model, so Grad-CAM can reach DenseNet's last convolutional block
(:data:`LAST_CONV_LAYER`). The head ends in a linear ``logit`` layer followed
by a ``probability`` sigmoid, so calibration can scale the logit.
"""

from __future__ import annotations

import logging
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from keras import layers
from keras.applications import DenseNet121, densenet

from .config import base_weights_file
from .preprocess import CANONICAL_SIZE

log = logging.getLogger(__name__)

LAST_CONV_LAYER = "relu"
"""DenseNet121's final activation (after ``conv5_block16_concat`` and ``bn``): the Grad-CAM layer."""

POOLED_LAYER = "avg_pool"
LOGIT_LAYER = "logit"

IMAGENET_FILE = "densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5"


class BaseWeightsError(RuntimeError):
    """Base weights were asked for explicitly and could not be loaded; the message says why."""


def resolve_base_weights(spec: str) -> tuple[str | None, str]:
    """Turn ``--base-weights auto|imagenet|none|PATH`` into (Keras ``weights`` argument, description).

    ``auto`` uses a local file named by ``PNEUMO_BASE_WEIGHTS_FILE`` or Keras's
    cached ImageNet file if present, else tries the ImageNet download, and if
    that fails falls back to random initialisation with a loud warning.
    """
    spec = (spec or "auto").strip()
    if spec.lower() == "none":
        return None, "none (random init)"
    if spec.lower() == "imagenet":
        _fetch_imagenet()
        return "imagenet", "imagenet"
    if spec.lower() != "auto":
        path = Path(spec).expanduser()
        if not path.is_file():
            raise BaseWeightsError(f"Base weights file not found: {path}")
        return str(path), f"file:{path.name}"
    for candidate in (base_weights_file(), Path.home() / ".keras" / "models" / IMAGENET_FILE):
        if candidate and Path(candidate).is_file():
            return str(candidate), f"file:{Path(candidate).name}"
    try:
        _fetch_imagenet()
        return "imagenet", "imagenet"
    except BaseWeightsError as error:
        log.warning("!" * 70)
        log.warning("NO PRETRAINED WEIGHTS: %s", error)
        log.warning("Training DenseNet121 from RANDOM INITIALISATION (the from-scratch recipe).")
        log.warning("!" * 70)
        return None, "none (random init; ImageNet download failed)"


def _fetch_imagenet() -> None:
    """Download (or find cached) Keras's ImageNet DenseNet121 weights, or explain why not."""
    try:
        DenseNet121(include_top=False, weights="imagenet", input_shape=(32, 32, 3))
    except Exception as error:  # Keras raises a bare Exception on URL fetch failure
        raise BaseWeightsError(
            f"ImageNet weights could not be downloaded ({str(error).splitlines()[0][:160]}). "
            "Pass a local file with --base-weights PATH, or 'none' to train from scratch."
        ) from None


def build_classifier(
    input_size: int = 224, base_weights: str | None = None, dropout: float = 0.3, head_units: int = 0
) -> keras.Model:
    """DenseNet121 (no top) → global average pooling → Dropout → [Dense(relu) → Dropout] → logit → sigmoid.

    ``base_weights`` is Keras's ``weights`` argument: ``None``, ``"imagenet"`` or a file path.
    """
    inputs = keras.Input(shape=(input_size, input_size, 3), name="image")
    base = DenseNet121(include_top=False, weights=base_weights, input_tensor=inputs, pooling="avg")
    features = base.output  # the pooled 1024-vector from layer "avg_pool"
    outputs = build_head(features, dropout, head_units)
    return keras.Model(inputs, outputs, name="pneumo_densenet121")


def build_head(features, dropout: float, head_units: int):
    """The classification head on pooled features (shared by the full model and the cached-feature head)."""
    x = layers.Dropout(dropout, name="head_dropout")(features)
    if head_units:
        x = layers.Dense(head_units, activation="relu", name="head_dense")(x)
        x = layers.Dropout(dropout, name="head_dropout_2")(x)
    logit = layers.Dense(1, name=LOGIT_LAYER)(x)
    return layers.Activation("sigmoid", name="probability", dtype="float32")(logit)


def head_layer_names(model: keras.Model) -> list[str]:
    """Names of the layers after pooling (the part trained on cached features)."""
    names = [layer.name for layer in model.layers]
    return names[names.index(POOLED_LAYER) + 1 :]


def to_model_input(canonical: tf.Tensor | np.ndarray, size: int) -> tf.Tensor:
    """Canonical images ``(N, 224, 224[, 1])`` with values 0..255 → model input ``(N, size, size, 3)``.

    Accepts uint8 or float (augmented) values; pure TensorFlow so it runs inside
    ``tf.data`` and compiled serving functions alike.
    """
    images = tf.convert_to_tensor(canonical)
    if images.shape.rank == 3:
        images = images[..., tf.newaxis]
    images = tf.cast(images, tf.float32)
    if size != CANONICAL_SIZE:
        images = tf.image.resize(images, (size, size), method="area")
    images = tf.repeat(images, 3, axis=-1)
    return densenet.preprocess_input(images)
