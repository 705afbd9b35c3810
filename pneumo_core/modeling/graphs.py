"""The classifier as compiled serving functions, in TensorFlow or exported to TFLite.

Two graphs serve every caller, run by :class:`KerasNetwork` as ``tf.function`` s and exported together (two
signatures, one set of weights) by :func:`export_tflite` for :mod:`pneumo_core.serving.lite`:

- ``serve``: canonical images → logit, pooled features, the last dense block's activations and
  ``d(logit)/d(pooled)``. From the last two, every class activation map (Grad-CAM, Grad-CAM++, the weights of
  ScoreCAM) follows in closed form (:mod:`pneumo_core.serving.cams`, with the derivation), for either class.
- ``masked``: one canonical image and a stack of masks → the logit of the model input multiplied by each mask:
  ScoreCAM's masked passes, in one batch.

The gradient needs no gradient kernels (a TFLite graph has none): DenseNet's last block feeds global average
pooling and the head is Dense layers with ReLU or linear activations, differentiated in closed form. Tests check
every map against tf-keras-vis.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from pneumo_core.common.network_outputs import LastBlock, film_features
from pneumo_core.common.preprocess import CANONICAL_SIZE
from pneumo_core.modeling.architectures import head_dense_layers, last_block_layer, to_model_input


class KerasNetwork:
    """A Keras classifier's serving graph, compiled with fixed input signatures and run in batches."""

    runtime = "tensorflow"

    def __init__(self, model: keras.Model, input_size: int, batch_size: int = 32):
        self.model = model
        self.input_size = input_size
        self.batch_size = batch_size  # images per compiled call
        self._head = head_dense_layers(model)  # first: a head the closed form cannot differentiate is the clearer error
        self._conv = keras.Model(model.inputs, model.get_layer(last_block_layer(model)).output)
        images = tf.TensorSpec([None, CANONICAL_SIZE, CANONICAL_SIZE], tf.uint8)
        image = tf.TensorSpec([1, CANONICAL_SIZE, CANONICAL_SIZE], tf.uint8)
        masks = tf.TensorSpec([None, input_size, input_size], tf.float32)
        self._forward = tf.function(self._answer, input_signature=[images])
        self._serve = tf.function(self.serve, input_signature=[images])
        self._masked = tf.function(self.masked, input_signature=[image, masks])

    def _activations(self, canonical: tf.Tensor, masks: tf.Tensor | None = None) -> tf.Tensor:
        inputs = to_model_input(canonical, self.input_size)
        if masks is not None:
            inputs = inputs * masks[..., tf.newaxis]  # one mask for all three channels, as tf-keras-vis's Scorecam
        return self._conv(inputs, training=False)

    def _logit(self, activations: tf.Tensor) -> dict[str, tf.Tensor]:
        pooled = tf.reduce_mean(activations, axis=(1, 2))  # DenseNet's global average pooling
        hidden, pre_activations = pooled, []
        for dense in self._head:
            pre_activations.append(tf.matmul(hidden, dense.kernel) + dense.bias)
            hidden = dense.activation(pre_activations[-1])
        return {"logit": tf.reshape(hidden, [-1]), "pooled": pooled, "pre_activations": pre_activations}

    def _answer(self, canonical: tf.Tensor) -> dict[str, tf.Tensor]:
        activations = self._activations(canonical)
        return {"logit": self._logit(activations)["logit"], "activations": activations}

    def serve(self, canonical: tf.Tensor) -> dict[str, tf.Tensor]:
        """The ``serve`` graph for ``(N, 224, 224)`` uint8 canonical images."""
        activations = self._activations(canonical)
        head = self._logit(activations)
        gradient = tf.ones_like(head["logit"])[:, tf.newaxis]  # d(logit)/d(pooled), backwards through the head
        for dense, pre_activation in zip(reversed(self._head), reversed(head["pre_activations"])):
            if dense.activation is keras.activations.relu:
                gradient = gradient * tf.cast(pre_activation > 0.0, gradient.dtype)
            gradient = tf.matmul(gradient, dense.kernel, transpose_b=True)
        return {"logit": head["logit"], "pooled": head["pooled"], "activations": activations, "gradient": gradient}

    def masked(self, canonical: tf.Tensor, masks: tf.Tensor) -> dict[str, tf.Tensor]:
        """The ``masked`` graph: one ``(1, 224, 224)`` uint8 image, ``(M, size, size)`` masks → ``(M,)`` logits."""
        return {"logit": self._logit(self._activations(canonical, masks))["logit"]}

    def forward(self, canonical: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(logits ``(N,)``, features ``(N, 5 C)``: :func:`~pneumo_core.common.network_outputs.film_features`) for ``(N, 224,
        224)`` uint8 canonical images."""
        logits, activations = self._run(self._forward, canonical, ("logit", "activations"))
        return logits, film_features(activations) if len(logits) else np.zeros((0,))

    def forward_with_blocks(self, canonical: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[LastBlock]]:
        """(logits, features, each film's :class:`~pneumo_core.common.network_outputs.LastBlock`) from one pass per batch."""
        logits, activations, gradients = self._run(self._serve, canonical, ("logit", "activations", "gradient"))
        blocks = [LastBlock(a, g, float(z)) for a, g, z in zip(activations, gradients, logits)]
        return logits, film_features(activations) if len(logits) else np.zeros((0,)), blocks

    def masked_logits(self, canonical: np.ndarray, masks: np.ndarray) -> np.ndarray:
        """Logits ``(M,)`` of one ``(224, 224)`` uint8 canonical image under each of ``(M, size, size)`` masks."""
        image = tf.constant(canonical[np.newaxis])
        parts = [
            self._masked(image, tf.constant(masks[start : start + self.batch_size]))["logit"].numpy()
            for start in range(0, len(masks), self.batch_size)
        ]
        return np.concatenate(parts) if parts else np.zeros((0,), np.float32)

    def _run(self, function, canonical: np.ndarray, keys: tuple[str, ...]) -> tuple[np.ndarray, ...]:
        size = self.batch_size
        parts = [function(tf.constant(canonical[start : start + size])) for start in range(0, len(canonical), size)]
        if not parts:
            return tuple(np.zeros((0,)) for _ in keys)
        return tuple(np.concatenate([part[key].numpy() for part in parts]) for key in keys)


def export_tflite(model: keras.Model, input_size: int, int8_weights: bool = False) -> bytes:
    """The ``serve`` graph at batch 1 and the ``masked`` graph as one TFLite flatbuffer (builtin ops only, the
    weights stored once): float32, or with ``int8_weights`` dynamic-range quantised (convolution and dense weights
    stored as int8, activations float32; see :mod:`pneumo_core.evaluation.int8_check` for when that copy serves).

    Only models whose input is the canonical size convert: resizing by area has no TFLite kernel.
    """
    if input_size != CANONICAL_SIZE:
        raise ValueError(f"Only {CANONICAL_SIZE}-px models convert to TFLite (this one takes {input_size} px).")
    network = KerasNetwork(model, input_size)
    image = tf.TensorSpec([1, CANONICAL_SIZE, CANONICAL_SIZE], tf.uint8)

    def serve(canonical):  # the function names become the signature names that pneumo_core.serving.lite runs
        return network.serve(canonical)

    def masked(canonical, masks):
        return network.masked(canonical, masks)

    functions = [
        tf.function(serve, input_signature=[image]).get_concrete_function(),
        tf.function(
            masked, input_signature=[image, tf.TensorSpec([None, input_size, input_size], tf.float32)]
        ).get_concrete_function(),
    ]
    holder = tf.Module()
    holder.weights = [weight.value for weight in model.weights]  # TensorFlow variables, tracked so the converter freezes them
    converter = tf.lite.TFLiteConverter.from_concrete_functions(functions, holder)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if int8_weights:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]  # no representative data set: dynamic range
    return converter.convert()
