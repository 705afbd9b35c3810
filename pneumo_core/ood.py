"""Is this a frontal chest X-ray at all? Two honest checks that warn, never silently classify.

1. Colour: chest films are gray. A visibly coloured picture (Hasler & Süsstrunk
   colourfulness above :data:`COLOUR_LIMIT`) is a photo, a screenshot or a document.
2. Feature distance: the Mahalanobis distance of the model's pooled DenseNet
   features to those of the training images (Ledoit-Wolf covariance). The limit
   is the 99th percentile of the validation images' distances, so about 1% of
   real X-rays from the training population get a (false) warning by design.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

OOD_FILE = "ood.npz"
COLOUR_LIMIT = 15.0
VALIDATION_QUANTILE = 0.99
NOT_AN_XRAY = "This does not look like a frontal chest X-ray"


@dataclass(frozen=True)
class FeatureDensity:
    mean: np.ndarray
    precision: np.ndarray
    limit: float
    reference: np.ndarray | None = None  # the validation images' distances: the reference for shift diagnostics

    @classmethod
    def fit(cls, train_features: np.ndarray, val_features: np.ndarray, quantile: float = VALIDATION_QUANTILE) -> FeatureDensity:
        from sklearn.covariance import LedoitWolf  # training only: serving loads the fitted density with NumPy

        estimate = LedoitWolf().fit(train_features.astype(np.float64))
        density = cls(estimate.location_, estimate.precision_, 0.0)
        reference = density.distances(val_features)
        return cls(density.mean, density.precision, float(np.quantile(reference, quantile)), reference)

    def distances(self, features: np.ndarray) -> np.ndarray:
        centred = np.asarray(features, np.float64) - self.mean
        return np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", centred, self.precision, centred), 0.0))

    def save(self, directory: Path) -> None:
        np.savez_compressed(
            Path(directory) / OOD_FILE,
            mean=self.mean.astype(np.float32),
            precision=self.precision.astype(np.float32),
            limit=np.float64(self.limit),
            **({"reference": self.reference.astype(np.float32)} if self.reference is not None else {}),
        )

    @classmethod
    def load(cls, directory: Path) -> FeatureDensity | None:
        path = Path(directory) / OOD_FILE
        if not path.is_file():
            return None
        with np.load(path) as stored:
            reference = stored["reference"].astype(np.float64) if "reference" in stored else None
            return cls(
                stored["mean"].astype(np.float64), stored["precision"].astype(np.float64), float(stored["limit"]), reference
            )


def ood_warnings(colourfulness: float, distance: float | None, density: FeatureDensity | None) -> tuple[str, ...]:
    """Plain-language warnings for one image (empty when it looks like the training X-rays)."""
    found = []
    if colourfulness > COLOUR_LIMIT:
        found.append(f"{NOT_AN_XRAY}: it is a colour picture, and X-rays are gray.")
    if density is not None and distance is not None and distance > density.limit:
        found.append(
            f"{NOT_AN_XRAY}: it is unlike the X-rays the model was trained on "
            f"(feature distance {distance:.0f}, limit {density.limit:.0f}). Treat the result as meaningless."
        )
    return tuple(found)
