"""Serving: a loaded model with a compiled, batched function from canonical images to P(PNEUMONIA).

Use :class:`Predictor` everywhere a model answers (CLI, app, benchmarks). It
loads the model directory safely once, compiles preprocessing + forward pass
with a fixed input signature, and applies the calibration temperature and the
operating threshold stored in the metadata.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from . import CLASS_NAMES
from .config import served_model_dir
from .decode import ImageDecodeError, decode_image
from .metrics import sigmoid
from .model import logit_model
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


class Predictor:
    """The served model, ready to answer: ``Predictor.load()`` then ``predict_canonical`` / ``predict_files``."""

    batch_size = 32

    def __init__(self, model, metadata: dict[str, Any], threshold: float | None = None):
        self.model = model
        self.metadata = metadata
        self.input_size = int(metadata["input_size"])
        self.threshold = float(metadata["threshold"] if threshold is None else threshold)
        self.temperature = float(metadata.get("temperature", 1.0))
        logits = logit_model(model)
        spec = tf.TensorSpec([None, CANONICAL_SIZE, CANONICAL_SIZE], tf.uint8)
        self._logits = tf.function(lambda images: logits(to_model_input(images, self.input_size), training=False),
                                   input_signature=[spec])

    @classmethod
    def load(cls, model_dir: Path | None = None, threshold: float | None = None) -> "Predictor":
        model, metadata = load_model_dir(Path(model_dir) if model_dir else served_model_dir())
        return cls(model, metadata, threshold)

    def warm_up(self) -> None:
        self.predict_canonical(np.zeros((1, CANONICAL_SIZE, CANONICAL_SIZE), np.uint8))

    def logits_canonical(self, canonical: np.ndarray) -> np.ndarray:
        """Raw logits for ``(N, 224, 224)`` uint8 canonical images, in batches."""
        out = [self._logits(tf.constant(canonical[i : i + self.batch_size])).numpy().reshape(-1)
               for i in range(0, len(canonical), self.batch_size)]
        return np.concatenate(out) if out else np.zeros(0)

    def predict_canonical(self, canonical: np.ndarray) -> list[Prediction]:
        logits = self.logits_canonical(canonical)
        probabilities = sigmoid(logits / self.temperature)
        return [Prediction(float(p), self.threshold, float(z)) for p, z in zip(probabilities, logits)]

    def classify(self, named_payloads: list[tuple[str, bytes]]) -> list[Case]:
        """Decode and classify (name, file bytes) pairs in one batch; unreadable files get a reason."""
        decoded = list(_decode_all([payload for _, payload in named_payloads]))
        good = [i for i, item in enumerate(decoded) if not isinstance(item, ImageDecodeError)]
        predictions = self.predict_canonical(np.stack([decoded[i] for i in good])) if good else []
        by_index = dict(zip(good, predictions))
        return [
            Case(name, canonical=decoded[i], prediction=by_index[i]) if i in by_index else Case(name, error=str(decoded[i]))
            for i, (name, _) in enumerate(named_payloads)
        ]

    def predict_bytes(self, payloads: list[bytes]) -> list[Prediction | ImageDecodeError]:
        """Decode and classify file contents; an unreadable file yields its ImageDecodeError in its place."""
        decoded = list(_decode_all(payloads))
        good = [i for i, item in enumerate(decoded) if not isinstance(item, ImageDecodeError)]
        results: list[Prediction | ImageDecodeError] = list(decoded)
        if good:
            for i, prediction in zip(good, self.predict_canonical(np.stack([decoded[i] for i in good]))):
                results[i] = prediction
        return results


def decode_canonical(payload: bytes) -> np.ndarray | ImageDecodeError:
    try:
        return canonicalize(decode_image(payload))
    except ImageDecodeError as error:
        return error


def _decode_all(payloads: list[bytes]):
    with ThreadPoolExecutor(max_workers=2) as pool:
        yield from pool.map(decode_canonical, payloads)
