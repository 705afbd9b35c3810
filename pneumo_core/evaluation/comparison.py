"""Comparing two models on the same films: the paired ROC-AUC difference with a patient-bootstrap interval, and the
rule a candidate must pass to replace the served model.

Both models score the same films, so their AUCs share the films' luck: the difference is resampled in pairs (the same
patients drawn for both), which is far tighter than two separate intervals. A difference whose one-sided 95% interval
still includes 0 is noise in this sample, however large it looks (the model card, "Recipes tried", has the site
sample's rankings that a later collection did not repeat).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

REPLICATES = 2000
CONFIDENCE = 0.95
MAX_INTERNAL_DROP = 0.002
"""A candidate may lose at most this much internal-test ROC AUC against the served model."""
SERVING_RULE = (
    f"serve a candidate only if its site-sample ROC AUC beats the served model's with the one-sided {CONFIDENCE:.0%} "
    f"patient-bootstrap interval of the paired difference above 0, and its internal-test AUC drops by at most "
    f"{MAX_INTERNAL_DROP}"
)


@dataclass(frozen=True)
class PairedDifference:
    """``auc(candidate) - auc(reference)`` on the same films, with its one-sided lower bound and two-sided interval."""

    difference: float
    lower_bound: float  # one-sided, at CONFIDENCE
    interval: tuple[float, float]  # two-sided, at CONFIDENCE
    films: int
    patients: int

    def as_json(self) -> dict:
        return asdict(self)


def paired_auc_difference(
    labels: np.ndarray,
    candidate: np.ndarray,
    reference: np.ndarray,
    patients: np.ndarray,
    replicates: int = REPLICATES,
    seed: int = 0,
) -> PairedDifference:
    """The paired difference of ROC AUCs of two score vectors on the same films, resampling patients with
    replacement (the same draw for both models; a draw with one class only is drawn again)."""
    from sklearn.metrics import roc_auc_score

    labels, candidate, reference = (np.asarray(values) for values in (labels, candidate, reference))
    patients = np.asarray(patients)
    if not (len(labels) == len(candidate) == len(reference) == len(patients)):
        raise ValueError("labels, both models' scores and patients must describe the same films.")
    unique, index = np.unique(patients, return_inverse=True)
    films_of = [np.flatnonzero(index == i) for i in range(len(unique))]
    rng = np.random.default_rng(seed)
    differences = []
    while len(differences) < replicates:
        chosen = np.concatenate([films_of[i] for i in rng.integers(0, len(unique), len(unique))])
        if labels[chosen].min() == labels[chosen].max():
            continue
        differences.append(roc_auc_score(labels[chosen], candidate[chosen]) - roc_auc_score(labels[chosen], reference[chosen]))
    differences = np.asarray(differences)
    alpha = 1 - CONFIDENCE
    return PairedDifference(
        difference=float(roc_auc_score(labels, candidate) - roc_auc_score(labels, reference)),
        lower_bound=float(np.quantile(differences, alpha)),
        interval=(float(np.quantile(differences, alpha / 2)), float(np.quantile(differences, 1 - alpha / 2))),
        films=int(len(labels)),
        patients=int(len(unique)),
    )


def passes_serving_rule(site: PairedDifference, internal_difference: float) -> bool:
    """:data:`SERVING_RULE`: the site-sample gain holds beyond its noise and the internal test does not pay for it."""
    return site.lower_bound > 0 and internal_difference >= -MAX_INTERNAL_DROP
