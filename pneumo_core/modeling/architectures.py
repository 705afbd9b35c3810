"""The classifier: a Keras Applications base (DenseNet121 by default) + pooling + dropout head + sigmoid, built flat.

:func:`to_model_input` is the model's side of preprocessing (see :mod:`pneumo_core.common.preprocess`), the same for
every architecture in :data:`ARCHITECTURES`. The model is built functionally on one graph (``input_tensor=``),
not as a nested base model, so Grad-CAM can reach the base's last block (:func:`last_block_layer`). The head
ends in a linear ``logit`` layer followed by a ``probability`` sigmoid, so calibration can scale the logit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from keras import layers
from keras.applications import DenseNet121, EfficientNetV2B0, densenet

from pneumo_core.common.preprocess import CANONICAL_SIZE
from pneumo_core.config import training_settings
from pneumo_core.jobs.request import ARCHITECTURE_NAMES

log = logging.getLogger(__name__)

LAST_CONV_LAYER = "relu"
"""DenseNet121's final activation (after ``conv5_block16_concat`` and ``bn``): the Grad-CAM layer."""

POOLED_LAYER = "avg_pool"
LOGIT_LAYER = "logit"


@dataclass(frozen=True)
class Architecture:
    """A Keras Applications base the classifier can be built on.

    ``last_block`` is the layer Grad-CAM reads (its output feeds the global average pooling ``avg_pool``);
    ``imagenet_file`` the name Keras caches the no-top ImageNet weights under; ``options`` are the extra
    arguments that make the base take :func:`to_model_input`'s values.
    """

    base: Callable[..., keras.Model]
    last_block: str
    imagenet_file: str
    options: dict[str, object] = field(default_factory=dict)


