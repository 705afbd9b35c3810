"""The classifier as one compiled serving function, in TensorFlow or exported to TFLite.

One graph, ``canonical images → (logit, pooled features, Grad-CAM of the predicted class)``,
serves every caller: :class:`KerasNetwork` runs it as a ``tf.function``, and
:func:`export_tflite` converts the very same graph for :mod:`pneumo_core.lite`.

Grad-CAM here needs no gradient kernels (a TFLite graph has none): DenseNet's last
block feeds global average pooling, so d(score)/d(conv) is the same at every
position and equals d(score)/d(pooled) divided by the number of positions; the head
(Dense layers with ReLU or linear activations) is differentiated in closed form.
Tests check the maps against tf-keras-vis's ``Gradcam``.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from .model import LAST_CONV_LAYER, LOGIT_LAYER, POOLED_LAYER, head_layer_names, to_model_input
from .preprocess import CANONICAL_SIZE


def normalize_maps(cams: tf.Tensor) -> tf.Tensor:
    """Scale each map of a ``(N, H, W)`` stack to [0, 1] (flat maps become zero), with TFLite builtin ops only."""
    low = tf.reduce_min(cams, axis=(1, 2), keepdims=True)
    span = tf.reduce_max(cams, axis=(1, 2), keepdims=True) - low
    return tf.where(span > 0.0, (cams - low) / tf.where(span > 0.0, span, 1.0), 0.0)


def corner_aligned_upsampling(source: int, target: int) -> np.ndarray:
    """``(target, source)`` matrix of bilinear interpolation with corners aligned (scipy ``zoom(order=1)``, which
    tf-keras-vis uses); ``M @ cam @ M.T`` upsamples a square map with plain matrix products."""
    if source == 1:
        return np.ones((target, 1), np.float32)
    positions = np.linspace(0.0, source - 1, target)
    low = np.minimum(np.floor(positions).astype(int), source - 2)
    fraction = positions - low
    matrix = np.zeros((target, source), np.float32)
    matrix[np.arange(target), low] = 1.0 - fraction
    matrix[np.arange(target), low + 1] = fraction
    return matrix


def _head_dense_layers(model: keras.Model) -> list[layers.Dense]:
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


class KerasNetwork:
    """A Keras classifier's serving graph, compiled with fixed input signatures and run in batches."""

    runtime = "tensorflow"

    def __init__(self, model: keras.Model, input_size: int, batch_size: int = 32):
        self.model = model
        self.input_size = input_size
        self.batch_size = batch_size  # images per compiled call
        self._conv = keras.Model(model.inputs, model.get_layer(LAST_CONV_LAYER).output)
        self._head = _head_dense_layers(model)
        spec = [tf.TensorSpec([None, CANONICAL_SIZE, CANONICAL_SIZE], tf.uint8)]
        self._forward = tf.function(lambda canonical: self.graph(canonical, with_gradcam=False), input_signature=spec)
        self._forward_with_gradcam = tf.function(self.graph, input_signature=spec)

    def graph(self, canonical: tf.Tensor, with_gradcam: bool = True) -> dict[str, tf.Tensor]:
        """The serving graph for ``(N, 224, 224)`` uint8 canonical images."""
        conv = self._conv(to_model_input(canonical, self.input_size), training=False)
        pooled = tf.reduce_mean(conv, axis=(1, 2))  # DenseNet's global average pooling
        hidden, pre_activations = pooled, []
        for dense in self._head:
            pre_activations.append(tf.matmul(hidden, dense.kernel) + dense.bias)
            hidden = dense.activation(pre_activations[-1])
        logit = tf.reshape(hidden, [-1])
        outputs = {"logit": logit, "pooled": pooled}
        if not with_gradcam:
            return outputs
        # d(logit)/d(pooled), backwards through the head; then the predicted class's sign (NORMAL explains -logit)
        gradient = tf.ones_like(hidden)
        for dense, pre_activation in zip(reversed(self._head), reversed(pre_activations)):
            if dense.activation is keras.activations.relu:
                gradient = gradient * tf.cast(pre_activation > 0.0, gradient.dtype)
            gradient = tf.matmul(gradient, dense.kernel, transpose_b=True)
        positions = float(conv.shape[1] * conv.shape[2])
        sign = tf.where(logit >= 0.0, 1.0, -1.0)[:, tf.newaxis]
        weights = (sign * gradient / positions)[:, tf.newaxis, tf.newaxis, :]  # Grad-CAM's channel weights
        cams = tf.nn.relu(tf.reduce_sum(weights * conv, axis=-1))
        upsampling = tf.constant(corner_aligned_upsampling(int(conv.shape[1]), self.input_size))
        cams = tf.matmul(tf.matmul(upsampling, cams), upsampling, transpose_b=True)
        return {**outputs, "gradcam": normalize_maps(cams)}

    def forward(self, canonical: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(logits ``(N,)``, pooled features ``(N, 1024)``) for ``(N, 224, 224)`` uint8 canonical images."""
        return self._run(self._forward, canonical, ("logit", "pooled"))

    def forward_with_gradcam(self, canonical: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(logits, pooled features, Grad-CAMs ``(N, size, size)`` in [0, 1]) from one forward pass per batch."""
        return self._run(self._forward_with_gradcam, canonical, ("logit", "pooled", "gradcam"))

    def _run(self, function, canonical: np.ndarray, keys: tuple[str, ...]) -> tuple[np.ndarray, ...]:
        size = self.batch_size
        parts = [function(tf.constant(canonical[start : start + size])) for start in range(0, len(canonical), size)]
        if not parts:
            return tuple(np.zeros((0,)) for _ in keys)
        return tuple(np.concatenate([part[key].numpy() for part in parts]) for key in keys)


def export_tflite(model: keras.Model, input_size: int) -> bytes:
    """The serving graph at batch 1 as a TFLite flatbuffer (float32, builtin ops only).

    Only models whose input is the canonical size convert: resizing by area has no TFLite kernel.
    """
    if input_size != CANONICAL_SIZE:
        raise ValueError(f"Only {CANONICAL_SIZE}-px models convert to TFLite (this one takes {input_size} px).")
    network = KerasNetwork(model, input_size)
    function = tf.function(network.graph, input_signature=[tf.TensorSpec([1, CANONICAL_SIZE, CANONICAL_SIZE], tf.uint8)])
    holder = tf.Module()
    holder.weights = [weight.value for weight in model.weights]  # TensorFlow variables, tracked so the converter freezes them
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function.get_concrete_function()], holder)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    return converter.convert()
