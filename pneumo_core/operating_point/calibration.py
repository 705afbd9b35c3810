"""A site profile fitted on a site's labelled sample: the operating point, its promise, and how it was measured.

A model's validation threshold comes from patients of the training collection. Films from another site or a later
collection shift the scores (here: normal films score higher), so a site hands over a small labelled sample (scored
films, or score records of films it cannot share) and :func:`calibrate` fits on it the operating point that serves
(:func:`~pneumo_core.operating_point.fit.fit_operating_point`: temperature, threshold, referral band and their
promise about the next films), then records what the sample gave at that point with intervals by patient
(:func:`~pneumo_core.evaluation.metrics.patient_intervals`), the fit's check on simulated sites of the same size
(:func:`~pneumo_core.operating_point.simulation.simulate_sites`) and shift diagnostics. Metrics on the films the
operating point was fitted on are optimistic for that site's future films: the promise is what to rely on. Films
withheld as not an X-ray are counted as withheld, not scored, exactly as ``predict`` answers them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from pneumo_core.common.decisions import decided_metrics
from pneumo_core.common.logits import sigmoid
from pneumo_core.operating_point.diagnostics import diagnostics
from pneumo_core.operating_point.fit import fit_operating_point
from pneumo_core.operating_point.promises import realised
from pneumo_core.operating_point.rules import ReferralRule, Rule
from pneumo_core.operating_point.simulation import SITES, simulate_sites
from pneumo_core.store.profiles import ProfileError, SiteProfile, check_name


@dataclass(frozen=True)
class LabelledSample:
    """A site's labelled films as scored by the model: what :func:`calibrate` fits on (films with a verdict only)."""

    labels: np.ndarray  # 0 NORMAL, 1 PNEUMONIA
    logits: np.ndarray  # the model's raw logits, before any temperature
    patients: np.ndarray  # one patient id per film
    data_sha256: str
    distances: np.ndarray | None = None  # feature distance to the training reference, when scored here
    warned: np.ndarray | None = None  # a not-an-X-ray warning, when scored here
    withheld: int = 0  # films withheld as not an X-ray: no verdict, not fitted on
    unreadable: int = 0
    source: str = "films"  # "films" (scored here) or "scores" (score records)
    notes: list[str] = field(default_factory=list)

    def patient_counts(self) -> dict[str, int]:
        return {name: len(np.unique(self.patients[self.labels == label])) for label, name in enumerate(("NORMAL", "PNEUMONIA"))}


def calibrate(
    sample: LabelledSample,
    metadata: dict[str, Any],
    name: str,
    rule: Rule,
    band_rule: ReferralRule,
    reference_distances: np.ndarray | None = None,
    runtime: str = "not recorded",
    next_films: int | None = None,
    sites: int = SITES,
) -> SiteProfile:
    """Fit a profile on ``sample`` for the model of ``metadata``; the promise is about ``next_films`` next films
    (default: as many as the sample)."""
    from pneumo_core.evaluation.metrics import classification_metrics, patient_intervals

    check_name(name)
    labels, logits, patients = sample.labels, sample.logits, sample.patients
    if len(labels) == 0 or len(np.unique(labels)) < 2:
        raise ProfileError("The sample needs readable films of both classes (NORMAL and PNEUMONIA).")
    point = fit_operating_point(labels, logits, rule, band_rule, next_films, patients=patients)
    probabilities = sigmoid(logits / point.temperature)
    low, high = point.band
    counts = sample.patient_counts()
    simulated = simulate_sites(labels, logits, patients, rule, band_rule, sites) if min(counts.values()) >= 2 else None
    validation_probabilities = sigmoid(logits / float(metadata.get("temperature", 1.0)))
    return SiteProfile(
        name=name,
        threshold=point.threshold,
        temperature=point.temperature,
        rule=str(rule),
        rule_description=rule.describe(),
        n=int(len(labels)),
        n_normal=int((labels == 0).sum()),
        n_pneumonia=int((labels == 1).sum()),
        data_sha256=sample.data_sha256,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        model_name=str(metadata.get("name", "unnamed")),
        model_sha256=str(metadata["model_sha256"]),
        metrics=classification_metrics(labels, probabilities, point.threshold),
        intervals={
            key: list(value) for key, value in patient_intervals(labels, probabilities, point.threshold, patients).items()
        },
        validation_operating_point=classification_metrics(labels, validation_probabilities, float(metadata["threshold"])),
        diagnostics=diagnostics(labels, probabilities, sample.distances, sample.warned, reference_distances),
        unreadable=sample.unreadable,
        runtime=runtime,
        referral_band=[low, high],
        band_rule=str(band_rule),
        band_rule_description=band_rule.describe(),
        referral={
            **decided_metrics(labels, probabilities, low, high),
            **realised(labels, logits, point.threshold_logit, point.low_logit, point.high_logit),
        },
        withheld=sample.withheld,
        promise=point.promise.as_dict(),
        shortfalls=list(point.shortfalls),
        simulation=simulated,
        patients={**counts, "films_per_patient": round(len(labels) / max(1, sum(counts.values())), 3)},
        notes=list(sample.notes),
    )
