"""Binary classification metrics, the operating-threshold rule and temperature calibration."""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar
from sklearn import metrics as skm

from pneumo_core.common.confidence import BOOTSTRAP_RESAMPLES, CONFIDENCE

THRESHOLD_RULE = "highest threshold with validation sensitivity >= {target:.2f} (i.e. the best specificity at that sensitivity)"


def classification_metrics(labels: np.ndarray, probabilities: np.ndarray, threshold: float) -> dict[str, float]:
    """Accuracy, sensitivity, specificity, precision (PPV), NPV, F1, ROC AUC, PR AUC, Brier, ECE, counts."""
    labels = np.asarray(labels).astype(int)
    probabilities = np.asarray(probabilities, dtype=float)
    predicted = (probabilities >= threshold).astype(int)
    tn, fp, fn, tp = skm.confusion_matrix(labels, predicted, labels=[0, 1]).ravel()
    both_classes = len(np.unique(labels)) == 2
    return {
        "accuracy": float((tp + tn) / len(labels)),
        "sensitivity": _ratio(tp, tp + fn),
        "specificity": _ratio(tn, tn + fp),
        "precision": _ratio(tp, tp + fp),
        "npv": _ratio(tn, tn + fn),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
        "roc_auc": float(skm.roc_auc_score(labels, probabilities)) if both_classes else float("nan"),
        "pr_auc": float(skm.average_precision_score(labels, probabilities)) if both_classes else float("nan"),
        "brier": float(np.mean((probabilities - labels) ** 2)),
        "ece": expected_calibration_error(labels, probabilities),
        "tp": int(tp),
        "fp": int(fp),
        "tn": int(tn),
        "fn": int(fn),
        "n": int(len(labels)),
        "threshold": float(threshold),
    }


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator / denominator) if denominator else float("nan")


def expected_calibration_error(labels: np.ndarray, probabilities: np.ndarray, bins: int = 10) -> float:
    """ECE with equal-width bins: the mean |accuracy − confidence| gap weighted by bin size."""
    labels = np.asarray(labels, dtype=float)
    probabilities = np.asarray(probabilities, dtype=float)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(probabilities, edges[1:-1]), 0, bins - 1)
    gap = 0.0
    for b in range(bins):
        in_bin = which == b
        if in_bin.any():
            gap += in_bin.mean() * abs(labels[in_bin].mean() - probabilities[in_bin].mean())
    return float(gap)


def choose_threshold(labels: np.ndarray, probabilities: np.ndarray, target_sensitivity: float = 0.97) -> float:
    """The highest threshold whose sensitivity on these (validation) labels is >= the target.

    Among thresholds reaching the target sensitivity, the highest one has the
    best specificity. Call it on validation data only, never on test data.
    """
    labels = np.asarray(labels).astype(int)
    probabilities = np.asarray(probabilities, dtype=float)
    positives = np.sort(probabilities[labels == 1])[::-1]
    if len(positives) == 0:
        raise ValueError("choose_threshold needs at least one positive example")
    needed = int(np.ceil(target_sensitivity * len(positives)))  # positives that must score >= threshold
    return float(positives[max(needed, 1) - 1])


def fit_temperature(labels: np.ndarray, logits: np.ndarray) -> float:
    """Temperature T minimising the negative log-likelihood of sigmoid(logit / T) (fit on validation)."""
    labels = np.asarray(labels, dtype=float)
    logits = np.asarray(logits, dtype=float)

    def nll(log_t: float) -> float:
        z = logits / np.exp(log_t)
        return float(np.mean(np.logaddexp(0.0, z) - labels * z))

    result = minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded")
    return float(np.exp(result.x))


CI_METRICS = ("accuracy", "sensitivity", "specificity", "precision", "npv", "f1", "roc_auc", "pr_auc")
PROPORTIONS = ("accuracy", "sensitivity", "specificity", "precision", "npv")
"""The metrics that are proportions of films: their intervals are exact (Clopper–Pearson), never bootstrapped."""


def patient_intervals(
    labels: np.ndarray,
    probabilities: np.ndarray,
    threshold: float,
    patients: np.ndarray,
    confidence: float = CONFIDENCE,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> dict[str, tuple[float, float]]:
    """Two-sided ``confidence`` intervals for :data:`CI_METRICS`, with the patient as the unit.

    A proportion (:data:`PROPORTIONS`) gets the exact Clopper–Pearson interval at its effective sample size: the
    films it counts weigh as many as the patients they come from (Kish's design effect at its worst case, an
    intra-class correlation of 1: a child's films count as one child), ``k`` successes of ``n`` films becoming
    ``k · p / n`` of ``p`` patients. F1, ROC AUC and PR AUC, which are no proportion, get a percentile bootstrap that
    resamples patients (seeded: the same films give the same intervals).
    """
    from scipy.stats import beta

    labels = np.asarray(labels).astype(int)
    probabilities = np.asarray(probabilities, dtype=float)
    patients = np.asarray(patients)
    called = probabilities >= threshold
    alpha = (1 - confidence) / 2
    counted = {
        "accuracy": (np.ones(len(labels), bool), called == (labels == 1)),
        "sensitivity": (labels == 1, called),
        "specificity": (labels == 0, ~called),
        "precision": (called, labels == 1),
        "npv": (~called, labels == 0),
    }
    intervals: dict[str, tuple[float, float]] = {}
    for name, (films, right) in counted.items():
        n_patients = len(np.unique(patients[films]))
        if not n_patients:
            intervals[name] = (float("nan"), float("nan"))
            continue
        k = right[films].mean() * n_patients
        low = 0.0 if k == 0 else float(beta.ppf(alpha, k, n_patients - k + 1))
        high = 1.0 if k == n_patients else float(beta.ppf(1 - alpha, k + 1, n_patients - k))
        intervals[name] = (low, high)
    unique, index = np.unique(patients, return_inverse=True)
    members = [np.flatnonzero(index == i) for i in range(len(unique))]
    rng = np.random.default_rng(seed)
    replicates = []
    for _ in range(resamples):
        chosen = np.concatenate([members[i] for i in rng.integers(0, len(unique), len(unique))])
        truth, scores = labels[chosen], probabilities[chosen]
        if len(np.unique(truth)) == 2:
            hits = int((called[chosen] & (truth == 1)).sum())
            f1 = 2 * hits / (called[chosen].sum() + truth.sum())
            replicates.append([f1, skm.roc_auc_score(truth, scores), skm.average_precision_score(truth, scores)])
    values = np.asarray(replicates)
    for column, name in enumerate(("f1", "roc_auc", "pr_auc")):
        low, high = np.quantile(values[:, column], [alpha, 1 - alpha]) if len(values) else (np.nan, np.nan)
        intervals[name] = (float(low), float(high))
    return {name: intervals[name] for name in CI_METRICS}


def reliability_curve(labels: np.ndarray, probabilities: np.ndarray, bins: int = 10) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean predicted probability, observed frequency, count) per non-empty equal-width bin."""
    from sklearn.calibration import calibration_curve

    observed, predicted = calibration_curve(labels, probabilities, n_bins=bins, strategy="uniform")
    counts = np.histogram(probabilities, bins=np.linspace(0, 1, bins + 1))[0]
    return predicted, observed, counts[counts > 0]
