"""Grad-CAM explanations: a compiled Grad-CAM for the app's fast path, tf-keras-vis for every method, OpenCV overlays.

:class:`Explainer` explains the class the model predicted: the PNEUMONIA logit
for a positive call, its negative for a NORMAL call. Maps are (size, size)
float arrays in [0, 1] over the model input, i.e. over the canonical image.
"""

from __future__ import annotations

import cv2
import keras
import numpy as np
import tensorflow as tf

from .model import LAST_CONV_LAYER, LOGIT_LAYER, POOLED_LAYER
from .preprocess import CANONICAL_SIZE, to_model_input

METHODS = ("Grad-CAM", "Grad-CAM++", "ScoreCAM")
SCORECAM_CHANNELS = 32
"""ScoreCAM masks with the 32 most varied channels of 1024 (Faster-ScoreCAM): seconds, not minutes, per image."""
BATCH_SIZE = 32
"""Images per compiled call, for serving and explaining alike."""
COLORMAPS = {"Jet": cv2.COLORMAP_JET, "Turbo": cv2.COLORMAP_TURBO, "Inferno": cv2.COLORMAP_INFERNO, "Viridis": cv2.COLORMAP_VIRIDIS}


def _normalize(cams: tf.Tensor) -> tf.Tensor:
    """Scale each map to [0, 1] (all-zero maps stay zero)."""
    low = tf.reduce_min(cams, axis=(1, 2), keepdims=True)
    high = tf.reduce_max(cams, axis=(1, 2), keepdims=True)
    return tf.math.divide_no_nan(cams - low, high - low)


class Explainer:
    """Saliency maps for one model; the default Grad-CAM runs as a single compiled function."""

    def __init__(self, model: keras.Model, input_size: int):
        self.model = model
        self.input_size = input_size
        self._outputs = keras.Model(
            model.inputs,
            [model.get_layer(LAST_CONV_LAYER).output, model.get_layer(LOGIT_LAYER).output, model.get_layer(POOLED_LAYER).output],
        )
        spec = tf.TensorSpec([None, CANONICAL_SIZE, CANONICAL_SIZE], tf.uint8)
        self._forward_with_gradcam = tf.function(self._graph, input_signature=[spec])
        self._vis: dict[str, object] = {}

    def _graph(self, canonical: tf.Tensor) -> dict[str, tf.Tensor]:
        """One forward pass gives the logits, the pooled features and the Grad-CAM of the predicted class."""
        images = to_model_input(canonical, self.input_size)
        with tf.GradientTape() as tape:
            conv, logit, pooled = self._outputs(images, training=False)
            score = tf.where(logit >= 0.0, logit, -logit)  # evidence for the class the logit points to
        grads = tape.gradient(score, conv)
        weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
        cams = tf.nn.relu(tf.reduce_sum(weights * conv, axis=-1))
        # corner-aligned bilinear upsampling, as tf-keras-vis's scipy zoom(order=1) does
        cams = tf.compat.v1.image.resize_bilinear(cams[..., tf.newaxis], (self.input_size, self.input_size), align_corners=True)[..., 0]
        return {"logit": tf.reshape(logit, [-1]), "pooled": pooled, "gradcam": _normalize(cams)}

    def forward_with_gradcam(self, canonical: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(logits ``(N,)``, pooled features ``(N, 1024)``, Grad-CAMs ``(N, size, size)``) for ``(N, 224, 224)``
        uint8 canonical images, from one compiled call per batch: the app's answer and its map cost one forward pass."""
        parts = [self._forward_with_gradcam(tf.constant(canonical[start : start + BATCH_SIZE]))
                 for start in range(0, len(canonical), BATCH_SIZE)]
        return tuple(np.concatenate([part[key].numpy() for part in parts]) for key in ("logit", "pooled", "gradcam"))

    def gradcam(self, canonical: np.ndarray) -> np.ndarray:
        """Compiled Grad-CAM for ``(N, 224, 224)`` uint8 canonical images → ``(N, size, size)`` maps."""
        return self.forward_with_gradcam(canonical)[2]

    def explain(self, canonical: np.ndarray, method: str = "Grad-CAM", positive: list[bool] | None = None) -> np.ndarray:
        """Maps by any method in :data:`METHODS` via tf-keras-vis (Grad-CAM uses the compiled path).

        ``positive[i]`` says whether image i was called PNEUMONIA (explain that class) or NORMAL.
        """
        if method == "Grad-CAM":
            return self.gradcam(canonical)
        from tf_keras_vis.utils.scores import BinaryScore

        images = to_model_input(canonical, self.input_size)
        if positive is None:
            positive = list(self._outputs(images, training=False)[1].numpy().reshape(-1) >= 0)
        # seek_penultimate_conv_layer=False: use DenseNet's final block output itself, not the last Conv2D inside it
        options = {"max_N": SCORECAM_CHANNELS} if method == "ScoreCAM" else {}
        cams = self._vis_method(method)(
            BinaryScore(list(positive)), images, penultimate_layer=LAST_CONV_LAYER, seek_penultimate_conv_layer=False, **options
        )
        return _normalize(tf.constant(np.asarray(cams, np.float32))).numpy()

    def _vis_method(self, method: str):
        if method not in self._vis:
            from tf_keras_vis.gradcam import Gradcam
            from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus
            from tf_keras_vis.scorecam import Scorecam
            from tf_keras_vis.utils.model_modifiers import ReplaceToLinear

            cls = {"Grad-CAM (tf-keras-vis)": Gradcam, "Grad-CAM++": GradcamPlusPlus, "ScoreCAM": Scorecam}[method]
            self._vis[method] = cls(self.model, model_modifier=ReplaceToLinear(), clone=True)
        return self._vis[method]


def overlay(canonical: np.ndarray, cam: np.ndarray, opacity: float = 0.4, colormap: str = "Jet") -> np.ndarray:
    """Blend a [0, 1] map (any size) over a grayscale image → RGB uint8 at the image's size."""
    height, width = canonical.shape[:2]
    heat = cv2.resize((np.clip(cam, 0, 1) * 255).astype(np.uint8), (width, height), interpolation=cv2.INTER_LINEAR)
    colored = cv2.cvtColor(cv2.applyColorMap(heat, COLORMAPS[colormap]), cv2.COLOR_BGR2RGB)
    base = cv2.cvtColor(canonical, cv2.COLOR_GRAY2RGB)
    return cv2.addWeighted(colored, float(opacity), base, 1.0 - float(opacity), 0.0)
