"""Fitting a site profile on a site's labelled sample, and what it should give on that site's next films.

A model's validation threshold comes from patients of the training collection. Films from another site or a later
collection shift the probabilities (here: normal films score higher), so a site hands over a small labelled sample
and :func:`calibrate` fits on it

- a temperature T (negative log-likelihood of sigmoid(logit / T), as on validation),
- a threshold on the calibrated probability under a named :class:`~pneumo_core.operations.rules.Rule`, and
- a referral band around it under a :class:`~pneumo_core.operations.rules.ReferralRule`,

and reports the metrics at that operating point with 95% bootstrap intervals, the referral band's share and decided
films, and what the same fit gives on the site's next films
(:func:`~pneumo_core.operations.simulation.simulate_next_films`). Metrics on the sample the threshold was chosen on
are optimistic for that site's future films: the profile says so in ``note``. Films withheld as not an X-ray are
counted as withheld, not scored, exactly as ``predict`` answers them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from pneumo_core.common.decisions import decided_metrics
from pneumo_core.common.films import patient_id
from pneumo_core.common.logits import sigmoid
from pneumo_core.operations.diagnostics import diagnostics
from pneumo_core.operations.rules import ReferralRule, Rule, sensitivity_lower_bound
from pneumo_core.operations.simulation import simulate_next_films
from pneumo_core.store.profiles import ProfileError, SiteProfile, check_name


def calibrate(
    scores,
    metadata: dict[str, Any],
    name: str,
    rule: Rule,
    band: ReferralRule,
    reference_distances: np.ndarray | None = None,
    runtime: str = "not recorded",
) -> SiteProfile:
    """Fit a profile on a labelled folder's :class:`~pneumo_core.evaluation.scoring.FolderScores` (scored on
    ``runtime``) for the model of ``metadata``."""
    from pneumo_core.evaluation.metrics import bootstrap_intervals, classification_metrics, fit_temperature

    check_name(name)
    kept = ~scores.withheld
    labels, logits = scores.labels[kept], scores.logits[kept]
    patients = np.asarray([patient_id(Path(file).name) for file in scores.files])[kept]
    if len(labels) == 0 or len(np.unique(labels)) < 2:
        raise ProfileError("The folder needs readable films of both classes (NORMAL/ and PNEUMONIA/).")
    temperature = fit_temperature(labels, logits)
    probabilities = sigmoid(logits / temperature)
    threshold = rule.threshold(labels, probabilities, patients)
    low, high = band.band(labels, probabilities, threshold)
    metrics = {
        **classification_metrics(labels, probabilities, threshold),
        "sensitivity_lower_bound": sensitivity_lower_bound(labels, probabilities, patients, threshold),
    }
    intervals = bootstrap_intervals(labels, probabilities, threshold)
    validation_probabilities = sigmoid(logits / float(metadata.get("temperature", 1.0)))
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
        referral_band=[low, high],
        band=str(band),
        band_description=band.describe(),
        referral=decided_metrics(labels, probabilities, low, high),
        next_films=simulate_next_films(labels, logits, patients, rule, band),
        diagnostics=diagnostics(labels, probabilities, scores.distances[kept], scores.warned[kept], reference_distances),
        unreadable=len(scores.errors),
        withheld=int(scores.withheld.sum()),
        runtime=runtime,
    )
