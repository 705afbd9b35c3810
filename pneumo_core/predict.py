"""Serving: a loaded model with a compiled, batched function from canonical images to P(PNEUMONIA).

Use :class:`Predictor` everywhere a model answers (CLI, app, benchmarks). It
loads the model directory safely once, compiles preprocessing + forward pass
with a fixed input signature, and applies the calibration temperature and the
operating threshold stored in the metadata.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from . import CLASS_NAMES
from .config import served_model_dir
from .decode import DecodedImage, ImageDecodeError, decode_image, decode_upload
from .explain import BATCH_SIZE, Explainer
from .metrics import sigmoid
from .model import LOGIT_LAYER, POOLED_LAYER
from .ood import FeatureDensity, ood_warnings
from .preprocess import CANONICAL_SIZE, canonicalize, to_model_input
from .registry import load_model_dir


UNCERTAIN_MARGIN = 0.10
"""A probability within this distance of the threshold is reported as uncertain."""


@dataclass(frozen=True)
class Prediction:
    probability: float  # calibrated P(PNEUMONIA)
    threshold: float
    logit: float

    @property
    def label(self) -> str:
        return CLASS_NAMES[int(self.probability >= self.threshold)]

    @property
    def uncertain(self) -> bool:
        return abs(self.probability - self.threshold) < UNCERTAIN_MARGIN


@dataclass(frozen=True)
class Case:
    """One input file's outcome: its canonical image and prediction, or the reason it has none."""

    name: str
    canonical: np.ndarray | None = None
    prediction: Prediction | None = None
    error: str | None = None
    warnings: tuple[str, ...] = ()
    dicom_fields: dict[str, str] = field(default_factory=dict)
    gradcam: np.ndarray | None = None  # (size, size) map in [0, 1], when classified with an Explainer


class Predictor:
    """The served model, ready to answer: ``Predictor.load()`` then ``predict_canonical`` / ``predict_files``."""

    batch_size = BATCH_SIZE

    def __init__(self, model, metadata: dict[str, Any], threshold: float | None = None, density: FeatureDensity | None = None):
        self.model = model
        self.metadata = metadata
        self.input_size = int(metadata["input_size"])
        self.threshold = float(metadata["threshold"] if threshold is None else threshold)
        self.temperature = float(metadata.get("temperature", 1.0))
        self.density = density
        heads = keras.Model(model.inputs, [model.get_layer(LOGIT_LAYER).output, model.get_layer(POOLED_LAYER).output])
        spec = tf.TensorSpec([None, CANONICAL_SIZE, CANONICAL_SIZE], tf.uint8)
        self._forward = tf.function(lambda images: heads(to_model_input(images, self.input_size), training=False),
                                    input_signature=[spec])

    @classmethod
    def load(cls, model_dir: Path | None = None, threshold: float | None = None) -> "Predictor":
        directory = Path(model_dir) if model_dir else served_model_dir()
        model, metadata = load_model_dir(directory)
        return cls(model, metadata, threshold, FeatureDensity.load(directory))

    def warm_up(self) -> None:
        self.predict_canonical(np.zeros((1, CANONICAL_SIZE, CANONICAL_SIZE), np.uint8))

    def forward(self, canonical: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(logits ``(N,)``, pooled features ``(N, 1024)``) for ``(N, 224, 224)`` uint8 canonical images, in batches."""
        logits, features = [], []
        for start in range(0, len(canonical), self.batch_size):
            batch_logits, batch_features = self._forward(tf.constant(canonical[start : start + self.batch_size]))
            logits.append(batch_logits.numpy().reshape(-1))
            features.append(batch_features.numpy())
        if not logits:
            return np.zeros(0), np.zeros((0, 0))
        return np.concatenate(logits), np.concatenate(features)

    def logits_canonical(self, canonical: np.ndarray) -> np.ndarray:
        return self.forward(canonical)[0]

    def predict_canonical(self, canonical: np.ndarray) -> list[Prediction]:
        return self._predictions(self.logits_canonical(canonical))

    def _predictions(self, logits: np.ndarray) -> list[Prediction]:
        probabilities = sigmoid(logits / self.temperature)
        return [Prediction(float(p), self.threshold, float(z)) for p, z in zip(probabilities, logits)]

    def classify(self, named_payloads: list[tuple[str, bytes]], explainer: Explainer | None = None) -> list[Case]:
        """Decode and classify (name, file bytes) pairs in batches; unreadable files get a reason.

        The next batch is decoded (two threads) while the current one runs through the model. With an
        ``explainer`` of the same model, each case also gets its Grad-CAM from the same forward pass.
        """
        batches = [named_payloads[start : start + self.batch_size] for start in range(0, len(named_payloads), self.batch_size)]
        cases: list[Case] = []
        with ThreadPoolExecutor(max_workers=2) as pool:
            pending = [pool.submit(_decode_upload, payload) for _, payload in batches[0]] if batches else []
            for index, batch in enumerate(batches):
                decoded = [future.result() for future in pending]
                if index + 1 < len(batches):
                    pending = [pool.submit(_decode_upload, payload) for _, payload in batches[index + 1]]
                cases.extend(self._classify_decoded([name for name, _ in batch], decoded, explainer))
        return cases

    def _classify_decoded(self, names: list[str], decoded: list, explainer: Explainer | None) -> list[Case]:
        good = [i for i, item in enumerate(decoded) if not isinstance(item, ImageDecodeError)]
        cases = [Case(name, error=str(item)) if isinstance(item, ImageDecodeError) else None for name, item in zip(names, decoded)]
        if good:
            canonical = np.stack([decoded[i][1] for i in good])
            if explainer is None:
                logits, features = self.forward(canonical)
                maps = [None] * len(good)
            else:
                logits, features, maps = explainer.forward_with_gradcam(canonical)
            distances = self.density.distances(features) if self.density else [None] * len(good)
            for i, image, prediction, distance, cam in zip(good, canonical, self._predictions(logits), distances, maps):
                upload = decoded[i][0]
                cases[i] = Case(names[i], image, prediction, None,
                                ood_warnings(upload.colourfulness, distance, self.density), upload.dicom_fields, cam)
        return cases


def _decode_upload(payload: bytes) -> tuple[DecodedImage, np.ndarray] | ImageDecodeError:
    try:
        upload = decode_upload(payload)
    except ImageDecodeError as error:
        return error
    return upload, canonicalize(upload.gray)


def decode_canonical(payload: bytes) -> np.ndarray | ImageDecodeError:
    try:
        return canonicalize(decode_image(payload))
    except ImageDecodeError as error:
        return error
