"""Saliency maps by tf-keras-vis, for the methods beyond the serving graph's Grad-CAM.

The default Grad-CAM is part of the serving graph (:mod:`pneumo_core.network`):
it arrives with every answer. :class:`Explainer` computes Grad-CAM++ and ScoreCAM
(and tf-keras-vis's own Grad-CAM, the reference the tests compare against) for the
class the model predicted. Maps are (size, size) float arrays in [0, 1] over the
model input, i.e. over the canonical image.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from .model import LAST_CONV_LAYER, to_model_input
from .network import normalize_maps
from .saliency import TF_KERAS_VIS_METHODS

SCORECAM_CHANNELS = 32
"""ScoreCAM masks with the 32 most varied channels of 1024 (Faster-ScoreCAM): seconds, not minutes, per image."""


class Explainer:
    """tf-keras-vis saliency for one Keras model; each method's object is built once and reused."""

    def __init__(self, model: keras.Model, input_size: int):
        self.model = model
        self.input_size = input_size
        self._vis: dict[str, object] = {}

    def explain(self, canonical: np.ndarray, method: str, positive: list[bool]) -> np.ndarray:
        """Maps for ``(N, 224, 224)`` uint8 canonical images by a method of :data:`TF_KERAS_VIS_METHODS`.

        ``positive[i]`` says whether image i was called PNEUMONIA (explain that class) or NORMAL.
        """
        from tf_keras_vis.utils.scores import BinaryScore

        images = to_model_input(canonical, self.input_size)
        # seek_penultimate_conv_layer=False: use DenseNet's final block output itself, not the last Conv2D inside it
        options = {"max_N": SCORECAM_CHANNELS} if method == "ScoreCAM" else {}
        cams = self._vis_method(method)(
            BinaryScore(list(positive)), images, penultimate_layer=LAST_CONV_LAYER, seek_penultimate_conv_layer=False, **options
        )
        return normalize_maps(tf.constant(np.asarray(cams, np.float32))).numpy()

    def _vis_method(self, method: str):
        if method not in TF_KERAS_VIS_METHODS:
            raise ValueError(f"Unknown method {method!r}; tf-keras-vis methods: {', '.join(TF_KERAS_VIS_METHODS)}.")
        if method not in self._vis:
            from tf_keras_vis.gradcam import Gradcam
            from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus
            from tf_keras_vis.scorecam import Scorecam
            from tf_keras_vis.utils.model_modifiers import ReplaceToLinear

            cls = {"Grad-CAM (tf-keras-vis)": Gradcam, "Grad-CAM++": GradcamPlusPlus, "ScoreCAM": Scorecam}[method]
            self._vis[method] = cls(self.model, model_modifier=ReplaceToLinear(), clone=True)
        return self._vis[method]
