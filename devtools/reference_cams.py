"""The reference for :mod:`pneumo_core.serving.cams`: the same maps computed by tf-keras-vis on the Keras model.

Nothing serves from here; the tests hold the serving runtime's maps to these (Grad-CAM and Grad-CAM++
within 1e-4, ScoreCAM within 1e-3) and ``bench/serving.py`` times them. ScoreCAM runs on the model's
two-class equivalent (logits ``-z/2, z/2``, whose softmax is ``sigmoid(-z), sigmoid(z)``): tf-keras-vis
takes a softmax of the model's output, which for the one-unit head is always 1 (see :mod:`pneumo_core.serving.cams`).
"""

from __future__ import annotations

import keras
import numpy as np

from pneumo_core.modeling.architectures import LOGIT_LAYER, last_block_layer, to_model_input
from pneumo_core.serving.cams import GRADCAM, GRADCAM_PLUS_PLUS, METHODS, SCORECAM, SCORECAM_CHANNELS, normalize


def two_class_equivalent(model: keras.Model) -> keras.Model:
    """The classifier with a two-unit softmax head ``softmax(-z/2, z/2)`` on its logit ``z``: the same model."""
    logit = model.get_layer(LOGIT_LAYER).output
    split = keras.layers.Dense(2, activation="softmax", name="two_class")
    outputs = split(logit)
    split.set_weights([np.array([[-0.5, 0.5]], np.float32), np.zeros(2, np.float32)])
    return keras.Model(model.inputs, outputs)


class ReferenceExplainer:
    """tf-keras-vis's Gradcam, GradcamPlusPlus and Scorecam for one Keras classifier; each built once."""

    def __init__(self, model: keras.Model, input_size: int):
        self.model = model
        self.input_size = input_size
        self._vis: dict[str, object] = {}

    def explain(self, canonical: np.ndarray, classes: list[str], method: str = GRADCAM) -> np.ndarray:
        """Maps for ``(N, 224, 224)`` uint8 canonical images, each the evidence for ``classes[i]``.

        ScoreCAM is computed image by image: tf-keras-vis selects channels over the whole batch.
        """
        from tf_keras_vis.utils.scores import BinaryScore, CategoricalScore

        images = to_model_input(canonical, self.input_size)
        positive = [name == "PNEUMONIA" for name in classes]
        options = {"penultimate_layer": last_block_layer(self.model), "seek_penultimate_conv_layer": False}
        if method == SCORECAM:
            maps = [
                self._vis_method(method)(CategoricalScore([int(p)]), images[i : i + 1], max_N=SCORECAM_CHANNELS, **options)
                for i, p in enumerate(positive)
            ]
            maps = np.concatenate([np.reshape(m, (1, self.input_size, self.input_size)) for m in maps])
        else:
            maps = self._vis_method(method)(BinaryScore(positive), images, **options)
        return normalize(np.asarray(maps, np.float32).reshape(len(canonical), self.input_size, self.input_size))

    def _vis_method(self, method: str):
        if method not in METHODS:
            raise ValueError(f"Unknown method {method!r}; choose one of {', '.join(METHODS)}.")
        if method not in self._vis:
            from tf_keras_vis.gradcam import Gradcam
            from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus
            from tf_keras_vis.scorecam import Scorecam
            from tf_keras_vis.utils.model_modifiers import ReplaceToLinear

            cls = {GRADCAM: Gradcam, GRADCAM_PLUS_PLUS: GradcamPlusPlus, SCORECAM: Scorecam}[method]
            model = two_class_equivalent(self.model) if method == SCORECAM else self.model
            self._vis[method] = cls(model, model_modifier=ReplaceToLinear(), clone=True)
        return self._vis[method]
