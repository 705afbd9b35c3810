"""Logits to probabilities, in NumPy only (serving imports this without SciPy or scikit-learn)."""

from __future__ import annotations

import numpy as np


def sigmoid(z: np.ndarray) -> np.ndarray:
    """The logistic function, without overflow for large ``|z|``."""
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(z, dtype=float)))


def log_odds(p: np.ndarray) -> np.ndarray:
    """The inverse of :func:`sigmoid` for probabilities strictly between 0 and 1."""
    p = np.asarray(p, dtype=float)
    return np.log(p) - np.log1p(-p)
