"""Is this a frontal chest X-ray at all? Two honest checks that warn, never silently classify.

1. Colour: chest films are gray. A visibly coloured picture (Hasler & Süsstrunk
   colourfulness above :data:`COLOUR_LIMIT`) is a photo, a screenshot or a document.
2. Feature distance: the Mahalanobis distance of the model's features (the last
   block pooled over the whole film and over each quadrant,
   :mod:`pneumo_core.common.network_outputs`), in their :data:`COMPONENTS` leading
   principal components, to those of the training films as sites send them
   (Ledoit-Wolf covariance; :func:`reference_features`: each film as stored and
   once mildly cropped, since sites trim films and the distance grows with the
   trim). The limit is the 99th percentile of the validation films' distances (as
   stored and cropped alike), so about 1% of real X-rays of the training
   population get a (false) warning by design.

Clearly not a chest X-ray gets **no verdict** (:func:`ood_assessment`): a colour picture, or a feature
distance above :data:`WITHHOLD_FACTOR` × the limit. Between 1 and :data:`WITHHOLD_FACTOR` × the limit a film keeps
its verdict with a warning. Where generated non-X-rays, internal-test films, site-sample films and what sites do to
them (re-sampling, EXIF rotation, JPEG re-encoding, 16-bit, DICOM windowing, mild crops) lie against the limit, per
served model, is measured by ``python -m bench.ood`` (``bench/RESULTS.md``; the model card, "Not an X-ray"); the
factor was chosen looking at those sets, so their withheld rates are not independent measurements.

3. Orientation: a film turned 180° keeps its layout's statistics well enough to stay under the limit, and the model
   would answer it. Each film is therefore also measured turned 180°: when the turned film lies closer to the
   training films than the film as sent, the film is upside down and gets no verdict (``python -m bench.orientation``
   measures both sides of that rule on the site sample).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from pneumo_core.common.preprocess import canonicalize
from pneumo_core.serving.decode import decode_image

OOD_FILE = "ood.npz"
COLOUR_LIMIT = 15.0
VALIDATION_QUANTILE = 0.99
WITHHOLD_FACTOR = 1.20
"""Verdicts are withheld beyond this × the limit: the geometric midpoint, rounded, between the farthest real film
(the site sample and its variants as sites send them) and the nearest generated non-X-ray, both measured by
``python -m bench.ood`` on the served model (set after measuring; the margins are in ``bench/RESULTS.md``)."""
NOT_AN_XRAY = "This does not look like a frontal chest X-ray"
CROP_FRACTION = 0.10
"""A reference film's mild crop trims each edge by a fraction drawn uniformly from 0 to this."""
REFERENCE_SEED = 0
REFERENCE_BATCH = 32
COMPONENTS = 128
"""Principal components of the reference features the distance is measured in (of 5 × 1024 features)."""


def mildly_cropped(gray: np.ndarray, rng: np.random.Generator, fraction: float = CROP_FRACTION) -> np.ndarray:
    """The film with each edge trimmed by a fraction drawn uniformly from 0 to ``fraction`` (as a site's export may)."""
    rows, cols = gray.shape
    top, bottom, left, right = rng.uniform(0.0, fraction, 4)
    return gray[int(rows * top) : rows - int(rows * bottom), int(cols * left) : cols - int(cols * right)]


def reference_features(
    paths: Sequence[str | Path],
    forward: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
    seed: int = REFERENCE_SEED,
) -> np.ndarray:
    """Features ``(2N, D)`` of N reference films as sites send them: each file decoded as stored, and once
    :func:`mildly_cropped` (seeded), both canonicalized as in serving; ``forward`` is a network's
    (:meth:`~pneumo_core.serving.predictor.Predictor.forward`)."""
    rng = np.random.default_rng(seed)
    features = []
    for start in range(0, len(paths), REFERENCE_BATCH):
        grays = [decode_image(Path(path).read_bytes()) for path in paths[start : start + REFERENCE_BATCH]]
        views = [canonicalize(gray) for gray in grays] + [canonicalize(mildly_cropped(gray, rng)) for gray in grays]
        features.append(forward(np.stack(views))[1])
    return np.concatenate(features) if features else np.zeros((0, 0), np.float32)


