"""Shift diagnostics of a site sample: aggregates only (curves, reliability bins, histograms), no per-film data."""

from __future__ import annotations

from typing import Any

import numpy as np


def diagnostics(
    labels: np.ndarray,
    probabilities: np.ndarray,
    distances: np.ndarray | None,
    warned: np.ndarray | None,
    reference_distances: np.ndarray | None = None,
) -> dict[str, Any]:
    """Aggregates for the shift diagnostics: ROC curve, reliability bins, per-class probability histograms,
    the feature-distance distribution (and the training reference's, when given). No per-film data. ``distances`` and
    ``warned`` are None for scores computed elsewhere (score records): their aggregates are then empty."""
    from sklearn.metrics import roc_curve

    from pneumo_core.evaluation.metrics import reliability_curve

    fpr, tpr, _ = roc_curve(labels, probabilities)
    predicted, observed, counts = reliability_curve(labels, probabilities)
    edges = np.linspace(0.0, 1.0, 21)
    distances = np.asarray(distances if distances is not None else [], dtype=float)
    finite = distances[np.isfinite(distances)]
    reference = np.asarray(reference_distances if reference_distances is not None else [], dtype=float)
    both = np.concatenate([finite, reference])
    top = max(float(np.quantile(both, 0.995)), 1.0) if len(both) else 1.0
    distance_edges = np.linspace(0.0, top, 31)
    result: dict[str, Any] = {
        "roc": {"fpr": _rounded(fpr), "tpr": _rounded(tpr)},
        "reliability": {"predicted": _rounded(predicted), "observed": _rounded(observed), "count": counts.tolist()},
        "probability_histogram": {
            "edges": _rounded(edges),
            "NORMAL": np.histogram(probabilities[labels == 0], edges)[0].tolist(),
            "PNEUMONIA": np.histogram(probabilities[labels == 1], edges)[0].tolist(),
        },
        "distance_histogram": {
            "edges": _rounded(distance_edges),
            "site": np.histogram(np.clip(finite, 0, top), distance_edges)[0].tolist(),
        },
        "distance_median": float(np.median(finite)) if len(finite) else None,
        "not_an_xray_warnings": int(np.asarray(warned).sum()) if warned is not None else None,
    }
    if len(reference):
        result["distance_histogram"]["reference"] = np.histogram(np.clip(reference, 0, top), distance_edges)[0].tolist()
        result["reference_distance_median"] = float(np.median(reference))
    return result


def _rounded(values: np.ndarray) -> list[float]:
    return [round(float(v), 5) for v in values]
