"""What every runtime's serving graph returns with an answer, beside the logit: the film's feature vector and, when heat
maps are asked for, its last dense block (:class:`LastBlock`, which :mod:`pneumo_core.serving.cams` explains).

The feature vector is where the film's not-an-X-ray distance comes from. The last dense block's activations ``(h, w,
C)`` are averaged over the whole map (the pooled features the head reads) and over each quadrant of the map (top-left,
top-right, bottom-left, bottom-right; the middle row and column belong to both halves of an odd-sized map),
concatenated: ``5 C`` values. The quadrants keep the film's layout, which the pooled average loses: a photograph whose
average texture resembles a chest film's does not have lungs left and right of a mediastinum. A density fitted on the
pooled part alone (older model directories) reads the first ``C``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LastBlock:
    """One film's last-block activations ``(h, w, C)``, ``d(logit)/d(pooled)`` ``(C,)`` and logit."""

    activations: np.ndarray
    gradient: np.ndarray
    logit: float


def film_features(activations: np.ndarray) -> np.ndarray:
    """``(N, h, w, C)`` last-block activations → ``(N, 5 C)`` features: the pooled average, then each quadrant's."""
    activations = np.asarray(activations, np.float32)
    _, rows, cols, _ = activations.shape
    row_halves = (slice(0, (rows + 1) // 2), slice(rows // 2, rows))
    col_halves = (slice(0, (cols + 1) // 2), slice(cols // 2, cols))
    parts = [activations.mean(axis=(1, 2))]
    parts += [activations[:, r, c].mean(axis=(1, 2)) for r in row_halves for c in col_halves]
    return np.concatenate(parts, axis=1)