@dataclass(frozen=True)
class FeatureDensity:
    """Mahalanobis distance to the reference films' features: in the span of their leading principal components when
    fitted with ``components`` (``projection`` holds them, one per row), else in the whole feature space."""

    mean: np.ndarray
    precision: np.ndarray
    limit: float
    reference: np.ndarray | None = None  # the validation images' distances: the reference for shift diagnostics
    projection: np.ndarray | None = None

    @classmethod
    def fit(
        cls,
        train_features: np.ndarray,
        val_features: np.ndarray,
        quantile: float = VALIDATION_QUANTILE,
        components: int | None = None,
    ) -> FeatureDensity:
        """Ledoit-Wolf covariance of the training features (or of their first ``components`` principal components);
        the limit is the ``quantile`` of the validation features' distances."""
        from sklearn.covariance import LedoitWolf  # training only: serving loads the fitted density with NumPy

        train = np.asarray(train_features, np.float64)
        mean, projection = train.mean(axis=0), None
        if components:
            projection = np.linalg.svd(train - mean, full_matrices=False)[2][:components]
        centred = (train - mean) @ projection.T if projection is not None else train - mean
        density = cls(mean, LedoitWolf(assume_centered=True).fit(centred).precision_, 0.0, None, projection)
        reference = density.distances(val_features)
        return replace(density, limit=float(np.quantile(reference, quantile)), reference=reference)

    def distances(self, features: np.ndarray) -> np.ndarray:
        """Each row's distance; features with more columns than the density was fitted on are read from the first
        (:mod:`pneumo_core.common.network_outputs`: a pooled-only density reads the pooled part)."""
        centred = np.asarray(features, np.float64)[:, : len(self.mean)] - self.mean
        if self.projection is not None:
            centred = centred @ self.projection.T
        # one matrix product (BLAS) then a row-wise dot: a three-operand einsum loops in C, ~9 ms per batch of 32
        return np.sqrt(np.maximum(((centred @ self.precision) * centred).sum(axis=1), 0.0))

    def save(self, directory: Path) -> None:
        optional = {"reference": self.reference, "projection": self.projection}
        np.savez_compressed(
            Path(directory) / OOD_FILE,
            mean=self.mean.astype(np.float32),
            precision=self.precision.astype(np.float32),
            limit=np.float64(self.limit),
            **{name: value.astype(np.float32) for name, value in optional.items() if value is not None},
        )

    @classmethod
    def load(cls, directory: Path) -> FeatureDensity | None:
        path = Path(directory) / OOD_FILE
        if not path.is_file():
            return None
        with np.load(path) as stored:
            optional = {name: stored[name].astype(np.float64) for name in ("reference", "projection") if name in stored}
            return cls(
                stored["mean"].astype(np.float64), stored["precision"].astype(np.float64), float(stored["limit"]), **optional
            )


UPSIDE_DOWN = (
    "This film looks upside down: turned 180° it looks more like the X-rays the model was trained on. Turn it the "
    "right way up and classify it again."
)


def ood_assessment(
    colourfulness: float,
    distance: float | None,
    density: FeatureDensity | None,
    turned_distance: float | None = None,
) -> tuple[tuple[str, ...], str | None]:
    """(plain-language warnings, the reason the verdict is withheld or None) for one image; ``turned_distance``: the
    feature distance of the same film turned 180°."""
    if colourfulness > COLOUR_LIMIT:
        reason = f"{NOT_AN_XRAY}: it is a colour picture, and X-rays are gray."
        return (reason,), reason
    if distance is not None and turned_distance is not None and turned_distance < distance:
        return (UPSIDE_DOWN,), UPSIDE_DOWN
    if density is None or distance is None or distance <= density.limit:
        return (), None
    if distance > WITHHOLD_FACTOR * density.limit:
        reason = (
            f"{NOT_AN_XRAY}: it is far from the X-rays the model was trained on "
            f"(feature distance {distance:.0f}, X-rays stay below {WITHHOLD_FACTOR * density.limit:.0f})."
        )
        return (reason,), reason
    return (
        f"This film is less like the X-rays the model was trained on than 99% of them (feature distance {distance:.0f}, "
        f"limit {density.limit:.0f}): read the result with extra caution.",
    ), None