ARCHITECTURES: dict[str, Architecture] = {
    "densenet121": Architecture(DenseNet121, LAST_CONV_LAYER, "densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    # Keras's own preprocessing for EfficientNetV2-B* is exactly DenseNet's (÷255, ImageNet mean and std), so
    # the base takes the shared to_model_input values with its preprocessing layers left out.
    "efficientnetv2b0": Architecture(
        EfficientNetV2B0, "top_activation", "efficientnetv2-b0_notop.h5", {"include_preprocessing": False}
    ),
}
DEFAULT_ARCHITECTURE = ARCHITECTURE_NAMES[0]


ENSEMBLE = "ensemble"
ENSEMBLE_BLOCK = "ensemble_block"
"""An ensemble (:mod:`pneumo_core.modeling.ensemble`) concatenates its members' last blocks in this layer."""


def architecture_of(model: keras.Model) -> str:
    """The :data:`ARCHITECTURES` key a classifier built by :func:`build_classifier` was built on, or :data:`ENSEMBLE`."""
    for name in (*ARCHITECTURES, ENSEMBLE):
        if model.name == f"pneumo_{name}":
            return name
    raise ValueError(
        f"Model {model.name!r} was not built by build_classifier or build_ensemble (known: {', '.join(ARCHITECTURES)})."
    )


def last_block_layer(model: keras.Model) -> str:
    """The name of the layer whose activations Grad-CAM weighs, for any classifier built here."""
    architecture = architecture_of(model)
    return ENSEMBLE_BLOCK if architecture == ENSEMBLE else ARCHITECTURES[architecture].last_block


class BaseWeightsError(RuntimeError):
    """Base weights were asked for explicitly and could not be loaded; the message says why."""


def resolve_base_weights(spec: str, architecture: str = DEFAULT_ARCHITECTURE) -> tuple[str | None, str]:
    """Turn ``--base-weights auto|imagenet|none|PATH`` into (Keras ``weights`` argument, description).

    ``auto`` uses a local file named by ``PNEUMO_BASE_WEIGHTS_FILE`` (for the architecture trained) or Keras's
    cached ImageNet file if present, else tries the ImageNet download, and if
    that fails falls back to random initialisation with a loud warning.
    """
    spec = (spec or "auto").strip()
    if spec.lower() == "none":
        return None, "none (random init)"
    if spec.lower() == "imagenet":
        _fetch_imagenet(architecture)
        return "imagenet", "imagenet"
    if spec.lower() != "auto":
        path = Path(spec).expanduser()
        if not path.is_file():
            raise BaseWeightsError(f"Base weights file not found: {path}")
        return str(path), f"file:{path.name}"
    cached = Path.home() / ".keras" / "models" / ARCHITECTURES[architecture].imagenet_file
    for candidate in (training_settings().base_weights_file, cached):
        if candidate and Path(candidate).is_file():
            return str(candidate), f"file:{Path(candidate).name}"
    try:
        _fetch_imagenet(architecture)
        return "imagenet", "imagenet"
    except BaseWeightsError as error:
        log.warning("!" * 70)
        log.warning("NO PRETRAINED WEIGHTS: %s", error)
        log.warning("Training %s from RANDOM INITIALISATION (the from-scratch recipe).", architecture)
        log.warning("!" * 70)
        return None, "none (random init; ImageNet download failed)"


def _fetch_imagenet(architecture: str) -> None:
    """Download (or find cached) Keras's ImageNet weights for the architecture, or explain why not."""
    spec = ARCHITECTURES[architecture]
    try:
        spec.base(include_top=False, weights="imagenet", input_shape=(32, 32, 3), **spec.options)
    except Exception as error:  # Keras raises a bare Exception on URL fetch failure
        raise BaseWeightsError(
            f"ImageNet weights could not be downloaded ({str(error).splitlines()[0][:160]}). "
            "Pass a local file with --base-weights PATH, or 'none' to train from scratch."
        ) from None


def build_classifier(
    input_size: int = 224,
    base_weights: str | None = None,
    dropout: float = 0.3,
    head_units: int = 0,
    architecture: str = DEFAULT_ARCHITECTURE,
) -> keras.Model:
    """Base (no top) → global average pooling → Dropout → [Dense(relu) → Dropout] → logit → sigmoid.

    ``base_weights`` is Keras's ``weights`` argument: ``None``, ``"imagenet"`` or a file path;
    ``architecture`` a key of :data:`ARCHITECTURES`.
    """
    if architecture not in ARCHITECTURES:
        raise ValueError(f"Unknown architecture {architecture!r}; choose one of {', '.join(ARCHITECTURES)}.")
    spec = ARCHITECTURES[architecture]
    inputs = keras.Input(shape=(input_size, input_size, 3), name="image")
    base = spec.base(include_top=False, weights=base_weights, input_tensor=inputs, pooling="avg", **spec.options)
    features = base.output  # the pooled vector from layer "avg_pool"
    outputs = build_head(features, dropout, head_units)
    return keras.Model(inputs, outputs, name=f"pneumo_{architecture}")


def build_head(features, dropout: float, head_units: int):
    """The classification head on pooled features (shared by the full model and the cached-feature head)."""
    x = layers.Dropout(dropout, name="head_dropout")(features)
    if head_units:
        x = layers.Dense(head_units, activation="relu", name="head_dense")(x)
        x = layers.Dropout(dropout, name="head_dropout_2")(x)
    logit = layers.Dense(1, name=LOGIT_LAYER)(x)
    return layers.Activation("sigmoid", name="probability", dtype="float32")(logit)


def with_logit_offset(model: keras.Model) -> keras.Model:
    """A training view of a classifier: inputs (its input, a per-film offset), output sigmoid(logit + offset).

    Every layer is the classifier's own, so training the view trains the classifier, which is what is saved and
    served, its logit alone. Fed each film's acquisition group's log-odds
    (:func:`pneumo_core.training.acquisition.group_log_odds`) it is a product of experts with a model that sees only
    the group (Clark et al. 2019; logit adjustment, Menon et al. 2021): the offset already accounts for how often the
    group is pneumonia, so the classifier gains nothing by learning to recognise the group's look. Reweighting
    (``balanced_weights`` with groups) asks the same, but a network that fits its training films barely feels it (Byrd
    & Lipton 2019); an offset moves the optimum itself.
    """
    offset = keras.Input(shape=(1,), name="logit_offset")
    shifted = layers.Add(name="offset_logit")([model.get_layer(LOGIT_LAYER).output, offset])
    probability = layers.Activation("sigmoid", name="offset_probability", dtype="float32")(shifted)
    return keras.Model([model.input, offset], probability, name=f"{model.name}_offset")


def head_layer_names(model: keras.Model) -> list[str]:
    """Names of the layers after pooling (the part trained on cached features)."""
    names = [layer.name for layer in model.layers]
    return names[names.index(POOLED_LAYER) + 1 :]


def head_dense_layers(model: keras.Model) -> list[layers.Dense]:
    """The head's Dense layers from the pooled features up to the logit (dropout is the identity when serving)."""
    dense = []
    for name in head_layer_names(model):
        layer = model.get_layer(name)
        if isinstance(layer, layers.Dropout):
            continue
        if not isinstance(layer, layers.Dense) or layer.activation not in (keras.activations.relu, keras.activations.linear):
            raise ValueError(
                f"Layer {name!r} is not a Dense layer with a ReLU or linear activation; "
                "the closed-form Grad-CAM supports only such heads."
            )
        dense.append(layer)
        if name == LOGIT_LAYER:
            return dense
    raise ValueError(f"The model has no {LOGIT_LAYER!r} layer after {POOLED_LAYER!r}.")


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
