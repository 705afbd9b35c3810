"""Fitting a site profile on a site's labelled sample, and estimating what it gives on that site's next films.

A model's validation threshold comes from patients of the training collection. Films from another site or a later
collection shift the probabilities (here: normal films score higher), so a site hands over a small labelled sample
and :func:`calibrate` fits on it

- a temperature T (negative log-likelihood of sigmoid(logit / T), as on validation), and
- a threshold on the calibrated probability under a named :class:`~pneumo_core.operations.rules.Rule`,

and reports the metrics at that operating point with 95% bootstrap intervals. Metrics on the sample the threshold was
chosen on are optimistic for that site's future films: the profile says so in ``note``, and
:func:`cross_validated` estimates them without that optimism.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from pneumo_core.common.films import patient_id
from pneumo_core.common.logits import sigmoid
from pneumo_core.operations.diagnostics import diagnostics
from pneumo_core.operations.rules import Rule
from pneumo_core.store.profiles import ProfileError, SiteProfile, check_name

CROSS_VALIDATION_FOLDS, CROSS_VALIDATION_REPEATS = 5, 20
""":func:`cross_validated`: patient-grouped folds, and how many random partitions into them are averaged."""
CROSS_VALIDATED_METRICS = ("accuracy", "sensitivity", "specificity")


def describe_cross_validated(estimate: dict[str, Any]) -> str:
    """One sentence for a :func:`cross_validated` estimate."""
    values = ", ".join(
        f"{key} {estimate[key]:.3f} ({estimate['range'][key][0]:.3f}-{estimate['range'][key][1]:.3f})"
        for key in CROSS_VALIDATED_METRICS
    )
    return (
        f"Cross-validated on the sample (the rule refitted without each film's patient, {estimate['folds']} folds, "
        f"mean of {estimate['repeats']} partitions, their range in brackets): {values}. Expect about this on the "
        "site's next films."
    )


def calibrate(
    scores,
    metadata: dict[str, Any],
    name: str,
    rule: Rule,
    reference_distances: np.ndarray | None = None,
    runtime: str = "not recorded",
) -> SiteProfile:
    """Fit a profile on a labelled folder's :class:`~pneumo_core.evaluation.scoring.FolderScores` (scored on ``runtime``) for the
    model of ``metadata``."""
    from pneumo_core.evaluation.metrics import bootstrap_intervals, classification_metrics, fit_temperature

    check_name(name)
    labels = scores.labels
    if len(labels) == 0 or len(np.unique(labels)) < 2:
        raise ProfileError("The folder needs readable films of both classes (NORMAL/ and PNEUMONIA/).")
    temperature = fit_temperature(labels, scores.logits)
    probabilities = sigmoid(scores.logits / temperature)
    threshold = rule.threshold(labels, probabilities)
    metrics = classification_metrics(labels, probabilities, threshold)
    intervals = bootstrap_intervals(labels, probabilities, threshold)
    validation_probabilities = sigmoid(scores.logits / float(metadata.get("temperature", 1.0)))
    at_validation = classification_metrics(labels, validation_probabilities, float(metadata["threshold"]))
    return SiteProfile(
        name=name,
        threshold=threshold,
        temperature=temperature,
        rule=str(rule),
        rule_description=rule.describe(),
        n=int(len(labels)),
        n_normal=int((labels == 0).sum()),
        n_pneumonia=int((labels == 1).sum()),
        data_sha256=scores.data_sha256,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        model_name=str(metadata.get("name", "unnamed")),
        model_sha256=str(metadata["model_sha256"]),
        metrics=metrics,
        intervals={key: list(value) for key, value in intervals.items()},
        validation_operating_point=at_validation,
        diagnostics=diagnostics(labels, probabilities, scores.distances, scores.warned, reference_distances),
        unreadable=len(scores.errors),
        runtime=runtime,
        cross_validated=cross_validated(
            labels, scores.logits, np.asarray([patient_id(Path(file).name) for file in scores.files]), rule
        ),
    )


def cross_validated(
    labels: np.ndarray,
    logits: np.ndarray,
    patients: np.ndarray,
    rule: Rule,
    folds: int = CROSS_VALIDATION_FOLDS,
    repeats: int = CROSS_VALIDATION_REPEATS,
    seed: int = 0,
) -> dict[str, Any] | None:
    """What fitting a profile on a site's sample gives on that site's *other* films, estimated on the sample itself.

    The films are split into ``folds`` groups stratified by class and grouped by patient
    (:class:`~sklearn.model_selection.StratifiedGroupKFold`); the temperature and the ``rule``'s threshold are fitted
    on all folds but one and the held-out fold's films are called at that operating point, so every film is called
    once by a profile fitted without its patient. The pooled accuracy, sensitivity and specificity are averaged over
    ``repeats`` random partitions (``range``: their lowest and highest). The fits see 1 - 1/folds of the films, so the
    estimate is slightly pessimistic for a profile fitted on all of them, and far less optimistic than the metrics on
    the films it was fitted on. ``None`` when a class has fewer than two patients.
    """
    from sklearn.model_selection import StratifiedGroupKFold

    from pneumo_core.evaluation.metrics import fit_temperature

    labels = np.asarray(labels).astype(int)
    logits = np.asarray(logits, dtype=float)
    folds = min(folds, *(len(np.unique(patients[labels == c])) for c in (0, 1)))
    if folds < 2:
        return None
    runs = []
    for repeat in range(repeats):
        called = np.zeros(len(labels), dtype=bool)
        splitter = StratifiedGroupKFold(folds, shuffle=True, random_state=seed + repeat)
        for fit, held_out in splitter.split(logits, labels, patients):
            if len(np.unique(labels[fit])) < 2:
                raise ProfileError("The sample is too small to cross-validate its operating point.")
            temperature = fit_temperature(labels[fit], logits[fit])
            threshold = rule.threshold(labels[fit], sigmoid(logits[fit] / temperature))
            called[held_out] = sigmoid(logits[held_out] / temperature) >= threshold
        runs.append([np.mean(called == labels), called[labels == 1].mean(), (~called[labels == 0]).mean()])
    runs = np.asarray(runs)  # (repeat, metric) in the order of CROSS_VALIDATED_METRICS
    return {
        "folds": folds,
        "repeats": repeats,
        **{key: float(runs[:, i].mean()) for i, key in enumerate(CROSS_VALIDATED_METRICS)},
        "range": {key: [float(runs[:, i].min()), float(runs[:, i].max())] for i, key in enumerate(CROSS_VALIDATED_METRICS)},
    }
