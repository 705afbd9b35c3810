"""Decisions with a referral band, and what they achieve on labelled films: NumPy only.

A film whose calibrated probability lies below ``low`` is called NORMAL, at or above ``high`` PNEUMONIA, and in
between it is referred (uncertain, needs a radiologist). The decided films are those not referred; their
sensitivity and specificity, and the share referred, describe the band. Widening a band around the threshold trades
coverage (the share decided) for fewer errors among the decided: the risk–coverage curve.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from pneumo_core import CLASS_NAMES
from pneumo_core.common.logits import log_odds, sigmoid

REFER = "REFER"


def decide(probability: float, low: float, high: float) -> str:
    """NORMAL below ``low``, PNEUMONIA from ``high``, REFER in between."""
    return CLASS_NAMES[0] if probability < low else CLASS_NAMES[1] if probability >= high else REFER


def decided_metrics(labels: np.ndarray, probabilities: np.ndarray, low: float, high: float) -> dict[str, float | int]:
    """The share referred and the decided films' accuracy, sensitivity and specificity (NaN when a class has no
    decided film), with the counts of each decision."""
    labels = np.asarray(labels).astype(int)
    probabilities = np.asarray(probabilities, dtype=float)
    called_pneumonia, called_normal = probabilities >= high, probabilities < low
    decided = called_pneumonia | called_normal
    pneumonia, normal = decided & (labels == 1), decided & (labels == 0)
    return {
        "referred": float(1 - decided.mean()) if len(labels) else float("nan"),
        "decided_accuracy": _share(called_pneumonia[decided] == (labels[decided] == 1)),
        "decided_sensitivity": _share(called_pneumonia[pneumonia]),
        "decided_specificity": _share(called_normal[normal]),
        "normal": int(called_normal.sum()),
        "refer": int((~decided).sum()),
        "pneumonia": int(called_pneumonia.sum()),
    }


def promise_sentence(decision: str | None, promise: dict[str, Any] | None) -> str | None:
    """One plain sentence: what the decision asks of the reader and the site's promise behind it (None without a site
    promise or a decision). "At least" figures are rounded down and "at most" figures up, so the sentence keeps the
    promise (:mod:`pneumo_core.operating_point.promises`)."""
    if not promise or decision is None:
        return None
    scope = f"({promise['confidence']:.0%} confidence, for this site's next {promise['next_films']} films)"
    if decision == CLASS_NAMES[0]:
        flagged = math.floor(100 * (1 - promise["missed_by_normal"]) + 1e-9)
        return (
            f"Called NORMAL: at this site's operating point, at least {flagged} of every 100 films with pneumonia are "
            f"flagged or referred {scope}."
        )
    if decision == CLASS_NAMES[1]:
        wrong = math.ceil(100 * promise["normal_called_pneumonia"] - 1e-9)
        return (
            f"Called PNEUMONIA: at this site's operating point, at most {wrong} of every 100 films without pneumonia are "
            f"called PNEUMONIA {scope}."
        )
    return (
        "Referred: the film scores between the edges where NORMAL or PNEUMONIA could be called with this site's "
        "promises, so a radiologist should read it; at most "
        f"{math.ceil(100 * promise['referred'] - 1e-9)} of every 100 films are referred {scope}."
    )


def risk_coverage(
    labels: np.ndarray, probabilities: np.ndarray, threshold: float, half_widths: np.ndarray | None = None
) -> dict[str, list[float]]:
    """Coverage (share decided) and risk (error rate of the decided films) for bands symmetric in log-odds around
    ``threshold``, of each half-width (default 0 to 4 in steps of 0.1: odds within up to e⁴ of the threshold's)."""
    half_widths = np.arange(0.0, 4.01, 0.1) if half_widths is None else np.asarray(half_widths, dtype=float)
    centre = float(log_odds(min(max(threshold, 1e-6), 1 - 1e-6)))
    coverage, risk = [], []
    for width in half_widths:
        low, high = (float(v) for v in sigmoid(np.array([centre - width, centre + width])))
        decided = decided_metrics(labels, probabilities, low, high)
        coverage.append(1 - decided["referred"])
        risk.append(1 - decided["decided_accuracy"] if np.isfinite(decided["decided_accuracy"]) else 0.0)
    return {"half_width": half_widths.tolist(), "coverage": coverage, "risk": risk}


def _share(values: np.ndarray) -> float:
    return float(values.mean()) if values.size else float("nan")
